"""Fit an anomaly detector on the Normal training images and store it in the workspace (as a background job).

No gradient descent: the frozen pretrained backbone turns every Normal training image (or tile) into
features, then the model is fitted once:

* PatchCore: patch features are drawn into a bounded candidate pool, and the memory bank is chosen from it
  by :func:`~astrocyte_lab.modules.anomaly.coreset.greedy_coreset` (``coreset_ratio`` of all patches, at
  most ``memory_bank_size``); with ``layout_model`` (whole images, at least 8) the coarse feature grids of
  the images fit :class:`~astrocyte_lab.modules.anomaly.layout.LayoutModel`;
* PaDiM: one Gaussian per patch position (anomalib's ``MultiVariateGaussian``);
* DFM (image level): PCA of the pooled features; with ``outlier_exposure`` a few variants (PCA energy,
  the feature reconstruction error) are tried on held-out normal images and synthetic anomalies
  made from them (:mod:`outliers`), and the best-separating variant is kept.

Anomaly images assigned to training are left out (they are for testing only). The validation images are
scored at the end: with both classes present the record gets AUROC / AUPR and the ROC threshold closest to
the top-left corner; otherwise the threshold is the highest score among the validation (or training) Normal
images. ``config.threshold`` overrides it.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Iterator

import numpy as np
import torch

from astrocyte_lab.data.categories import ANOMALY_CATEGORIES
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.anomaly import layout, outliers, postprocess
from astrocyte_lab.modules.anomaly.config import AnomalyConfig
from astrocyte_lab.modules.anomaly.coreset import coreset_size, greedy_coreset
from astrocyte_lab.modules.anomaly.model import AnomalyNet, low_res
from astrocyte_lab.modules.anomaly.registry import BACKBONES
from astrocyte_lab.modules.anomaly.segmenter import DefectSegmenter, calibrated_weight, fit_segmenter
from astrocyte_lab.runtime.anomaly import AnomalyScorer, image_tiles
from astrocyte_lab.runtime.preprocess import _mask_used, crop_image, preprocess_full, to_unit_range
from astrocyte_lab.training.data import InputSpec, input_spec, seed_everything
from astrocyte_lab.training.devices import advise_on_out_of_memory, resolve_device
from astrocyte_lab.training.jobs import Job, JobContext
from astrocyte_lab.training.runner import inline_context, open_dataset, start_training, stored_model, torch_state

NORMAL, ANOMALY = ANOMALY_CATEGORIES
# anomalib 2.7.0 cannot fit DFM's "nll" variant (SingleClassGaussian.fit passes device= to torch.mean): "fre" only
DFM_VARIANTS: tuple[tuple[str, float], ...] = (("fre", 0.8), ("fre", 0.9), ("fre", 0.97), ("fre", 0.99))
PROBE = 16  # training images scored for a fallback threshold when there is no validation image
EXPOSURE_IMAGES = 24  # held-out normal images (and as many synthetic anomalies) for outlier exposure
LAYOUT_PATCH_SAMPLE = 20_000  # training patches whose bank distances calibrate the layout term's units
SEGMENTER_MIN_IMAGES = 10  # fewer are too few to learn what is not a defect (and 2 calibrate, 8 keep the layout)
SEGMENTER_WIDTH = 32  # channels of the defect segmenter's convolutions
SEGMENTER_POOL = 2  # the defect segmenter works on cells of 2 x 2 patches (segmenter.py)
SEGMENTER_FLIPS = 4  # and averages its output over four mirror images of the embedding
SEGMENTER_VARIANTS = 4  # at most this many synthetic defects per Normal image (small images: the budget is large)
SEGMENTER_HELD_OUT = 32  # Normal images kept out of the segmenter's training to calibrate its weight (at most)
SEGMENTER_IMAGE_CACHE = 512 * 2**20  # bytes of stored images kept from the feature pass for synthetic defects


def train_job(workspace: Workspace, dataset: str, model_name: str, config: AnomalyConfig | None = None,
              description: str = "") -> Job:
    """Start fitting in the background; ``job.result()`` is the model's name once it is saved."""
    return start_training(train, workspace, dataset, model_name, config or AnomalyConfig(), description)


def kind_of(config: AnomalyConfig) -> str:
    return "dfm" if config.granularity == "image" else config.algorithm


def mask_uint8(spec: InputSpec) -> np.ndarray | None:
    return None if spec.roi_mask is None else np.where(spec.roi_mask, 255, 0).astype(np.uint8)


def unit_batches(dataset: Dataset, ids: list[int], spec: InputSpec, tiling: dict | None, batch_size: int,
                 transform=None, keep: ImageCache | None = None) -> Iterator[np.ndarray]:
    """Network inputs ``(B, C, h, w)`` of the images (whole, or every tile) as the runtime prepares them.

    ``transform`` (optional) changes the image in [0, 1] float form first (synthetic anomalies); ``keep``
    (optional) keeps the stored images read, for a second use."""
    pending: list[np.ndarray] = []
    roi_mask = mask_uint8(spec)
    for image_id in ids:
        image = dataset.image(int(image_id))
        if keep is not None:
            keep.add(int(image_id), image)
        if transform is not None:
            image = transform(to_unit_range(image, spec.bit_depth))
        if tiling is None:
            pending.append(spec.to_tensor(image)[None])
        else:
            full = preprocess_full(image, spec.meta_input(), spec.meta_roi(), roi_mask)
            pending.append(image_tiles(full, tuple(tiling["tile"]), float(tiling["overlap"]))[1])
        while sum(len(p) for p in pending) >= batch_size:
            stacked = np.concatenate(pending)
            yield stacked[:batch_size]
            pending = [stacked[batch_size:]] if len(stacked) > batch_size else []
    if pending and sum(len(p) for p in pending):
        yield np.concatenate(pending)


class ImageCache:
    """Stored images kept in memory up to ``limit`` bytes in all (the rest is read again when needed)."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        self.dataset, self.limit, self.used = dataset, int(limit), 0
        self.images: dict[int, np.ndarray] = {}

    def add(self, image_id: int, image: np.ndarray) -> None:
        if image_id not in self.images and self.used + image.nbytes <= self.limit:
            self.images[image_id] = image
            self.used += image.nbytes

    def image(self, image_id: int) -> np.ndarray:
        found = self.images.get(image_id)
        return self.dataset.image(image_id) if found is None else found


def units_per_image(spec: InputSpec, dataset: Dataset, tiling: dict | None) -> int:
    if tiling is None:
        return 1
    from astrocyte_lab.runtime.tiling import tile_grid

    g = dataset.geometry
    width, height = (spec.crop[2], spec.crop[3]) if spec.crop else (g.width, g.height)
    return len(tile_grid(width, height, tiling["tile"][0], tiling["tile"][1], float(tiling["overlap"])))


def train(workspace: Workspace, dataset_name: str, model_name: str, config: AnomalyConfig,
          description: str = "", context: JobContext | None = None) -> str:
    context = context or inline_context()
    started = time.perf_counter()
    dataset = open_dataset(workspace, dataset_name, "anomaly")
    table = dataset.table
    in_train = table["assigned"] == "train"
    normal_ids = table.index[in_train & (table["ground_truth"] == NORMAL)].tolist()
    left_out = int(in_train.sum()) - len(normal_ids)
    val_ids = table.index[table["assigned"] == "validation"].tolist()
    if not normal_ids:
        raise AstrocyteError(f"dataset {dataset_name!r} has no Normal image in the training set: anomaly detection "
                             "learns from Normal images only")
    seed = seed_everything(config.seed)
    device = resolve_device(config.device)
    backbone = BACKBONES[config.architecture]
    spec = input_spec(dataset, config, backbone.mean, backbone.std)
    tiling = {"tile": list(config.tile_size), "overlap": config.tile_overlap} if config.tiling else None
    if tiling is not None:
        spec.width, spec.height = config.tile_size
    elif config.granularity == "pixel_low_res":
        spec.width, spec.height = low_res(spec.width, spec.height)
    kind = kind_of(config)
    net = AnomalyNet(config.architecture, kind, pretrained=config.pretrained, padim_features=config.padim_features,
                     blur_sigma=config.blur_sigma).to(device)
    if device.type == "cpu":
        net.use_fast_features(spec.height, spec.width, report=lambda message: context.emit("status", message=message))
    units = units_per_image(spec, dataset, tiling) * len(normal_ids)
    context.emit("status", message=f"fitting {kind} ({config.architecture}) on {len(normal_ids)} Normal images "
                                   f"({units} inputs of {spec.width} x {spec.height}) on {device}"
                                   + (f"; {left_out} non-Normal training images left out" if left_out else ""))
    section: dict = {"granularity": config.granularity, "algorithm": kind, "heatmap_ratio": config.heatmap_ratio,
                     "tiling": tiling, "score": "model" if kind == "dfm" else "map_max", "heatmap": True}
    extra: dict = {}
    memory = {"batch_size": config.batch_size, "region_size": config.region_size,
              "tile_size": config.tile_size if config.tiling else None, "device": str(device)}
    with advise_on_out_of_memory(f"fitting the {kind} anomaly model", **memory):
        if kind == "patchcore":
            extra = _fit_patchcore(net, dataset, normal_ids, spec, tiling, config, units, seed, device, context)
        elif kind == "padim":
            _fit_padim(net, dataset, normal_ids, spec, tiling, config, units, device, context)
        else:
            extra = _fit_dfm(net, dataset, normal_ids, spec, tiling, config, seed, device, context)
            section["heatmap"] = extra["score_type"] == "fre"
    net = net.eval()
    section["threshold"] = 0.0
    probe = val_ids or [normal_ids[i] for i in np.random.default_rng(seed).permutation(len(normal_ids))[:PROBE]]
    with advise_on_out_of_memory("validating the anomaly model", **memory):
        metrics, threshold = _validate(net, dataset, probe, spec, section, config, context, device)
    section["threshold"] = float(config.threshold if config.threshold is not None else threshold)
    section.update(extra)
    fitted = round(time.perf_counter() - started, 2)
    record = {
        "name": model_name, "module": "anomaly", "architecture": config.architecture,
        "categories": list(ANOMALY_CATEGORIES), "input": spec.to_record(), "config": config.to_dict(),
        "metrics": metrics, "history": [], "best_epoch": None, "stopped_early": False, "dataset": dataset_name,
        "images": {"train": len(normal_ids), "validation": len(val_ids), "left_out": left_out}, "seed": seed,
        "pretrained": bool(net.pretrained_loaded), "device": str(device), "description": description,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "duration_s": fitted,
        "anomaly": section,
    }
    tensors = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    workspace.model_store.save(model_name, record, tensors, spec.roi_mask)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
    context.emit("status", message=f"saved model {model_name!r} in {fitted:.1f} s: {shown or 'no validation metrics'}"
                                   f", threshold {section['threshold']:.4g}")
    return model_name


def _features(net: AnomalyNet, batches: Iterator[np.ndarray], device: torch.device, context: JobContext,
              total: int, done: int = 0) -> Iterator[torch.Tensor]:
    for batch in batches:
        context.check_cancelled()
        yield net.embed(torch.from_numpy(batch).to(device)).float().cpu()
        done += len(batch)
        context.progress(done, total)


def _fit_patchcore(net, dataset, ids, spec, tiling, config, units, seed, device, context) -> dict:
    generator = torch.Generator().manual_seed(seed)
    pool: list[torch.Tensor] = []
    grids: list[torch.Tensor] | None = [] if config.layout_model and tiling is None else None
    segmenter = config.defect_segmenter and tiling is None and len(ids) >= SEGMENTER_MIN_IMAGES
    normals: list[torch.Tensor] = []  # embeddings of the Normal images the segmenter learns from
    held: list[torch.Tensor] = []  # ... and of those that calibrate its weight
    role: torch.Tensor | None = None  # per image: 0 unused, 1 learn from, 2 calibrate
    seen = done = 0
    cache = ImageCache(dataset, SEGMENTER_IMAGE_CACHE if segmenter else 0)  # read once for synthetic defects too
    for embedding in _features(net, unit_batches(dataset, ids, spec, tiling, config.batch_size, keep=cache), device,
                               context, units):
        embedding_shape = tuple(embedding.shape[-2:])
        if segmenter:
            if role is None:  # the patch grid is known now: a random share of the images within the budget
                role = segmenter_roles(len(ids), config.segmenter_patches // 3 // math.prod(embedding_shape),
                                       generator)
            roles = role[done:done + len(embedding)]
            normals.append(embedding[roles == 1].half())
            held.append(embedding[roles == 2].half())
            done += len(embedding)
            # the calibration images stay unseen by the bank and the layout term too: on images PatchCore
            # learnt from, its map's top percentile would be too low and the segmenter's weight with it
            embedding = embedding[roles != 2]
            if not len(embedding):
                continue
        if grids is not None:
            grids.append(layout.pooled(embedding))
        flat = net.model.reshape_embedding(embedding)
        seen += flat.shape[0]
        per_unit = flat.shape[0] // embedding.shape[0]
        keep = min(flat.shape[0], math.ceil(config.coreset_candidates * flat.shape[0] / (units * per_unit)))
        pool.append(flat[torch.randperm(flat.shape[0], generator=generator)[:keep]].clone() if keep < len(flat)
                    else flat.clone())
    candidates = torch.cat(pool)
    del pool
    size = coreset_size(seen, config.coreset_ratio, config.memory_bank_size)
    context.emit("status", message=f"coreset: {size} of {seen} patches ({len(candidates)} candidates)")
    chosen = greedy_coreset(candidates, size, projection=config.coreset_projection,
                            max_candidates=config.coreset_candidates, per_step=config.coreset_per_step, seed=seed,
                            device=device, progress=lambda step, n: (context.check_cancelled(),
                                                      context.progress(step, n, "coreset")))
    net.set_memory_bank(candidates[chosen])
    extra = {"memory_bank": int(size), "patches": int(seen), "layout": None, "segmenter": None}
    if grids is not None and sum(len(grid) for grid in grids) >= layout.MIN_IMAGES:
        sample = candidates[torch.randperm(len(candidates), generator=generator)[:LAYOUT_PATCH_SAMPLE]]
        distance_q = torch.quantile(net.bank_distances(sample.to(device)).cpu(), layout.QUANTILE).item()
        kernel = layout.pool_kernel(*embedding_shape)
        model = layout.LayoutModel.fit(torch.cat(grids), kernel, config.layout_variance, generator, distance_q)
        net.set_layout(model)
        extra["layout"] = {"channels": model.channels, "grid": list(model.grid), "kernel": list(model.kernel),
                           "components": int(model.components.shape[0]), "weight": float(model.weight)}
        context.emit("status", message=f"layout model: {model.components.shape[0]} directions over a "
                                       f"{model.grid[0]} x {model.grid[1]} grid")
    elif grids is not None:
        context.emit("status", message=f"no layout model: it needs {layout.MIN_IMAGES} Normal training images")
    del candidates
    if segmenter:
        sources = [image for image, kind in zip(ids, role.tolist(), strict=True) if kind != 2]
        extra["segmenter"] = _fit_segmenter(net, cache, sources, spec, config, torch.cat(normals), torch.cat(held),
                                            seed, device, context)
    elif config.defect_segmenter and tiling is None:
        context.emit("status", message=f"no defect segmenter: it needs {SEGMENTER_MIN_IMAGES} Normal training images")
    return extra


def segmenter_roles(images: int, budget: int, generator: torch.Generator) -> torch.Tensor:
    """Per Normal image: 2 to calibrate the segmenter's weight (a fifth, at most ``SEGMENTER_HELD_OUT``; these
    stay out of the memory bank and the layout term too), 1 to learn from (at most ``budget``), 0 unused."""
    order = torch.randperm(images, generator=generator)
    held = min(SEGMENTER_HELD_OUT, max(1, images // 5))
    role = torch.zeros(images, dtype=torch.uint8)
    role[order[:held]] = 2
    role[order[held:held + max(1, budget)]] = 1
    return role


def defect_target(region: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A synthetic defect's ``(H, W)`` image mask as the network sees it: ROI crop, input size (share of each
    pixel covered), zero exactly where preprocessing zeroes the input (the runtime's own crop and mask)."""
    import cv2

    region = region.astype(np.float32)
    if spec.crop is not None:
        region = crop_image(region, spec.crop)
    target = cv2.resize(region, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    if spec.roi_mask is not None:
        target *= _mask_used(spec.roi_mask, spec.roi_mask.shape, spec.width, spec.height)
    return target


def _fit_segmenter(net, images: ImageCache, ids, spec, config, normals, held, seed, device, context) -> dict:
    """Embed synthetic defects made from the Normal images ``ids``, train the defect segmenter, then weigh it
    against PatchCore's map on the ``held`` Normal embeddings (of other images) it did not learn from."""
    grid = tuple(normals.shape[-2:])
    count = max(1, min(SEGMENTER_VARIANTS * len(ids), 2 * config.segmenter_patches // 3 // math.prod(grid)))
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(ids), count, replace=count > len(ids))
    others = (sources + rng.integers(1, len(ids), count)) % len(ids)  # another Normal image for content swaps
    kinds = outliers.balanced_kinds(count)  # the sources are random already
    context.emit("status", message=f"defect segmenter: {count} synthetic defects and {len(normals)} Normal images")
    embeddings: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for first in range(0, count, config.batch_size):
        context.check_cancelled()
        inputs, masks = [], []
        for index in range(first, min(count, first + config.batch_size)):
            image = to_unit_range(images.image(int(ids[sources[index]])), spec.bit_depth)
            region_kind, alteration = kinds[index]
            defect, region = outliers.synthetic_defect(image, _reader(images, int(ids[others[index]]), spec.bit_depth),
                                                       rng, region=region_kind, alteration=alteration)
            inputs.append(spec.to_tensor(defect))
            masks.append(defect_target(region, spec))
        embeddings.append(net.embed(torch.from_numpy(np.stack(inputs)).to(device)).half().cpu())
        targets.append(torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(np.stack(masks))[:, None], grid))
        context.progress(min(count, first + config.batch_size), count, "synthetic defects")
    model = fit_segmenter(torch.cat(embeddings), torch.cat(targets), normals, width=SEGMENTER_WIDTH,
                          pool=SEGMENTER_POOL, flips=SEGMENTER_FLIPS, epochs=config.segmenter_epochs, seed=seed,
                          device=device, step=lambda done, total: (context.check_cancelled(),
                                                    context.progress(done, total, "defect segmenter")))
    patch_maps = torch.cat([net.patch_map(chunk.float().to(device)).cpu() for chunk in held.split(32)])
    model.weight.fill_(calibrated_weight(model, patch_maps, held))
    net.set_segmenter(model)
    return {"channels": model.channels, "width": model.width, "pool": model.pool, "flips": model.flips,
            "weight": float(model.weight),
            "synthetic": int(count), "normal": len(normals), "held_out": len(held)}


def _reader(images: ImageCache, image_id: int, bit_depth: int):
    """A function reading one image in [0, 1] float form (a synthetic defect reads its swap source only if used)."""
    return lambda: to_unit_range(images.image(image_id), bit_depth)


def _fit_padim(net, dataset, ids, spec, tiling, config, units, device, context) -> None:
    embeddings = torch.cat(list(_features(net, unit_batches(dataset, ids, spec, tiling, config.batch_size), device,
                                          context, units)))
    context.emit("status", message=f"fitting {embeddings.shape[2] * embeddings.shape[3]} Gaussians of "
                                   f"{embeddings.shape[1]} features")
    net.fit_gaussian(embeddings)


def _fit_dfm(net, dataset, ids, spec, tiling, config, seed, device, context) -> dict:
    def features(image_ids, transform=None) -> torch.Tensor:
        batches = unit_batches(dataset, image_ids, spec, tiling, config.batch_size, transform)
        return torch.cat([net.embed(torch.from_numpy(b).to(device)).float().cpu() for b in batches])

    normal = features(ids)
    chosen, exposure = ("fre", 0.97), None
    rng = np.random.default_rng(seed)
    if config.outlier_exposure and len(ids) >= 8:
        held = rng.permutation(len(ids))[:min(EXPOSURE_IMAGES, len(ids) // 4)]
        held_ids = [ids[i] for i in held]
        keep = torch.ones(len(ids), dtype=torch.bool)
        keep[torch.from_numpy(held)] = False
        kinds = iter(np.resize(np.array(outliers.KINDS), len(held_ids)))
        synthetic = features(held_ids, lambda unit: outliers.synthetic_anomaly(unit, str(next(kinds)), rng))
        truth = np.r_[np.zeros(len(held_ids)), np.ones(len(held_ids))]
        exposure = {}
        for score_type, ratio in DFM_VARIANTS:
            context.check_cancelled()
            net.fit_dfm(normal[keep], score_type, ratio)
            with torch.no_grad():
                scores = np.r_[_dfm_scores(net, normal[~keep]), _dfm_scores(net, synthetic)]
            exposure[f"{score_type}@{ratio}"] = postprocess.auroc(truth, scores)
        best = max(exposure, key=exposure.get)
        chosen = (best.split("@")[0], float(best.split("@")[1]))
        context.emit("status", message=f"outlier exposure AUROC {exposure}: keeping {best}")
    net.fit_dfm(normal, *chosen)
    return {"score_type": chosen[0], "components": chosen[1], "outlier_exposure": exposure}


def _dfm_scores(net: AnomalyNet, flat: torch.Tensor) -> np.ndarray:
    m = net.model
    projected = m.pca_model.transform(flat.to(m.pca_model.mean.device))
    if m.score_type == "nll":
        return m.gaussian_model.score_samples(projected).cpu().numpy()
    return torch.square(flat - m.pca_model.inverse_transform(projected).cpu()).sum(1).numpy()


def torch_scorer(net: AnomalyNet, spec: InputSpec, section: dict, device: torch.device | None = None,
                 ) -> AnomalyScorer:
    """The runtime's post-processing over the PyTorch model (what testing uses, and the package mirrors)."""
    device = device or net.device

    roles = net.output_roles()

    @torch.no_grad()
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        values = net(torch.from_numpy(batch).to(device))
        return {name: value.float().cpu().numpy() for name, value in zip(roles.values(), values, strict=True)}

    metadata = {"categories": list(ANOMALY_CATEGORIES), "input": spec.meta_input(), "roi": spec.meta_roi(),
                "outputs": roles, "anomaly": section}
    return AnomalyScorer(metadata, mask_uint8(spec), run, "model")


def _validate(net, dataset, ids, spec, section, config, context, device=None) -> tuple[dict, float]:
    context.emit("status", message=f"scoring {len(ids)} validation images")
    scorer = torch_scorer(net, spec, section, device)
    truth = dataset.table.loc[ids, "ground_truth"].tolist()
    scores = []
    for first in range(0, len(ids), config.batch_size):
        context.check_cancelled()
        images = [dataset.image(int(i)) for i in ids[first:first + config.batch_size]]
        scores += [p.score for p in scorer.predict(images, config.batch_size)]
    is_anomaly = np.array([t == ANOMALY for t in truth])
    labelled = np.array([t in (NORMAL, ANOMALY) for t in truth])
    scores_a = np.asarray(scores)
    if is_anomaly.any() and (labelled & ~is_anomaly).any():
        truth_l, scores_l = is_anomaly[labelled], scores_a[labelled]
        threshold = postprocess.default_threshold(truth_l, scores_l)
        return {"val_auroc": postprocess.auroc(truth_l, scores_l), "val_aupr": postprocess.aupr(truth_l, scores_l),
                "val_threshold": threshold}, threshold
    normal_scores = scores_a[labelled & ~is_anomaly] if (labelled & ~is_anomaly).any() else scores_a
    return {}, float(normal_scores.max())


def build_network(record: dict) -> AnomalyNet:
    """An untrained network shaped like a stored model (weights loaded separately)."""
    config = record["config"]
    section = record["anomaly"]
    net = AnomalyNet(record["architecture"], section["algorithm"], pretrained=False,
                     padim_features=config.get("padim_features", 100), blur_sigma=config.get("blur_sigma", 4.0),
                     dfm_components=section.get("components", 0.97), dfm_score=section.get("score_type", "fre"))
    shape = section.get("layout")
    if shape:
        net.set_layout(layout.LayoutModel(shape["channels"], tuple(shape["grid"]), shape["components"],
                                          tuple(shape["kernel"])))
    segmenter = section.get("segmenter")
    if segmenter:
        net.set_segmenter(DefectSegmenter(segmenter["channels"], segmenter["width"], segmenter.get("pool", 1),
                                          segmenter.get("flips", 1)))  # older records: no pooling, no flips
    return net


def load_network(workspace: Workspace, model_name: str) -> tuple[AnomalyNet, dict, InputSpec]:
    """A stored model as a PyTorch module (eval mode), its record and its input spec."""
    record, spec, tensors = stored_model(workspace, model_name, "anomaly")
    net = build_network(record)
    net.load_state_dict(torch_state(tensors))
    return net.eval(), record, spec
