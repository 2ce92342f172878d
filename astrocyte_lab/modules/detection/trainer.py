"""Train an object detector on a dataset's boxes and store it in the workspace (as a background job).

The dataset's images go through the runtime's own preprocessing (ROI crop, channels, plain bilinear resize to
the region size, or full-resolution tiles padded with the tile mean) and are written, with their boxes, as a
temporary YOLO-format folder; Ultralytics' trainer (detect or OBB task) trains on it with its augmentations
(mosaic, flips, rotation, scale, translation, HSV, mixup, channel swap) and validates every epoch. Because the
written images already have the network's input size, the object scale the network learns is the one the
package sees at run time. The weights of the best validation epoch (Ultralytics' fitness, mostly mAP@0.5:0.95)
are stored as safetensors beside the network's yaml definition.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from astrocyte_lab.data.annotations import Annotation, Box, RotatedBox
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.detection import yolo
from astrocyte_lab.modules.detection.config import DetectionConfig, check_input_size, round_up
from astrocyte_lab.modules.detection.registry import DETECTION_ARCHITECTURES
from astrocyte_lab.runtime.preprocess import preprocess_full
from astrocyte_lab.runtime.tiling import extract_tile, tile_grid
from astrocyte_lab.training import weights
from astrocyte_lab.training.data import InputSpec, input_spec, seed_everything
from astrocyte_lab.training.devices import resolve_device
from astrocyte_lab.training.jobs import Job, JobCancelled, JobContext
from astrocyte_lab.training.runner import inline_context, open_dataset, start_training, torch_state

TILE_MARGIN = 10  # px added to the largest object to get the tile overlap
MAX_TILE_OVERLAP = 0.25
MIN_TILE_VISIBLE = 0.5  # a box cut by a tile edge is kept when at least this share of it is inside


def train_job(workspace: Workspace, dataset: str, model_name: str, config: DetectionConfig | None = None,
              description: str = "") -> Job:
    """Start training in the background; ``job.result()`` is the model's name once it is saved."""
    return start_training(train, workspace, dataset, model_name, config or DetectionConfig(), description)


# ------------------------------------------------------------------------------------------ data preparation


def dataset_is_rotated(dataset: Dataset) -> bool:
    return any(isinstance(a, RotatedBox) for i in dataset.ids.tolist() for a in dataset.objects(int(i), pseudo=False))


def labelled_ids(dataset: Dataset, ids: list[int], pseudo: bool = False) -> list[int]:
    """Images among ``ids`` with at least one ground-truth object (or pseudo label, with ``pseudo``)."""
    return [i for i in ids if any((not a.pseudo) or pseudo for a in dataset.objects(i))]


def detection_spec(dataset: Dataset, config: DetectionConfig) -> InputSpec:
    """The network input: 3 channels, [0, 1] (mean 0, std 1), the region size (or tile size) in multiples of 32."""
    spec = input_spec(dataset, config, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    spec.channels, spec.mean, spec.std = 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if config.tiling:
        spec.width, spec.height = config.tile_size
    elif config.region_size is None:
        spec.width, spec.height = round_up(spec.width), round_up(spec.height)
    check_input_size((spec.width, spec.height))
    return spec


def geometry(annotation: Annotation, rotated: bool) -> np.ndarray:
    """``[x1, y1, x2, y2]`` (axis-aligned model) or 4 corners (rotated model) of any annotation."""
    if rotated:
        if isinstance(annotation, RotatedBox | Box):
            return annotation.corners()
        import cv2

        return cv2.boxPoints(cv2.minAreaRect(annotation.corners().astype(np.float32))).astype(np.float64)
    return np.asarray(annotation.bounds(), np.float64)


def _area(geom: np.ndarray, rotated: bool) -> float:
    if rotated:
        x, y = geom[:, 0], geom[:, 1]
        return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)
    return float(max(0.0, geom[2] - geom[0]) * max(0.0, geom[3] - geom[1]))


def _in_frame(objects: list[tuple[int, np.ndarray]], dx: float, dy: float, sx: float, sy: float, width: int,
              height: int, rotated: bool) -> list[tuple[int, np.ndarray]]:
    """Objects moved by ``(-dx, -dy)``, scaled, and kept when enough of them lies in ``width x height``."""
    kept = []
    for index, geom in objects:
        g = geom.copy()
        if rotated:
            g = (g - (dx, dy)) * (sx, sy)
            centre = g.mean(0)
            if 0 <= centre[0] <= width and 0 <= centre[1] <= height:
                kept.append((index, g))
            continue
        g = (g - (dx, dy, dx, dy)) * (sx, sy, sx, sy)
        clipped = np.array([max(0, g[0]), max(0, g[1]), min(width, g[2]), min(height, g[3])])
        full = _area(g, False)
        if full > 0 and _area(clipped, False) >= MIN_TILE_VISIBLE * full and clipped[2] - clipped[0] >= 1 \
                and clipped[3] - clipped[1] >= 1:
            kept.append((index, clipped))
    return kept


@dataclass
class Tiling:
    tile: tuple[int, int]
    overlap: float
    whole_image: bool

    def to_record(self) -> dict:
        return {"tile": list(self.tile), "overlap": self.overlap, "whole_image": self.whole_image}


def plan_tiling(dataset: Dataset, ids: list[int], config: DetectionConfig) -> Tiling:
    """Tile overlap from the largest labelled object (+10 px, at most 25 % of the tile) and whether a
    whole-image pass is needed (objects larger than that overlap can hold)."""
    tile_w, tile_h = config.tile_size
    largest = 0.0
    for i in ids:
        for a in dataset.objects(i, pseudo=False):
            x1, y1, x2, y2 = a.bounds()
            largest = max(largest, x2 - x1, y2 - y1)
    if config.tile_overlap is not None:
        overlap = float(config.tile_overlap)
    else:
        overlap = min(MAX_TILE_OVERLAP, (largest + TILE_MARGIN) / min(tile_w, tile_h))
    whole = largest > MAX_TILE_OVERLAP * min(tile_w, tile_h)
    return Tiling((tile_w, tile_h), round(overlap, 4), bool(whole))


def _to_uint8(chw_or_hwc: np.ndarray, channels_first: bool) -> np.ndarray:
    hwc = chw_or_hwc.transpose(1, 2, 0) if channels_first else chw_or_hwc
    return np.clip(np.rint(hwc * 255.0), 0, 255).astype(np.uint8)


@dataclass
class Sample:
    """One image's ground truth (and pseudo labels) as (category index, geometry) pairs."""

    image_id: int
    objects: list[tuple[int, np.ndarray]] = field(default_factory=list)


def samples_for(dataset: Dataset, ids: list[int], categories: list[str], rotated: bool,
                pseudo: bool = False) -> list[Sample]:
    index = {name: k for k, name in enumerate(categories)}
    found = []
    for i in ids:
        objects = [(index[a.category], geometry(a, rotated)) for a in dataset.objects(i)
                   if (not a.pseudo or pseudo) and a.category in index]
        found.append(Sample(i, objects))
    return found


def write_split(folder: yolo.YoloFolder, split: str, dataset: Dataset, samples: list[Sample], spec: InputSpec,
                tiling: Tiling | None, rng: np.random.Generator, repeat: int = 1, prefix: str = "") -> None:
    """Write images at network resolution (or their tiles) with their objects into the YOLO folder."""
    meta_input, meta_roi, mask = spec.meta_input(), spec.meta_roi(), spec._mask_uint8()
    for sample in samples:
        image = dataset.image(sample.image_id)
        crop = spec.crop or (0, 0, image.shape[1], image.shape[0])
        if tiling is None:
            rgb = _to_uint8(spec.to_tensor(image), True)
            objects = _in_frame(sample.objects, crop[0], crop[1], spec.width / crop[2], spec.height / crop[3],
                                spec.width, spec.height, folder.rotated)
            for r in range(repeat):
                folder.add(split, f"{prefix}{sample.image_id}_{r}", rgb, objects)
            continue
        full = preprocess_full(image, meta_input, meta_roi, mask)
        tile_w, tile_h = tiling.tile
        empty = []
        for x, y in tile_grid(full.shape[1], full.shape[0], tile_w, tile_h, tiling.overlap):
            objects = _in_frame(sample.objects, crop[0] + x, crop[1] + y, 1.0, 1.0, tile_w, tile_h, folder.rotated)
            if not objects:
                empty.append((x, y))
                continue
            rgb = _to_uint8(extract_tile(full, x, y, tile_w, tile_h), False)
            for r in range(repeat):
                folder.add(split, f"{prefix}{sample.image_id}_{x}_{y}_{r}", rgb, objects)
        # a few object-free tiles per image teach the background (false positives) without flooding training
        for k in rng.permutation(len(empty))[:2]:
            x, y = empty[int(k)]
            folder.add(split, f"{prefix}{sample.image_id}_{x}_{y}_bg", _to_uint8(
                extract_tile(full, x, y, tile_w, tile_h), False), [])


# ------------------------------------------------------------------------------------------ fitting


@dataclass
class FitResult:
    net: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def _initial_network(config: DetectionConfig, classes: int, rotated: bool, workspace: Workspace,
                     context: JobContext) -> tuple[torch.nn.Module, bool]:
    arch = DETECTION_ARCHITECTURES[config.architecture]
    net = yolo.build_model(arch.yaml(rotated), classes, rotated)
    loaded = False
    if config.resume_from:
        record = workspace.model_store.record(config.resume_from)
        if record.get("module") != "detection":
            raise AstrocyteError(f"model {config.resume_from!r} is not a detection model")
        copied = yolo.load_matching(net, torch_state(workspace.model_store.tensors(config.resume_from)))
        context.emit("status", message=f"continuing from {config.resume_from!r} ({copied} tensors)")
        loaded = True
    elif config.pretrained:
        path = weights.local_weights(arch.weights_name(rotated))
        if path is not None:
            try:
                state = weights.load_state_file(path)
                state = state.get("model", state) if isinstance(state, dict) else state
                loaded = yolo.load_matching(net, dict(state)) > 0
            except Exception as exc:  # noqa: BLE001 - a bad weights file falls back to random init
                context.emit("status", message=f"could not use {path}: {exc}")
        if not loaded:
            weights.warn_random_init(arch.weights_name(rotated))
    return net, loaded


def _overrides(config: DetectionConfig, spec: InputSpec, device: torch.device, root: Path, seed: int,
               epochs: int) -> dict:
    patience = config.patience if config.early_stopping else epochs + 1
    return {
        "epochs": epochs, "batch": config.batch_size, "imgsz": max(spec.width, spec.height),
        "device": "cpu" if device.type == "cpu" else str(device.index or 0), "workers": config.workers,
        "project": str(root), "name": "run", "exist_ok": True, "plots": False, "save": False, "val": True,
        "seed": seed, "deterministic": False, "optimizer": "SGD" if config.optimizer == "sgd" else "AdamW",
        "lr0": config.learning_rate, "lrf": 1.0 if config.scheduler == "none" else 0.05,
        "cos_lr": config.scheduler in ("one_cycle", "cyclic"), "momentum": config.momentum,
        "weight_decay": config.weight_decay, "warmup_epochs": config.lr_warmup, "patience": patience,
        # Ultralytics warms biases up from lr 0.1, meant for SGD: with Adam that first step wrecks the biases
        "warmup_bias_lr": 0.1 if config.optimizer == "sgd" else 0.0,
        "amp": bool(config.mixed_precision and device.type == "cuda"), "verbose": False, "rect": False,
        "max_det": config.max_detections, "iou": config.overlap, "pretrained": False, "cache": False,
        "freeze": 10 if config.fast_training else None,
        "nbs": config.batch_size,  # one optimizer step per batch (Ultralytics otherwise accumulates to 64 images)
        **config.augmentation.ultralytics(),
    }


def fit(net: torch.nn.Module, folder: yolo.YoloFolder, config: DetectionConfig, spec: InputSpec, epochs: int,
        seed: int, context: JobContext, tag: str = "") -> FitResult:
    """Train ``net`` with Ultralytics on ``folder``; events per epoch; the best epoch's EMA weights kept."""
    device = resolve_device(config.device)
    result = FitResult(net)
    best: dict = {}
    steps = {"done": 0}

    def on_batch(trainer) -> None:
        if context.cancelled:
            raise JobCancelled("training cancelled")
        steps["done"] += 1
        total = len(trainer.train_loader) * trainer.epochs if trainer.train_loader is not None else None
        context.progress(steps["done"], total, f"{tag}epoch {trainer.epoch + 1}/{trainer.epochs}")
        if trainer.loss_items is not None:
            context.emit("batch", {"loss": _total(trainer.loss_items)}, epoch=trainer.epoch + 1)

    def on_epoch(trainer) -> None:
        metrics = dict(trainer.metrics or {})
        values = {"loss": _total(trainer.tloss),
                  "val_loss": float(sum(v for k, v in metrics.items() if k.startswith("val/"))),
                  "val_map50": float(next((v for k, v in metrics.items() if "mAP50(" in k), 0.0)),
                  "val_map": float(next((v for k, v in metrics.items() if "mAP50-95" in k), 0.0)),
                  "val_precision": float(next((v for k, v in metrics.items() if "precision" in k), 0.0)),
                  "val_recall": float(next((v for k, v in metrics.items() if "recall" in k), 0.0)),
                  "lr": float(trainer.optimizer.param_groups[0]["lr"]), "epoch": trainer.epoch + 1}
        result.history.append(values)
        context.emit("epoch", values, epoch=trainer.epoch + 1)
        if trainer.stopper.best_epoch == trainer.epoch + 1 or not best:
            best["state"] = copy.deepcopy(trainer.ema.ema.state_dict())
            result.best_epoch = trainer.epoch + 1
        if trainer.stop and trainer.epoch + 1 < trainer.epochs:
            result.stopped_early = True
            context.emit("status", message=f"{tag}early stopping after epoch {trainer.epoch + 1} "
                                           f"(best epoch {result.best_epoch})")

    yolo.run_trainer(net, folder.data_yaml(), folder.rotated, _overrides(config, spec, device, folder.root, seed,
                                                                           epochs), on_batch, on_epoch)
    trained = copy.deepcopy(net).float().cpu()
    if best:
        trained.load_state_dict({k: v.float() for k, v in best["state"].items()})
    result.net = trained.eval()
    return result


# ------------------------------------------------------------------------------------------ the job


def train(workspace: Workspace, dataset_name: str, model_name: str, config: DetectionConfig,
          description: str = "", context: JobContext | None = None) -> str:
    context = context or inline_context()
    started = time.perf_counter()
    dataset = open_dataset(workspace, dataset_name, "detection")
    categories = dataset.categories
    if not categories:
        raise AstrocyteError(f"dataset {dataset_name!r} has no category: add boxes first")
    table = dataset.table
    train_pool = table.index[table["assigned"] == "train"].tolist()
    train_ids = labelled_ids(dataset, train_pool)
    val_ids = labelled_ids(dataset, table.index[table["assigned"] == "validation"].tolist()) or train_ids
    if not train_ids:
        raise AstrocyteError(f"dataset {dataset_name!r} has no training image with ground-truth boxes")
    rotated = config.box_type == "rotated" or (config.box_type == "auto" and dataset_is_rotated(dataset))
    seed = seed_everything(config.seed)
    spec = detection_spec(dataset, config)
    tiling = plan_tiling(dataset, train_ids, config) if config.tiling else None
    rng = np.random.default_rng(seed)
    device = resolve_device(config.device)
    net, loaded = _initial_network(config, len(categories), rotated, workspace, context)
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix=".detection-", dir=workspace.path) as tmp:
        root = Path(tmp)
        if config.self_training:
            from astrocyte_lab.modules.detection.selftrain import self_train

            result, extra = self_train(workspace, dataset, net, config, spec, tiling, rotated, train_ids, val_ids,
                                       seed, rng, root, context)
        else:
            folder = _folder(root / "data", dataset, categories, rotated, spec, tiling, train_ids, val_ids, rng)
            context.emit("status", message=f"training {config.architecture} ({'rotated' if rotated else 'boxes'}) "
                                           f"on {len(train_ids)} images ({folder.counts['train']} "
                                           f"{'tiles' if tiling else 'inputs'}), {len(val_ids)} for validation, "
                                           f"at {spec.width} x {spec.height} on {device}")
            result = fit(net, folder, config, spec, config.epochs, seed, context)
    best = result.history[result.best_epoch - 1] if result.best_epoch else (result.history or [{}])[-1]
    arch = DETECTION_ARCHITECTURES[config.architecture]
    record = {
        "name": model_name, "module": "detection", "architecture": config.architecture, "categories": categories,
        "input": spec.to_record(), "config": config.to_dict(),
        "metrics": {"val_map50": best.get("val_map50", 0.0), "val_map": best.get("val_map", 0.0),
                    "val_loss": best.get("val_loss", 0.0)},
        "history": result.history, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "dataset": dataset_name, "images": {"train": len(train_ids), "validation": len(val_ids)}, "seed": seed,
        "pretrained": bool(loaded), "device": str(device), "description": description,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 2),
        "detection": {"yaml": _plain(result.net.yaml), "rotated": rotated, "network": arch.yaml(rotated),
                      "confidence": config.confidence, "overlap": config.overlap,
                      "max_detections": config.max_detections, "class_agnostic": config.class_agnostic,
                      "tiling": tiling.to_record() if tiling else None, **extra},
    }
    tensors = {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
               for k, v in result.net.state_dict().items()}
    workspace.model_store.save(model_name, record, tensors, spec.roi_mask)
    context.emit("status", message=f"saved model {model_name!r}: validation mAP@0.5 {best.get('val_map50', 0):.3f}")
    return model_name


def _folder(root: Path, dataset: Dataset, categories: list[str], rotated: bool, spec: InputSpec,
            tiling: Tiling | None, train_ids: list[int], val_ids: list[int], rng: np.random.Generator,
            extra_train: list[Sample] | None = None, repeat: int = 1) -> yolo.YoloFolder:
    if root.exists():
        shutil.rmtree(root)
    folder = yolo.YoloFolder(root, categories, rotated)
    write_split(folder, "train", dataset, samples_for(dataset, train_ids, categories, rotated), spec, tiling, rng,
                repeat=repeat)
    if extra_train:
        write_split(folder, "train", dataset, extra_train, spec, tiling, rng, prefix="p")
    write_split(folder, "val", dataset, samples_for(dataset, val_ids, categories, rotated), spec, tiling, rng)
    return folder


def _total(losses) -> float:
    """Sum of the loss parts (a dict of tensors in this Ultralytics, a tensor in older ones)."""
    if losses is None:
        return float("nan")
    if isinstance(losses, dict):
        return float(sum(float(v) for v in losses.values()))
    return float(torch.as_tensor(losses).sum())


def _plain(value):
    """The network's yaml as JSON-friendly values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return None
    return value
