"""From stored dataset images to network tensors, the same way at training, testing and deployment.

:class:`InputSpec` is what a model remembers about its input (size, channels, bit depth, normalisation,
ROI crop and mask); it is saved with the model and written into the deployable package. Evaluation
preprocessing is the runtime's own :func:`astrocyte_lab.runtime.preprocess.preprocess`, so the exported
package sees exactly what the PyTorch model saw; training adds augmentation in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from astrocyte_lab.data.correction import SHRINK_METHOD
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.runtime.preprocess import crop_image, preprocess, resize_nearest, to_unit_range
from astrocyte_lab.training.config import TrainConfig

CACHE_LIMIT_BYTES = 2 * 2**30  # below this, stored images are read once and kept in memory


@dataclass
class InputSpec:
    width: int
    height: int
    channels: int
    bit_depth: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: tuple[int, int, int, int] | None = None
    roi_mask: np.ndarray | None = None  # bool, crop-sized, True = used
    dataset_size: tuple[int, int] | None = None  # (w, h) the dataset's images were generated at; None: older models

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def meta_input(self) -> dict:
        """The package's ``input`` section. ``dataset_resize`` makes the package bring an image of another size
        (the original camera file) to the dataset's size the way generation did, before the ROI crop."""
        meta = {"width": self.width, "height": self.height, "channels": self.channels,
                "source_channels": self.channels, "bit_depth": self.bit_depth, "resize": "bilinear",
                "mean": list(self.mean), "std": list(self.std)}
        if self.dataset_size is not None:
            meta["dataset_resize"] = {"width": self.dataset_size[0], "height": self.dataset_size[1],
                                      "method": SHRINK_METHOD}
        return meta

    def meta_roi(self) -> dict:
        return {"crop": list(self.crop) if self.crop else None,
                "mask": "roi_mask.png" if self.roi_mask is not None else None}

    def to_record(self) -> dict:
        return {**self.meta_input(), "crop": list(self.crop) if self.crop else None}

    @classmethod
    def from_record(cls, record: dict, roi_mask: np.ndarray | None) -> InputSpec:
        crop = tuple(record["crop"]) if record.get("crop") else None
        resized = record.get("dataset_resize")
        dataset_size = (int(resized["width"]), int(resized["height"])) if resized else None
        return cls(record["width"], record["height"], record["channels"], record["bit_depth"],
                   tuple(record["mean"]), tuple(record["std"]), crop, roi_mask,  # type: ignore[arg-type]
                   dataset_size)

    def to_tensor(self, image: np.ndarray) -> np.ndarray:
        """Evaluation preprocessing of one stored image: ``(C, H, W)`` float32."""
        return preprocess(image, self.meta_input(), self.meta_roi(), self._mask_uint8())

    def _mask_uint8(self) -> np.ndarray | None:
        return None if self.roi_mask is None else np.where(self.roi_mask, 255, 0).astype(np.uint8)


def input_spec(dataset: Dataset, config: TrainConfig, mean: Sequence[float], std: Sequence[float]) -> InputSpec:
    """The network input for ``dataset``: its ROI crop, and the region size (or the crop/dataset size)."""
    g = dataset.geometry
    crop = dataset.roi_bbox()
    mask = None
    if crop is not None:
        x, y, w, h = crop
        active = dataset.active_region()
        assert active is not None
        mask = active[y:y + h, x:x + w]
        if mask.all():
            mask = None
    width, height = config.region_size or ((crop[2], crop[3]) if crop else (g.width, g.height))
    channels = g.channels
    return InputSpec(width, height, channels, dataset.bit_depth, tuple(mean[:channels]) if channels == 1 else
                     tuple(mean), tuple(std[:channels]) if channels == 1 else tuple(std), crop, mask,
                     (g.width, g.height))


class ImageDataset(TorchDataset):
    """Stored images (by id) with integer labels; ``augment`` (an albumentations pipeline) for training."""

    def __init__(self, dataset: Dataset, ids: Sequence[int], labels: Sequence[int], spec: InputSpec,
                 augment=None) -> None:
        self.dataset, self.ids, self.labels, self.spec, self.augment = dataset, list(ids), list(labels), spec, augment
        g = dataset.geometry
        per_image = g.width * g.height * g.channels * (2 if g.dtype == "uint16" else 1)
        self._cache: dict[int, np.ndarray] | None = {} if per_image * len(self.ids) < CACHE_LIMIT_BYTES else None

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, index: int) -> np.ndarray:
        image_id = self.ids[index]
        if self._cache is not None and image_id in self._cache:
            return self._cache[image_id]
        image = self.dataset.image(image_id)
        if self._cache is not None:
            self._cache[image_id] = image
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.image(index)
        if self.augment is None:
            return torch.from_numpy(self.spec.to_tensor(image)), self.labels[index]
        return torch.from_numpy(self._augmented(image)), self.labels[index]

    def _augmented(self, image: np.ndarray) -> np.ndarray:
        """The runtime's steps with augmentation (which also resizes) in place of the plain resize."""
        spec = self.spec
        unit = image if spec.crop is None else crop_image(image, spec.crop)
        unit = to_unit_range(unit, spec.bit_depth)
        out = self.augment(image=unit)["image"]
        if out.ndim == 2:
            out = out[:, :, None]
        out = (out - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if spec.roi_mask is not None:
            out = out * resize_nearest(spec.roi_mask.astype(np.float32), spec.width, spec.height)[:, :, None]
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


def seed_everything(seed: int) -> int:
    """Seed torch and numpy; -1 draws a seed (returned, so it can be recorded)."""
    if seed < 0:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return seed
