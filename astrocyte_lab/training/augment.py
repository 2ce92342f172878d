"""Image augmentation: validated settings and the albumentations pipeline built from them.

Every transform has an on/off switch and a probability of being applied to an image; the remaining
fields are its strength. Defaults follow the Astrocyte manual where it gives them (brightness and
contrast 0.2 at 50 %, flips and resized crop at 50 %, rotation up to 10 degrees at 75 %).

Pipelines work on float32 images scaled to [0, 1], laid out ``(H, W, C)`` with ``C`` in {1, 3}, and
return the same layout, dtype and range. Geometry comes first (crop/resize, flips, rotation), then
photometric changes, then blur and noise, so the latter act at training resolution.
"""

from __future__ import annotations

import random
import sys
from typing import Any, ClassVar, Literal

import albumentations as A
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from astrocyte_lab.data.imageio import significant_bits

__all__ = [
    "AugmentationConfig",
    "Blur",
    "GaussianNoise",
    "HorizontalFlip",
    "RandomBrightness",
    "RandomContrast",
    "RandomHue",
    "RandomResizedCrop",
    "RandomRotate",
    "Transform",
    "VerticalFlip",
    "build_pipeline",
    "default_classification",
    "preview",
    "reseed",
    "to_unit_float",
]


class Transform(BaseModel):
    """Settings shared by every transform: whether it is used and how often it fires."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    label: ClassVar[str] = "Transform"

    enabled: bool = False
    probability: float = Field(0.5, ge=0.0, le=1.0, description="chance of applying it to an image, 0-1")

    @property
    def active(self) -> bool:
        """True when the transform can change an image at all."""
        return self.enabled and self.probability > 0.0


class RandomBrightness(Transform):
    """Adds an offset drawn from [-limit, limit] of the full range (1 = black to white)."""

    label: ClassVar[str] = "Random Brightness"
    limit: float = Field(0.2, ge=0.0, le=1.0, description="max lighting, fraction of the full range")


class RandomContrast(Transform):
    """Multiplies by a gain drawn from [1 - limit, 1 + limit]."""

    label: ClassVar[str] = "Random Contrast"
    limit: float = Field(0.2, ge=0.0, le=1.0, description="max lighting, gain deviation from 1")


class RandomHue(Transform):
    """Rotates the hue by up to ``shift_limit`` of a full turn (0.5 = complementary colours).

    Grey images have no hue: the transform is left out of their pipelines.
    """

    label: ClassVar[str] = "Random Hue"
    shift_limit: float = Field(0.05, ge=0.0, le=0.5, description="hue shift, fraction of the colour circle")


class HorizontalFlip(Transform):
    """Mirrors left-right."""

    label: ClassVar[str] = "Random Horizontal Flip"


class VerticalFlip(Transform):
    """Mirrors top-bottom."""

    label: ClassVar[str] = "Random Vertical Flip"


class RandomResizedCrop(Transform):
    """Crops a random region (area fraction ``scale``, aspect ``ratio``) and scales it to the output size."""

    label: ClassVar[str] = "Random Resized Crop"
    scale: tuple[float, float] = Field((0.6, 1.0), description="min/max area of the crop, fraction of the image")
    ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="min/max width/height of the crop")

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {value}")
        return value

    @field_validator("ratio")
    @classmethod
    def _check_ratio(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 < low <= high:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {value}")
        return value


class RandomRotate(Transform):
    """Rotates by an angle drawn from [-limit, limit] degrees; the uncovered corners are filled per ``border``."""

    label: ClassVar[str] = "Random Rotate"
    probability: float = Field(0.75, ge=0.0, le=1.0, description="chance of applying it to an image, 0-1")
    limit: float = Field(10.0, ge=0.0, le=180.0, description="max rotation in degrees, either direction")
    border: Literal["reflect", "constant"] = Field("reflect", description="mirror the image or fill with black")


class GaussianNoise(Transform):
    """Adds zero-mean Gaussian noise whose standard deviation is drawn from [0, std_limit] of the full range."""

    label: ClassVar[str] = "Gaussian Noise"
    std_limit: float = Field(0.05, ge=0.0, le=1.0, description="max noise standard deviation, fraction of range")


class Blur(Transform):
    """Box blur with an odd kernel size drawn from [3, max_kernel] pixels."""

    label: ClassVar[str] = "Blur"
    max_kernel: int = Field(5, ge=3, le=31, description="largest kernel side in pixels (odd)")

    @field_validator("max_kernel")
    @classmethod
    def _check_odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"max_kernel must be odd, got {value}")
        return value


class AugmentationConfig(BaseModel):
    """All augmentation settings of one training run; disabled transforms keep their settings."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    brightness: RandomBrightness = Field(default_factory=RandomBrightness)
    contrast: RandomContrast = Field(default_factory=RandomContrast)
    hue: RandomHue = Field(default_factory=RandomHue)
    horizontal_flip: HorizontalFlip = Field(default_factory=HorizontalFlip)
    vertical_flip: VerticalFlip = Field(default_factory=VerticalFlip)
    resized_crop: RandomResizedCrop = Field(default_factory=RandomResizedCrop)
    rotate: RandomRotate = Field(default_factory=RandomRotate)
    noise: GaussianNoise = Field(default_factory=GaussianNoise)
    blur: Blur = Field(default_factory=Blur)

    @model_validator(mode="before")
    @classmethod
    def _accept_none(cls, data: Any) -> Any:
        return {} if data is None else data

    @classmethod
    def default_classification(cls) -> AugmentationConfig:
        """Same as the module-level :func:`default_classification`."""
        return default_classification()

    def transforms(self) -> dict[str, Transform]:
        """Every transform by field name, in display order."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def enabled_transforms(self) -> dict[str, Transform]:
        """Only the transforms switched on (what a model's details should list)."""
        return {name: t for name, t in self.transforms().items() if t.enabled}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentationConfig:
        """Validate a dict written by :meth:`to_dict`; missing transforms get their defaults."""
        return cls.model_validate(data)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> AugmentationConfig:
        return cls.model_validate_json(text)


def default_classification() -> AugmentationConfig:
    """Mild, label-preserving defaults for inspection images.

    Left-right flip, rotation up to 10 degrees, brightness and contrast +/-0.2 at 50 %. The resized crop
    stays off: on defect images it can cut the defect out and silently change the label.
    """
    return AugmentationConfig(
        brightness=RandomBrightness(enabled=True),
        contrast=RandomContrast(enabled=True),
        horizontal_flip=HorizontalFlip(enabled=True),
        rotate=RandomRotate(enabled=True),
    )


class _Pipeline(A.Compose):
    """``A.Compose`` that gives each DataLoader worker its own random stream.

    Workers receive copies of the pipeline with identical random state; without this they would all
    produce the same augmentations. The worker's seed comes from the DataLoader (``worker_info.seed``),
    so a seeded DataLoader still reproduces its augmentations run after run.
    """

    _worker_key: tuple[int, int] | None = None

    def __call__(self, *args: Any, **data: Any) -> dict[str, Any]:
        torch = sys.modules.get("torch")  # never import torch just for this
        if torch is not None:
            info = torch.utils.data.get_worker_info()
            if info is not None and self._worker_key != (info.id, info.seed):
                self._worker_key = (info.id, info.seed)
                reseed(self, info.seed)
        return super().__call__(*args, **data)


class _ResizedCropKeepSize(A.RandomResizedCrop):
    """Random resized crop whose output has the input's size (used when no output size is fixed)."""

    def __init__(self, scale: tuple[float, float], ratio: tuple[float, float], p: float):
        super().__init__(size=(1, 1), scale=scale, ratio=ratio, p=p)

    def apply(self, img: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return _crop_resize(img, crop_coords, params["shape"][:2], self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return _crop_resize(mask, crop_coords, params["shape"][:2], self.mask_interpolation)


def _crop_resize(img: np.ndarray, crop_coords: tuple[int, int, int, int], shape: tuple[int, int],
                 interpolation: int) -> np.ndarray:
    x1, y1, x2, y2 = crop_coords
    crop = img[y1:y2, x1:x2]
    out = cv2.resize(crop, (int(shape[1]), int(shape[0])), interpolation=interpolation)
    return out.reshape(*out.shape[:2], *img.shape[2:])  # cv2 drops a trailing channel axis of 1


def build_pipeline(config: AugmentationConfig, size: tuple[int, int] | None, channels: int,
                   seed: int | None = None) -> A.Compose:
    """Albumentations pipeline for float32 ``(H, W, C)`` images in [0, 1] with ``C == channels``.

    ``size`` is ``(width, height)``: every output then has exactly that size (the resized crop produces
    it directly; otherwise the image is resized). With ``size=None`` outputs keep the input size.
    ``seed`` makes the sequence of augmentations reproducible. Call as ``pipeline(image=x)["image"]``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if size is not None:
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0:
            raise ValueError(f"size must be a positive (width, height), got {size}")
    transforms: list[A.BasicTransform] = []

    crop = config.resized_crop
    if crop.active:
        if size is None:
            transforms.append(_ResizedCropKeepSize(scale=crop.scale, ratio=crop.ratio, p=crop.probability))
        else:
            transforms.append(A.RandomResizedCrop(size=(height, width), scale=crop.scale, ratio=crop.ratio,
                                                  p=crop.probability))
    if size is not None:  # a no-op copy when the crop already produced this size
        transforms.append(A.Resize(height=height, width=width))
    if config.horizontal_flip.active:
        transforms.append(A.HorizontalFlip(p=config.horizontal_flip.probability))
    if config.vertical_flip.active:
        transforms.append(A.VerticalFlip(p=config.vertical_flip.probability))
    if config.rotate.active:
        border = cv2.BORDER_REFLECT_101 if config.rotate.border == "reflect" else cv2.BORDER_CONSTANT
        transforms.append(A.Rotate(limit=config.rotate.limit, border_mode=border, fill=0.0,
                                   p=config.rotate.probability))
    if config.brightness.active:
        transforms.append(A.RandomBrightnessContrast(brightness_limit=config.brightness.limit, contrast_limit=0.0,
                                                     brightness_by_max=True, p=config.brightness.probability))
    if config.contrast.active:
        transforms.append(A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=config.contrast.limit,
                                                     brightness_by_max=True, p=config.contrast.probability))
    if config.hue.active and channels == 3:  # grey images have no hue: skipped
        transforms.append(A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.0, hue=config.hue.shift_limit,
                                        p=config.hue.probability))
    if config.blur.active:
        transforms.append(A.Blur(blur_limit=(3, config.blur.max_kernel), p=config.blur.probability))
    if config.noise.active:
        transforms.append(A.GaussNoise(std_range=(0.0, config.noise.std_limit), p=config.noise.probability))

    pipeline = _Pipeline(transforms, seed=seed)
    if seed is not None:
        reseed(pipeline, seed)
    return pipeline


def reseed(pipeline: A.Compose, seed: int) -> A.Compose:
    """Give all transforms of ``pipeline`` one shared random stream started from ``seed``.

    ``Compose(seed=...)`` alone seeds every transform with the *same* seed, so transforms with equal
    probabilities would always fire together; one shared stream keeps them independent. Pipelines from
    :func:`build_pipeline` already call this once in each DataLoader worker.
    """
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return pipeline


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """``(H, W[, C])`` uint8/uint16/float image as float32 ``(H, W, C)`` in [0, 1].

    16-bit images are scaled by the bits actually used (a 12-bit sensor's 4095 becomes 1.0).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / float((1 << significant_bits(image)) - 1)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    raise ValueError(f"unsupported image dtype {image.dtype} (use uint8, uint16 or float)")


def preview(image: np.ndarray, config: AugmentationConfig, count: int = 8, seed: int = 0,
            size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """``count`` augmented versions of one image as uint8 ``(H, W, C)`` arrays, the same for the same seed.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` (C = 1 or 3), uint8, uint16 or float in [0, 1];
    ``size`` as in :func:`build_pipeline`.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    unit = to_unit_float(image)
    pipeline = build_pipeline(config, size, unit.shape[2], seed=seed)
    samples = []
    for _ in range(count):
        out = pipeline(image=unit)["image"]
        out = out.reshape(*out.shape[:2], unit.shape[2])
        samples.append(np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8))
    return samples
