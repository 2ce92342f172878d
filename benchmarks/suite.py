"""Quality suite (issue 20): the product's default configuration for a module on every real dataset that fits it,
beside the library alone at the same input size, driven through the public API as a user would.

For each dataset and seed the product run creates a workspace, imports the training and test images with
``Workspace.create_dataset``, trains with the module's default config (plus any ``--config key=value``), tests,
exports the ``.astromodel`` package and times it. The baselines get the very same pixels: anomaly, plain anomalib
PatchCore and PaDiM (same backbone, layers, coreset ratio and feature count, anomalib's own scoring);
segmentation, a plain segmentation_models_pytorch Unet trained from the same ImageNet encoder weights. Detection
and classification print "not yet" rows. The protocol (splits, input sizes, seeds, budgets) is in
``benchmarks/README.md``; ``--data`` points at any folder laid out like ``../shared/datasets``.

    .venv/bin/python benchmarks/suite.py --module anomaly [--seeds 0 1 2] [--quick] [--datasets magnetic_tile]
        [--config layout_model=false defect_segmenter=false] [--baselines patchcore padim] [--json out.json]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SPLIT_SEED = 0  # the train/test splits never change with --seeds: only the models' seeds do
MT_TRAIN = 200  # magnetic tiles: Normal training images (anomalib's greedy coreset is quadratic in them)
MT_TEST_SHARE = 0.2  # magnetic tiles, segmentation: held-out share of every defect folder
LONGEST = 256  # input size policy: longest side, in pixels
QUICK = {"longest": 128, "train": 24, "test_normal": 8, "test_defect": 8, "timing": 3, "epochs": 2}
TIMING_IMAGES = 20  # images timed one at a time (after a warm-up call) for ms/image
BATCH = 8  # baseline feature extraction / inference batch


# ------------------------------------------------------------------------------------------------ source images

@dataclass(frozen=True)
class Item:
    """One source image: ``defect`` is "" when defect-free, else its kind; ``mask`` a soft PNG (> 127 = defect)
    or a YOLO polygon file; ``split`` the upstream split where the dataset has one."""

    name: str
    image: Path
    defect: str
    mask: Path | None
    split: str = ""


def magnetic_tile_items(root: Path) -> list[Item]:
    """``MT_<kind>/Imgs/*.jpg`` with ``*.png`` masks beside them; ``MT_Free`` is defect-free."""
    items = []
    for folder in sorted(p for p in root.glob("MT_*") if (p / "Imgs").is_dir()):
        kind = folder.name.removeprefix("MT_")
        defect = "" if kind == "Free" else kind.lower()
        for image in sorted((folder / "Imgs").glob("*.jpg")):
            mask = image.with_suffix(".png")
            items.append(Item(f"{kind}_{image.stem}", image, defect, mask if defect and mask.is_file() else None))
    return items


def kolektorsdd_items(root: Path) -> list[Item]:
    """``images/<split>/*.jpg`` with ``labels/<split>/<stem>.txt`` polygons; an empty label file = defect-free."""
    items = []
    for split in ("train", "val"):
        for image in sorted((root / "images" / split).glob("*.jpg")):
            label = root / "labels" / split / f"{image.stem}.txt"
            defect = label.is_file() and bool(label.read_text().strip())
            items.append(Item(f"{split}_{image.stem}", image, "defect" if defect else "",
                              label if defect else None, split))
    return items


def polygon_mask(text: str, height: int, width: int) -> np.ndarray:
    """YOLO segmentation lines (``class x1 y1 x2 y2 ...``, normalised) rasterised into a bool mask."""
    mask = np.zeros((height, width), np.uint8)
    for line in text.splitlines():
        values = line.split()
        if len(values) < 7:
            continue
        points = np.asarray(values[1:1 + (len(values) - 1) // 2 * 2], np.float64).reshape(-1, 2) * (width, height)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask > 0


def read_mask(item: Item, height: int, width: int) -> np.ndarray:
    """The item's defect mask at its native size (all False when it has none)."""
    if item.mask is None:
        return np.zeros((height, width), bool)
    if item.mask.suffix == ".txt":
        return polygon_mask(item.mask.read_text(), height, width)
    soft = cv2.imread(str(item.mask), cv2.IMREAD_GRAYSCALE)
    if soft.shape != (height, width):
        soft = cv2.resize(soft, (width, height), interpolation=cv2.INTER_NEAREST)
    return soft > 127


def read_source(path: Path) -> np.ndarray:
    """A source image as stored (grey stays 2-D, colour stays BGR as OpenCV writes it back)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


# ------------------------------------------------------------------------------------------------ input size

def majority_size(items: Sequence[Item]) -> tuple[int, int]:
    """The most common ``(width, height)`` among the sources (read from the file headers)."""
    from PIL import Image

    sizes = Counter()
    for item in items:
        with Image.open(item.image) as image:
            sizes[image.size] += 1
    return sizes.most_common(1)[0][0]


def input_size(items: Sequence[Item], longest: int, square: bool) -> tuple[int, int]:
    """``(width, height)``: the majority aspect with its longest side at ``longest`` (or a square for sets of many
    aspects), each side rounded to a multiple of 32 as the networks' strides need."""
    if square:
        return longest, longest
    width, height = majority_size(items)
    scale = longest / max(width, height)
    return tuple(max(32, round(side * scale / 32) * 32) for side in (width, height))  # type: ignore[return-value]


def resized(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Area averaging when shrinking (as the product's import does), bilinear when enlarging."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrinking = size[0] * size[1] <= image.shape[0] * image.shape[1]
    method = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=method)


# ------------------------------------------------------------------------------------------------ splits

@dataclass
class Split:
    """Images that train and images that are only tested; ``classes`` for segmentation (background first)."""

    train: list[Item]
    test: list[Item]
    classes: list[str] = field(default_factory=list)


def _shuffled(items: Sequence[Item]) -> list[Item]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(items))
    return [items[i] for i in order]


def magnetic_tile_anomaly(items: list[Item]) -> Split:
    """``MT_TRAIN`` random defect-free images train (at most half of them); the other defect-free images and every
    defective image are tested."""
    free = _shuffled([i for i in items if not i.defect])
    cut = min(MT_TRAIN, len(free) // 2)
    return Split(free[:cut], free[cut:] + [i for i in items if i.defect])


def kolektorsdd_anomaly(items: list[Item]) -> Split:
    """The defect-free images of the upstream train split train; everything else is tested."""
    train = [i for i in items if i.split == "train" and not i.defect]
    trained = set(train)
    return Split(train, [i for i in items if i not in trained])


def defect_classes(items: list[Item]) -> list[str]:
    return ["background", *sorted({i.defect for i in items if i.defect})]


def magnetic_tile_segmentation(items: list[Item]) -> Split:
    """The defective images only, one class per defect folder; ``MT_TEST_SHARE`` of each folder is held out (one
    generator drawn folder after folder: the split ``quality_segmentation.py`` has always used)."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for kind in defect_classes(items)[1:]:
        folder = [i for i in items if i.defect == kind]
        order = rng.permutation(len(folder))
        cut = round(MT_TEST_SHARE * len(folder))
        test += [folder[k] for k in order[:cut]]
        train += [folder[k] for k in order[cut:]]
    return Split(train, test, defect_classes(items))


def kolektorsdd_segmentation(items: list[Item]) -> Split:
    """The upstream split: ``images/train`` trains (defect-free images included), ``images/val`` is tested."""
    return Split([i for i in items if i.split == "train"], [i for i in items if i.split == "val"],
                 ["background", "defect"])


def quick_split(split: Split) -> Split:
    """A few images of each role (seeded), for a first look and for CI."""
    test = _shuffled(split.test)
    return Split(split.train[:QUICK["train"]], [i for i in test if not i.defect][:QUICK["test_normal"]]
                 + [i for i in test if i.defect][:QUICK["test_defect"]], split.classes)


# ------------------------------------------------------------------------------------------------ datasets

@dataclass(frozen=True)
class SuiteDataset:
    """A folder of ``--data`` and how each module uses it."""

    name: str
    read: Callable[[Path], list[Item]]
    square: bool  # sources of many sizes and both orientations: stretched to a square
    splits: dict[str, Callable[[list[Item]], Split]]


DATASETS: dict[str, SuiteDataset] = {
    "magnetic_tile": SuiteDataset("magnetic_tile", magnetic_tile_items, True,
                                  {"anomaly": magnetic_tile_anomaly, "segmentation": magnetic_tile_segmentation}),
    "kolektorsdd": SuiteDataset("kolektorsdd", kolektorsdd_items, False,
                                {"anomaly": kolektorsdd_anomaly, "segmentation": kolektorsdd_segmentation}),
}
NOT_YET = {"detection": ("deeppcb",), "classification": ("elpv",)}


@dataclass
class Prepared:
    """One dataset's images at the input size, in folders the product imports and the baselines read:
    anomaly ``train/``, ``test_normal/``, ``test_anomaly/``, ``test_masks/`` (0/255); segmentation
    ``train/images``, ``train/masks``, ``test/images``, ``test/masks`` (pixel value = class index)."""

    dataset: str
    folder: Path
    size: tuple[int, int]
    train: int
    test: int
    classes: list[str]


def write_image(item: Item, folder: Path, size: tuple[int, int]) -> tuple[int, int]:
    """The item's image resized to ``size`` as ``folder/<name>.png``; returns its native ``(height, width)``."""
    image = read_source(item.image)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{item.name}.png"), resized(image, size))
    return image.shape[:2]


def write_mask(item: Item, folder: Path, size: tuple[int, int], native: tuple[int, int], value: int) -> None:
    """The item's defect mask with ``value`` inside, resized by nearest neighbour, as ``folder/<name>.png``."""
    mask = np.where(read_mask(item, *native), value, 0).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{item.name}.png"), resized(mask, size, nearest=True))


def prepare_anomaly(split: Split, folder: Path, size: tuple[int, int]) -> None:
    for item in split.train:
        write_image(item, folder / "train", size)
    for item in split.test:
        native = write_image(item, folder / ("test_anomaly" if item.defect else "test_normal"), size)
        if item.defect and item.mask is not None:
            write_mask(item, folder / "test_masks", size, native, 255)


def prepare_segmentation(split: Split, folder: Path, size: tuple[int, int]) -> None:
    for role, items in (("train", split.train), ("test", split.test)):
        for item in items:
            native = write_image(item, folder / role / "images", size)
            value = split.classes.index(item.defect) if item.defect else 0
            write_mask(item, folder / role / "masks", size, native, value)


def prepare(spec: SuiteDataset, root: Path, module: str, work: Path, longest: int, quick: bool) -> Prepared:
    """Read, split and resize one dataset for ``module`` under ``work/<dataset>``."""
    items = spec.read(root / spec.name)
    split = spec.splits[module](items)
    split = quick_split(split) if quick else split
    size = input_size(split.train + split.test, longest, spec.square)
    folder = work / spec.name
    (prepare_anomaly if module == "anomaly" else prepare_segmentation)(split, folder, size)
    return Prepared(spec.name, folder, size, len(split.train), len(split.test), split.classes)


# ------------------------------------------------------------------------------------------------ measuring

def release_memory() -> None:
    """Collect garbage and hand freed heap back to the system, so one run's peak does not start from the last's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> None:
    """Reset the process's RSS high-water mark to its current RSS (Linux >= 4.0; silently kept elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """The RSS high-water mark since :func:`reset_peak_rss` (``VmHWM``), else the process's lifetime peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_ms(call: Callable[[np.ndarray], Any], images: Sequence[np.ndarray]) -> float:
    """Median wall time of ``call`` per image, one image at a time, after one warm-up call."""
    call(images[0])
    times = []
    for image in images:
        start = time.perf_counter()
        call(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def read_folder(folder: Path) -> list[tuple[str, np.ndarray]]:
    """``(stem, image)`` of every PNG in ``folder`` by name; colour as RGB (the product's channel order)."""
    out = []
    for path in sorted(folder.glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        out.append((path.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image))
    return out


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items evenly spaced through ``items`` (all of them when fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(k * (len(items) - 1) / (count - 1))] for k in range(count)] if count > 1 else [items[0]]


def to_batch(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]):
    """8-bit images to a normalised ``(N, 3, H, W)`` float tensor (grey repeated over 3 channels, as the product)."""
    import torch

    array = np.stack([image if image.ndim == 3 else image[:, :, None] for image in images]).astype(np.float32) / 255
    channels = array.shape[-1]
    array = (array - np.asarray(mean[:channels], np.float32)) / np.asarray(std[:channels], np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    return tensor.expand(-1, 3, -1, -1) if channels == 1 else tensor


@dataclass
class Row:
    """One run's figures; ``metrics`` holds the module's two quality figures (None when not measured)."""

    dataset: str
    seed: int | None
    run: str
    metrics: dict[str, float | None]
    fit_s: float | None = None
    ms_per_image: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def measured(run: Callable[[], Row]) -> Row:
    """``run()`` with the peak RSS of its own duration and the load average around it."""
    release_memory()
    reset_peak_rss()
    load = os.getloadavg()[0]
    row = run()
    row.peak_rss_mb = round(peak_rss_mb())
    row.extra["load_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return row


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ anomaly

def anomaly_workspace(prepared: Prepared, work: Path):
    """A workspace with ``train`` (Normal images) and ``test`` (Normal and Anomaly images with masks)."""
    from astrocyte_lab import Location, NamedSet, Workspace

    ws = Workspace(work)
    folder = prepared.folder
    ws.create_dataset("train", "anomaly", [NamedSet("normal", [Location(folder / "train", category="Normal")])],
                      train_ratio=1.0, seed=0)
    sets = [NamedSet("normal", [Location(folder / "test_normal", category="Normal")])] if \
        (folder / "test_normal").is_dir() else []
    masks = Location(folder / "test_masks") if (folder / "test_masks").is_dir() else None
    sets.append(NamedSet("defects", [Location(folder / "test_anomaly", category="Anomaly")], masks=masks))
    ws.create_dataset("test", "anomaly", sets, train_ratio=0.0, seed=0)
    return ws


def timing_images(prepared: Prepared, count: int) -> list[np.ndarray]:
    """Test images (of every kind) to time the models on, evenly spread through the sorted names."""
    folder = prepared.folder
    folders = [folder / "test" / "images"] if prepared.classes else [folder / "test_normal", folder / "test_anomaly"]
    images = [image for path in folders for _, image in read_folder(path)]
    return spread(images, count)


def product_anomaly(prepared: Prepared, work: Path, seed: int, overrides: dict, timing: int) -> Row:
    from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = anomaly_workspace(prepared, work)
    _, fit_s = timed(lambda: train_job(ws, "train", "model", AnomalyConfig(seed=seed, **overrides)).result())
    report = evaluate_anomaly(ws, "model", "test", "all", write_back=False)
    predictor = load_package(export_package(ws, "model", work / "model.astromodel"))
    ms = median_ms(predictor.predict, timing_images(prepared, timing))
    record = ws.model_store.record("model")["anomaly"]
    return Row(prepared.dataset, seed, "", {"image_auroc": report.auroc, "pixel_auroc": report.pixel_auroc},
               fit_s, ms, extra={"memory_bank": record.get("memory_bank"), "layout": record.get("layout") is not None,
                                 "segmenter": record.get("segmenter") is not None})


def anomalib_model(kind: str, config):
    """anomalib's own torch model for ``kind`` on the product config's backbone, layers and feature count, with
    the same local ImageNet weights (anomalib would download them); everything else is anomalib's default."""
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    from astrocyte_lab.modules.anomaly.registry import BACKBONES

    backbone = BACKBONES[config.architecture]
    if kind == "patchcore":
        model = PatchcoreModel(layers=list(backbone.layers), backbone=backbone.name, pre_trained=False)
    else:
        model = PadimModel(backbone=backbone.name, layers=list(backbone.layers), pre_trained=False,
                           n_features=config.padim_features)
    state = backbone.state()
    if state is not None:
        model.feature_extractor.feature_extractor.load_state_dict(state, strict=False)
    return model, backbone


def fit_anomalib(model, kind: str, images: Sequence[np.ndarray], backbone, coreset_ratio: float) -> None:
    """anomalib's training: collect the embeddings of every image, then the coreset (PatchCore) or Gaussians."""
    model.train()
    for first in range(0, len(images), BATCH):
        model(to_batch(images[first:first + BATCH], backbone.mean, backbone.std))
    if kind == "patchcore":
        model.subsample_embedding(coreset_ratio)
    else:
        model.fit()
    model.eval()


def score_anomalib(model, images: Sequence[np.ndarray], backbone) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image scores and input-sized anomaly maps from anomalib's inference."""
    import torch

    scores, maps = [], []
    with torch.inference_mode():
        for first in range(0, len(images), BATCH):
            out = model(to_batch(images[first:first + BATCH], backbone.mean, backbone.std))
            scores += out.pred_score.reshape(-1).tolist()
            maps += list(out.anomaly_map.reshape(-1, *out.anomaly_map.shape[-2:]).numpy())
    return np.asarray(scores), maps


def anomaly_test_set(prepared: Prepared) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray | None]]:
    """Test images, is-anomaly labels and masks (None for a defective image without one)."""
    folder = prepared.folder
    normal = [image for _, image in read_folder(folder / "test_normal")]
    anomalous = read_folder(folder / "test_anomaly")
    masks: list[np.ndarray | None] = [np.zeros(image.shape[:2], bool) for image in normal]
    for stem, _ in anomalous:
        path = folder / "test_masks" / f"{stem}.png"
        masks.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127 if path.is_file() else None)
    labels = np.array([False] * len(normal) + [True] * len(anomalous))
    return normal + [image for _, image in anomalous], labels, masks


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> float | None:
    """The product's pixel AUROC over the images with a mask, strided as the product's test strides it."""
    from astrocyte_lab.evaluation.anomaly import PIXEL_BUDGET
    from astrocyte_lab.modules.anomaly import postprocess

    height, width = maps[0].shape
    step = max(1, int(np.ceil(np.sqrt(len(maps) * width * height / PIXEL_BUDGET))))
    pairs = [(m[::step, ::step], a[::step, ::step]) for m, a in zip(masks, maps, strict=True) if m is not None]
    return postprocess.pixel_auroc([m for m, _ in pairs], [a for _, a in pairs])


def baseline_anomaly(kind: str, prepared: Prepared, seed: int, overrides: dict, timing: int) -> Row:
    import torch

    from astrocyte_lab.modules.anomaly import postprocess
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig

    config = AnomalyConfig(seed=seed, **overrides)
    torch.manual_seed(seed)
    model, backbone = anomalib_model(kind, config)
    train = [image for _, image in read_folder(prepared.folder / "train")]
    _, fit_s = timed(lambda: fit_anomalib(model, kind, train, backbone, config.coreset_ratio))
    images, labels, masks = anomaly_test_set(prepared)
    scores, maps = score_anomalib(model, images, backbone)
    with torch.inference_mode():
        ms = median_ms(lambda image: model(to_batch([image], backbone.mean, backbone.std)),
                       timing_images(prepared, timing))
    return Row(prepared.dataset, seed, "", {"image_auroc": postprocess.auroc(labels, scores),
                                            "pixel_auroc": pixel_auroc(maps, masks)}, fit_s, ms)


# ------------------------------------------------------------------------------------------------ segmentation

def segmentation_workspace(prepared: Prepared, work: Path):
    """A workspace with ``train`` (85 % train, 15 % validation, the library's draw) and ``test`` datasets."""
    from astrocyte_lab import Workspace, segmentation_set

    ws = Workspace(work)
    for name, ratio in (("train", 0.85), ("test", 0.0)):
        folder = prepared.folder / name
        dataset = ws.create_dataset(name, "segmentation", [segmentation_set(name, folder / "images",
                                                                            folder / "masks")],
                                    train_ratio=ratio, seed=0)
        for value, label in enumerate(prepared.classes):
            if str(value) in dataset.categories:
                dataset.rename_category(str(value), label)
        dataset.save()
    return ws


def product_segmentation(prepared: Prepared, work: Path, seed: int, overrides: dict, timing: int) -> Row:
    from astrocyte_lab.evaluation.segmentation import evaluate_segmenter
    from astrocyte_lab.modules.segmentation.config import SegmentationConfig
    from astrocyte_lab.modules.segmentation.export import export_package
    from astrocyte_lab.modules.segmentation.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = segmentation_workspace(prepared, work)
    _, fit_s = timed(lambda: train_job(ws, "train", "model", SegmentationConfig(seed=seed, **overrides)).result())
    report = evaluate_segmenter(ws, "model", "test", "all", keep_masks=False, write_back=False)
    predictor = load_package(export_package(ws, "model", work / "model.astromodel"))
    ms = median_ms(predictor.predict, timing_images(prepared, timing))
    return Row(prepared.dataset, seed, "", {"defect_iou": report.mean_iou_defects, "mean_iou": report.mean_iou},
               fit_s, ms, extra={"iou": report.iou})


def read_pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = [image for _, image in read_folder(folder / "images")]
    masks = [mask for _, mask in read_folder(folder / "masks")]
    return images, masks


def plain_unet(classes: int):
    """smp's Unet on the product default's encoder (EfficientNet-Lite0) from the same ImageNet weights."""
    import segmentation_models_pytorch as smp

    from astrocyte_lab.training import weights

    net = smp.Unet(encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=classes)
    state = weights.efficientnet_lite0_state()
    if state is not None:
        net.encoder.model.load_state_dict(state, strict=False)
    return net


def train_unet(net, images: list[np.ndarray], masks: list[np.ndarray], config) -> None:
    """A plain loop: Adam at the product config's learning rate, cross-entropy, its epochs and batch size, every
    training image (no validation hold-out, no augmentation, no schedule)."""
    import torch
    import torch.nn.functional as F

    x = to_batch(images, (0.5,) * 3, (0.5,) * 3)
    y = torch.from_numpy(np.stack(masks).astype(np.int64))
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    net.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(x)).split(config.batch_size):
            if len(batch) < 2:  # batch norm needs two samples
                continue
            loss = F.cross_entropy(net(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()


def unet_ious(net, images: list[np.ndarray], masks: list[np.ndarray], classes: int) -> tuple[float, float]:
    """Defect and overall mean IoU from one confusion matrix over every test pixel, as the product's test."""
    import torch

    from astrocyte_lab.modules.segmentation import postprocess

    total = np.zeros((classes, classes), np.int64)
    with torch.inference_mode():
        for first in range(0, len(images), BATCH):
            predicted = net(to_batch(images[first:first + BATCH], (0.5,) * 3, (0.5,) * 3)).argmax(1).numpy()
            for truth, guess in zip(masks[first:first + BATCH], predicted, strict=True):
                total += postprocess.confusion(truth, guess, classes)
    ious = postprocess.iou_per_class(total)
    return postprocess.mean_iou(ious[1:]), postprocess.mean_iou(ious)


def baseline_segmentation(kind: str, prepared: Prepared, seed: int, overrides: dict, timing: int) -> Row:
    import torch

    from astrocyte_lab.modules.segmentation.config import SegmentationConfig

    config = SegmentationConfig(seed=seed, **overrides)
    torch.manual_seed(seed)
    net = plain_unet(len(prepared.classes))
    images, masks = read_pairs(prepared.folder / "train")
    _, fit_s = timed(lambda: train_unet(net, images, masks, config))
    defect, overall = unet_ious(net, *read_pairs(prepared.folder / "test"), len(prepared.classes))
    with torch.inference_mode():
        ms = median_ms(lambda image: net(to_batch([image], (0.5,) * 3, (0.5,) * 3)), timing_images(prepared, timing))
    return Row(prepared.dataset, seed, "", {"defect_iou": defect, "mean_iou": overall}, fit_s, ms)


# ------------------------------------------------------------------------------------------------ modules

@dataclass(frozen=True)
class Module:
    """What the suite runs for one module: its metrics, config class, product run and library-alone runs."""

    metrics: tuple[str, str]
    config: Callable[[], type]
    product: Callable[[Prepared, Path, int, dict, int], Row]
    baselines: dict[str, Callable[[str, Prepared, int, dict, int], Row]]
    labels: dict[str, str]
    quick: dict[str, Any] = field(default_factory=dict)  # config overrides of --quick (the small budget)
    warm_up: tuple[str, ...] = ()  # imported before timing: a running kernel has them loaded


def _anomaly_config() -> type:
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig

    return AnomalyConfig


def _segmentation_config() -> type:
    from astrocyte_lab.modules.segmentation.config import SegmentationConfig

    return SegmentationConfig


MODULES: dict[str, Module] = {
    "anomaly": Module(("image_auroc", "pixel_auroc"), _anomaly_config, product_anomaly,
                      {"patchcore": baseline_anomaly, "padim": baseline_anomaly},
                      {"patchcore": "anomalib PatchCore", "padim": "anomalib PaDiM"},
                      warm_up=("anomalib.models", "onnxruntime")),
    "segmentation": Module(("defect_iou", "mean_iou"), _segmentation_config, product_segmentation,
                           {"unet": baseline_segmentation}, {"unet": "smp Unet (plain loop)"},
                           quick={"epochs": QUICK["epochs"]}, warm_up=("segmentation_models_pytorch", "onnxruntime")),
}


def parse_overrides(pairs: Sequence[str], config_class: type) -> dict[str, Any]:
    """``key=value`` pairs (values read as JSON where they parse: ``false``, ``0.02``, ``[256, 256]``), checked
    against the module's config class."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--config wants key=value, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text
    try:
        config_class(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SystemExit(f"--config: {exc}") from exc
    return overrides


def product_label(overrides: dict[str, Any]) -> str:
    return "product default" + "".join(f" {k}={v}" for k, v in overrides.items())


# ------------------------------------------------------------------------------------------------ running

def run_dataset(module: Module, prepared: Prepared, args: argparse.Namespace, overrides: dict, work: Path,
                on_row: Callable[[Row], None]) -> None:
    """Every seed of the product run and of each requested baseline on one prepared dataset."""
    timing = QUICK["timing"] if args.quick else TIMING_IMAGES
    for seed in args.seeds:
        runs = [("product", product_label(overrides),
                 lambda s=seed: module.product(prepared, work / f"ws-{s}", s, overrides, timing))] \
            if args.product else []
        runs += [(name, module.labels[name],
                  lambda s=seed, n=name: module.baselines[n](n, prepared, s, overrides, timing))
                 for name in args.baselines]
        for name, label, run in runs:
            row = measured(run)
            row.run, row.extra["kind"] = label, name
            on_row(row)
        shutil.rmtree(work / f"ws-{seed}", ignore_errors=True)


def not_yet_rows(module: str) -> list[Row]:
    """Placeholder rows for the modules the suite does not run yet (ELPV needs the ``elpv-dataset`` package)."""
    import importlib.util

    rows = []
    for dataset in NOT_YET[module]:
        note = "not yet"
        if dataset == "elpv" and importlib.util.find_spec("elpv_dataset") is None:
            note = "skipped: .venv/bin/pip install elpv-dataset"
        rows.append(Row(dataset, None, "product default", {}, note=note))
    return rows


def tiny_prepared(module: str, folder: Path) -> Prepared:
    """Noise images, with a bright square as the defect, in the prepared layout of ``module`` (for warming up)."""
    rng = np.random.default_rng(0)
    square = np.zeros((64, 64), np.uint8)
    square[20:36, 20:36] = 1

    def noise(defect: bool = False) -> np.ndarray:
        image = cv2.GaussianBlur(rng.integers(0, 256, (64, 64), dtype=np.uint8), (5, 5), 0)
        return np.where(square > 0, 250, image).astype(np.uint8) if defect else image

    def write(sub: str, index: int, image: np.ndarray) -> None:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / sub / f"{index:02d}.png"), image)

    if module == "anomaly":
        for index in range(12):
            write("train", index, noise())
        for index in range(2):
            write("test_normal", index, noise())
            write("test_anomaly", index, noise(defect=True))
            write("test_masks", index, square * 255)
        return Prepared("warm-up", folder, (64, 64), 12, 4, [])
    for role, count in (("train", 8), ("test", 2)):
        for index in range(count):
            write(f"{role}/images", index, noise(defect=True))
            write(f"{role}/masks", index, square)
    return Prepared("warm-up", folder, (64, 64), 8, 2, ["background", "defect"])


def warm_up(module: str, baselines: Sequence[str], product: bool, work: Path) -> None:
    """Import the libraries and run the product and each baseline once on a tiny made-up set, so one-time costs
    (lazy imports, the first ONNX export, first-call set-up) stay out of the first timed run, as in a kernel that
    has trained before."""
    import importlib

    spec = MODULES[module]
    for name in spec.warm_up:
        importlib.import_module(name)
    prepared = tiny_prepared(module, work / "data")
    overrides = {"epochs": 1} if module == "segmentation" else {}
    if product:
        spec.product(prepared, work / "ws", 0, overrides, 1)
    for name in baselines:
        spec.baselines[name](name, prepared, 0, overrides, 1)
    shutil.rmtree(work, ignore_errors=True)


def run_suite(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Prepare every available dataset, run it, and return the JSON report."""
    started = dt.datetime.now(dt.UTC)
    load = os.getloadavg()
    if args.module in NOT_YET:
        rows = not_yet_rows(args.module)
        return report(args, {}, rows, [], {}, started, load)
    module = MODULES[args.module]
    overrides = {**(module.quick if args.quick else {}), **parse_overrides(args.config, module.config())}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="astro-suite-"))
    warm_up(args.module, args.baselines, args.product, work / "warm-up")
    rows: list[Row] = []
    protocol: dict[str, Any] = {}

    def on_row(row: Row) -> None:  # logged, and the JSON rewritten, as each row comes: a stopped run keeps them
        rows.append(row)
        log(format_row(row, module.metrics))
        save(args.json, report(args, overrides, rows, means(rows, module.metrics), protocol, started, load))

    try:
        for name in args.datasets:
            if not (args.data / name).is_dir():
                log(f"{name}: not under {args.data}, skipped")
                continue
            prepared, prepare_s = timed(lambda n=name: prepare(DATASETS[n], args.data, args.module, work / "data",
                                                               args.size, args.quick))
            protocol[name] = {"input_wh": list(prepared.size), "train_images": prepared.train,
                              "test_images": prepared.test, "classes": prepared.classes,
                              "prepare_s": round(prepare_s, 1)}
            log(f"{name}: {prepared.train} training / {prepared.test} test images at "
                f"{prepared.size[0]}x{prepared.size[1]} (prepared in {prepare_s:.0f} s)")
            run_dataset(module, prepared, args, overrides, work, on_row)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return report(args, overrides, rows, means(rows, module.metrics), protocol, started, load)


def save(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=1))


# ------------------------------------------------------------------------------------------------ reporting

def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present and len(present) == len(values) else None


def means(rows: Sequence[Row], metrics: Sequence[str]) -> list[Row]:
    """Per run: the mean over datasets of each dataset's mean over seeds (only where every dataset has a value)."""
    out = []
    for run in dict.fromkeys(r.run for r in rows):
        per_dataset = {}
        for dataset in dict.fromkeys(r.dataset for r in rows if r.run == run):
            picked = [r for r in rows if r.run == run and r.dataset == dataset]
            per_dataset[dataset] = Row(dataset, None, run, {m: _mean([r.metrics.get(m) for r in picked])
                                                            for m in metrics},
                                       _mean([r.fit_s for r in picked]), _mean([r.ms_per_image for r in picked]),
                                       _mean([r.peak_rss_mb for r in picked]))
        group = list(per_dataset.values())
        out.append(Row(f"mean of {len(group)}", None, run, {m: _mean([r.metrics[m] for r in group]) for m in metrics},
                       _mean([r.fit_s for r in group]), _mean([r.ms_per_image for r in group]),
                       _mean([r.peak_rss_mb for r in group])))
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def header(metrics: Sequence[str]) -> str:
    columns = ["dataset", "seed", "run", *metrics, "fit s", "ms/image", "peak RSS MB"]
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def format_row(row: Row, metrics: Sequence[str]) -> str:
    cells = [row.dataset, "all" if row.seed is None else str(row.seed), row.run,
             *[_fmt(row.metrics.get(m), 3) for m in metrics], _fmt(row.fit_s, 1), _fmt(row.ms_per_image, 1),
             _fmt(row.peak_rss_mb, 0)]
    return "| " + " | ".join(cells) + " |" + (f" {row.note}" if row.note else "")


def table(result: dict[str, Any]) -> str:
    metrics = result["metrics"] or ["quality"]
    rows = [Row(**r) for r in result["rows"]] + [Row(**r) for r in result["means"]]
    lines = [header(metrics), *[format_row(r, metrics) for r in rows]]
    load = result["load_1min"]
    lines.append(f"\n{result['module']}, {result['started']} to {result['finished']} UTC, load (1 min) "
                 f"{load[0]:.2f} -> {load[1]:.2f}, {result['cpus']} CPUs, input sizes "
                 + ", ".join(f"{k} {v['input_wh'][0]}x{v['input_wh'][1]}" for k, v in result["protocol"].items()))
    return "\n".join(lines)


def report(args: argparse.Namespace, overrides: dict, rows: list[Row], mean_rows: list[Row], protocol: dict,
           started: dt.datetime, load: tuple[float, float, float]) -> dict[str, Any]:
    module = MODULES.get(args.module)
    return {"module": args.module, "metrics": list(module.metrics) if module else [],
            "started": started.strftime("%Y-%m-%d %H:%M"), "finished": dt.datetime.now(dt.UTC).strftime("%H:%M"),
            "load_1min": [round(load[0], 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
            "quick": args.quick, "seeds": args.seeds, "config": overrides, "baselines": args.baselines,
            "protocol": protocol, "rows": [_rounded(r) for r in rows], "means": [_rounded(r) for r in mean_rows],
            "command": " ".join(sys.argv), "source": source_version()}


def source_version() -> str:
    """The checkout's commit, marked ``+changes`` when files differ from it (others may be editing the tree)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def _rounded(row: Row) -> dict[str, Any]:
    data = asdict(row)
    data["metrics"] = {k: None if v is None else round(v, 4) for k, v in row.metrics.items()}
    for key in ("fit_s", "ms_per_image"):
        data[key] = None if data[key] is None else round(data[key], 1)
    return data


# ------------------------------------------------------------------------------------------------ command line

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", required=True, choices=[*MODULES, *NOT_YET])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model seeds (splits stay fixed)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small budget: {QUICK['train']} training and {QUICK['test_normal']}+"
                             f"{QUICK['test_defect']} test images per dataset, longest side {QUICK['longest']}, "
                             f"{QUICK['epochs']} epochs where a module trains for epochs")
    parser.add_argument("--datasets", nargs="+", default=None, help="a subset of the module's datasets")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a folder laid out like shared/datasets")
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="product config overrides, e.g. layout_model=false")
    parser.add_argument("--baselines", nargs="*", default=None, help="library-alone runs (default: all; none: "
                                                                     "give the option with no name)")
    parser.add_argument("--product", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-product runs the baselines alone (to add seeds to them)")
    parser.add_argument("--size", type=int, default=None, help=f"longest input side (default {LONGEST}; "
                                                               f"{QUICK['longest']} with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--workdir", type=Path, default=None, help="kept afterwards; default: a temporary folder")
    args = parser.parse_args(argv)
    return _checked(parser, args)


def _checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    module = MODULES.get(args.module)
    known = list(DATASETS) if module else list(NOT_YET[args.module])
    args.datasets = args.datasets or known
    if unknown := set(args.datasets) - set(known):
        parser.error(f"--datasets: unknown for {args.module}: {sorted(unknown)} (choose from {known})")
    choices = list(module.baselines) if module else []
    args.baselines = choices if args.baselines is None else args.baselines
    if unknown := set(args.baselines) - set(choices):
        parser.error(f"--baselines: unknown for {args.module}: {sorted(unknown)} (choose from {choices})")
    args.size = args.size or (QUICK["longest"] if args.quick else LONGEST)
    return args


def quiet() -> None:
    """No progress bars (anomalib's coreset) or deprecation chatter from the libraries between the table rows."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_suite(args, log)
    print(table(result))
    save(args.json, result)
    return result


if __name__ == "__main__":
    main()
