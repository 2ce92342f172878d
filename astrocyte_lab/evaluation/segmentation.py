"""Test a segmentation model: IoU per category, mean IoU, pixel accuracy, and per-image predicted masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.segmentation import postprocess
from astrocyte_lab.modules.segmentation.model import SegmentationNet
from astrocyte_lab.modules.segmentation.trainer import load_network
from astrocyte_lab.runtime import tiling
from astrocyte_lab.runtime.preprocess import convert_channels, crop_image, resize_bilinear, to_unit_range
from astrocyte_lab.training.data import InputSpec
from astrocyte_lab.training.devices import advise_on_out_of_memory, resolve_device

Subset = Literal["train", "validation", "all"]
TILE_BATCH = 8


@dataclass
class SegmentationReport:
    model: str
    dataset: str
    categories: list[str]
    iou: dict[str, float]  # -1: category in neither ground truth nor prediction
    mean_iou: float  # over categories present, background included
    mean_iou_defects: float  # the same without the background
    accuracy: float
    confusion: np.ndarray
    per_image: pd.DataFrame = field(repr=False)
    masks: dict[int, np.ndarray] = field(repr=False, default_factory=dict)  # image id -> predicted mask

    def to_dict(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "iou": self.iou, "mean_iou": self.mean_iou,
                "mean_iou_defects": self.mean_iou_defects, "accuracy": self.accuracy,
                "confusion": self.confusion.tolist()}

    def summary(self) -> dict[str, float]:
        """The headline figures (what ``astrocyte-lab test`` prints as JSON)."""
        return {"mean_iou": self.mean_iou, "mean_iou_defects": self.mean_iou_defects, "accuracy": self.accuracy}

    def lines(self) -> list[str]:
        """A readable per-category IoU table."""
        return [f"{name:20} IoU {iou:.3f}" if iou >= 0 else f"{name:20} IoU -1 (absent)"
                for name, iou in self.iou.items()]


def evaluate_segmenter(workspace: Workspace, model_name: str, dataset_name: str,
                       subset: Subset | list[int] = "validation", device: str = "auto",
                       keep_masks: bool = True, write_back: bool = True) -> SegmentationReport:
    """Predict every selected image at its stored resolution and compare with its ground-truth mask.

    ``write_back`` stores each predicted mask in the dataset (``Dataset.predicted_mask``) and saves it, so
    overlays can be drawn later without running the model again; ``keep_masks`` also keeps them in the report.
    """
    net, record, spec = load_network(workspace, model_name)
    dataset = workspace.dataset(dataset_name)
    categories = list(record["categories"])
    if not set(categories) & set(dataset.categories):
        raise AstrocyteError(f"model {model_name!r} knows {categories}, dataset {dataset_name!r} has "
                             f"{dataset.categories}: no category in common")
    remap = np.array([categories.index(c) if c in categories else -1 for c in dataset.categories], np.int64)
    to_dataset = np.array([dataset.categories.index(c) if c in dataset.categories else -1 for c in categories],
                          np.int64)
    table = dataset.table
    rows = table.loc[subset] if isinstance(subset, list) else table if subset == "all" else \
        table[table["assigned"] == subset]
    if rows.empty:
        raise AstrocyteError(f"no image to test in dataset {dataset_name!r} ({subset})")
    torch_device = resolve_device(device)
    net.to(torch_device)
    seg = record.get("segmentation") or {}
    background = int(seg.get("background", 0))
    k = len(categories)
    total = np.zeros((k, k), np.int64)
    per_image, masks = [], {}
    for image_id in rows.index:
        image = dataset.image(int(image_id))
        tile = (seg.get("tiling") or {}).get("tile")
        with advise_on_out_of_memory(f"testing model {model_name!r} on image {int(image_id)}", region_size=spec.size,
                                     tile_size=tile, device=str(torch_device)):
            probs = predict_probabilities(net, spec, image, seg.get("tiling"), background, torch_device)
        predicted = probs.argmax(0).astype(np.uint8)
        truth_raw = dataset.mask(int(image_id))
        truth = np.full(predicted.shape, background, np.int64) if truth_raw is None else remap[truth_raw]
        valid = truth >= 0
        matrix = postprocess.confusion(truth, predicted, k, valid)
        total += matrix
        ious = postprocess.iou_per_class(matrix)
        per_image.append({"image_id": int(image_id), "name": rows.loc[image_id, "name"],
                          "mean_iou": postprocess.mean_iou(ious), "accuracy": postprocess.pixel_accuracy(matrix),
                          **{f"area_{c}": int((predicted == i).sum()) for i, c in enumerate(categories)}})
        if keep_masks:
            masks[int(image_id)] = predicted
        if write_back:
            _write_back(dataset, int(image_id), predicted, to_dataset)
    if write_back:
        dataset.save()
    ious = postprocess.iou_per_class(total)
    defects = np.delete(ious, background)
    return SegmentationReport(model_name, dataset_name, categories, dict(zip(categories, ious.tolist(), strict=True)),
                              postprocess.mean_iou(ious), postprocess.mean_iou(defects),
                              postprocess.pixel_accuracy(total), total,
                              pd.DataFrame(per_image).set_index("image_id"), masks)


def _write_back(dataset: Dataset, image_id: int, predicted: np.ndarray, to_dataset: np.ndarray) -> None:
    """Store a predicted mask in dataset category indices (model-only categories become the background)."""
    background = dataset.categories.index("background") if "background" in dataset.categories else 0
    lut = np.where(to_dataset >= 0, to_dataset, background).astype(np.uint8)
    dataset.set_predicted_mask(image_id, lut[predicted])


@torch.no_grad()
def predict_probabilities(net: SegmentationNet, spec: InputSpec, image: np.ndarray, tiles: dict | None,
                          background: int, device: torch.device) -> np.ndarray:
    """Class probabilities ``(K, H, W)`` at the image's own resolution (outside the ROI: background).

    Mirrors the runtime's rule: shrink to the region size and back, or tile at full resolution and stitch.
    """
    height, width = image.shape[:2]
    if tiles:
        inner = _tiled(net, spec, image, tiles, device)
    else:
        tensor = torch.from_numpy(spec.to_tensor(image))[None].to(device)
        small = torch.softmax(net(tensor), 1)[0].float().cpu().numpy()
        crop_w, crop_h = (spec.crop[2], spec.crop[3]) if spec.crop else (width, height)
        inner = resize_bilinear(small.transpose(1, 2, 0), crop_w, crop_h).transpose(2, 0, 1)
    k = inner.shape[0]
    out = np.zeros((k, height, width), np.float32)
    out[background] = 1.0
    x, y = (spec.crop[0], spec.crop[1]) if spec.crop else (0, 0)
    if spec.roi_mask is not None:
        inner = np.where(spec.roi_mask[None], inner, np.eye(k, dtype=np.float32)[background][:, None, None])
    out[:, y:y + inner.shape[1], x:x + inner.shape[2]] = inner
    return out


def _tiled(net: SegmentationNet, spec: InputSpec, image: np.ndarray, tiles: dict, device: torch.device):
    array = image if image.ndim == 3 else image[:, :, None]
    if spec.crop is not None:
        array = crop_image(array, spec.crop)
    unit = convert_channels(to_unit_range(array, spec.bit_depth), spec.channels)
    normalised = (unit - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    tile_w, tile_h = tiles["tile"]
    overlap = float(tiles["overlap"])
    origins = tiling.tile_grid(normalised.shape[1], normalised.shape[0], tile_w, tile_h, overlap)
    outputs = []
    for start in range(0, len(origins), TILE_BATCH):
        batch = np.stack([tiling.extract_tile(normalised, x, y, tile_w, tile_h).transpose(2, 0, 1)
                          for x, y in origins[start:start + TILE_BATCH]])
        outputs += list(torch.softmax(net(torch.from_numpy(batch).to(device)), 1).float().cpu().numpy())
    return tiling.stitch(outputs, origins, normalised.shape[1], normalised.shape[0],
                         tiling.blend_weights(tile_w, tile_h, overlap))
