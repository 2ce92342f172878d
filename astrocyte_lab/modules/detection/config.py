"""Object detection hyper parameters (the manual's detection set, mapped onto Ultralytics' trainer)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from astrocyte_lab.modules.detection.registry import DEFAULT_DETECTION_ARCHITECTURE, DETECTION_ARCHITECTURES
from astrocyte_lab.training.config import TrainConfig, check_side_limit, known_architecture

STRIDE = 32
MIN_INPUT = 224
MAX_DETECTIONS = 5000


class DetectionAugmentation(BaseModel):
    """The manual's detection augmentations, each with the Ultralytics setting it drives.

    ``horizontal_flip`` probability (``fliplr``); ``rotate`` the largest turn in degrees (``degrees``);
    ``random_expand`` the zoom range, a fraction (``scale``: 0.5 zooms between 0.5x and 1.5x, so objects
    may appear on a larger, padded canvas); ``resized_crop`` the largest shift as a fraction of the image
    (``translate``; boxes keep at least most of their area or are dropped); ``mixup`` probability;
    ``lighting_noise`` probability of a colour channel swap (``bgr``); ``photometric`` saturation and
    brightness jitter fractions (``hsv_s`` / ``hsv_v``); ``hue`` fraction (``hsv_h``); ``mosaic`` probability
    of the 4-image mosaic (switched off for the last ``close_mosaic`` epochs).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    horizontal_flip: float = Field(0.5, ge=0, le=1)
    vertical_flip: float = Field(0.0, ge=0, le=1)
    rotate: float = Field(10.0, ge=0, le=180)
    random_expand: float = Field(0.5, ge=0, lt=1)
    resized_crop: float = Field(0.1, ge=0, le=0.9)
    mixup: float = Field(0.0, ge=0, le=1)
    lighting_noise: float = Field(0.0, ge=0, le=1)
    photometric: float = Field(0.4, ge=0, le=1)
    hue: float = Field(0.015, ge=0, le=0.5)
    mosaic: float = Field(1.0, ge=0, le=1)
    close_mosaic: int = Field(5, ge=0, le=100_000)

    def ultralytics(self) -> dict:
        return {"fliplr": self.horizontal_flip, "flipud": self.vertical_flip, "degrees": self.rotate,
                "scale": self.random_expand, "translate": self.resized_crop, "mixup": self.mixup,
                "bgr": self.lighting_noise, "hsv_s": min(1.0, self.photometric * 1.75), "hsv_v": self.photometric,
                "hsv_h": self.hue, "mosaic": self.mosaic, "close_mosaic": self.close_mosaic}


class DetectionConfig(TrainConfig):
    """Manual training of an object detector.

    ``architecture``: nano / small / large (YOLOv8 n / s / l). ``box_type``: ``auto`` trains rotated boxes
    when the dataset's ground truth has any :class:`RotatedBox`, else axis-aligned ones. ``region_size`` (w, h)
    must be multiples of 32 and at least 224; None takes the dataset (or ROI) size rounded up to 32. Test and
    export defaults: ``confidence``, ``overlap`` (NMS IoU), ``max_detections``, ``class_agnostic``.
    ``lr_warmup`` epochs ramp the learning rate up before the schedule applies.
    ``tiling`` trains on ``tile_size`` tiles at full resolution; ``tile_overlap`` None derives the overlap from
    the largest labelled object (+10 px, at most 25 % of the tile). ``self_training`` trains a teacher on the
    labelled images, pseudo-labels the unlabelled ones at ``pseudo_confidence`` and trains a student on both,
    pseudo-labelled images counting ``pseudo_weight`` times a labelled one.
    """

    architecture: str = DEFAULT_DETECTION_ARCHITECTURE
    box_type: Literal["auto", "box", "rotated"] = "auto"
    batch_size: int = Field(16, ge=1, le=4096)
    learning_rate: float = Field(0.01, ge=1e-8, le=1.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(0.937, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    lr_warmup: float = Field(3.0, ge=0, le=100_000, description="learning-rate warm-up, in epochs")
    confidence: float = Field(0.25, gt=0, lt=1)
    overlap: float = Field(0.45, gt=0, le=1)
    max_detections: int = Field(200, ge=1, le=MAX_DETECTIONS)
    class_agnostic: bool = False
    tiling: bool = False
    tile_size: tuple[int, int] = (512, 512)
    tile_overlap: float | None = Field(None, ge=0.0, le=0.25)
    self_training: bool = False
    pseudo_confidence: float = Field(0.5, gt=0, lt=1)
    pseudo_weight: float = Field(0.5, gt=0, le=1)
    teacher_epochs: int | None = Field(None, ge=1, le=100_000, description="teacher epochs (None: same as epochs)")
    augmentation: DetectionAugmentation = Field(default_factory=DetectionAugmentation)  # type: ignore[assignment]

    @field_validator("architecture")
    @classmethod
    def _known(cls, value: str) -> str:
        return known_architecture(value, DETECTION_ARCHITECTURES)

    @field_validator("region_size", "tile_size")
    @classmethod
    def _size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None:
            check_input_size(value)
        return value

    @model_validator(mode="after")
    def _tiles(self) -> DetectionConfig:
        if self.tiling and self.region_size is not None and tuple(self.region_size) != tuple(self.tile_size):
            raise ValueError(f"with tiling the network input is the tile size {self.tile_size}; "
                             f"region size {self.region_size} differs")
        return self


def check_input_size(size: tuple[int, int]) -> None:
    """A detection region or tile: multiples of the stride, from 224 up to the input side limit."""
    width, height = size
    if width % STRIDE or height % STRIDE or width < MIN_INPUT or height < MIN_INPUT:
        raise ValueError(f"detection input size must be multiples of {STRIDE} and at least {MIN_INPUT} x "
                         f"{MIN_INPUT}, got {width} x {height}")
    check_side_limit((width, height), "detection input size")


def round_up(value: int) -> int:
    return max(MIN_INPUT, -(-int(value) // STRIDE) * STRIDE)
