"""Segmentation hyper parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from astrocyte_lab.modules.segmentation.registry import DEFAULT_SEGMENTATION_ARCHITECTURE, SEGMENTATION_ARCHITECTURES
from astrocyte_lab.training.augment import AugmentationConfig, HorizontalFlip, RandomBrightness, RandomContrast
from astrocyte_lab.training.config import TrainConfig, known_architecture, tile_at_least_32


def default_segmentation_augmentation() -> AugmentationConfig:
    return AugmentationConfig(horizontal_flip=HorizontalFlip(enabled=True, probability=0.5),
                              brightness=RandomBrightness(enabled=True, probability=0.5),
                              contrast=RandomContrast(enabled=True, probability=0.5))


class SegmentationConfig(TrainConfig):
    """Manual training of a segmentation model.

    ``class_imbalance``: ``weighted`` cross-entropy (inverse square-root pixel frequency) or ``dice_focal``
    for defects that cover a tiny share of the pixels. ``tiling``: train and predict on tiles of
    ``tile_size`` at full resolution instead of shrinking the image to the region size.
    """

    architecture: str = DEFAULT_SEGMENTATION_ARCHITECTURE
    class_imbalance: Literal["none", "weighted", "dice_focal"] = "weighted"
    tiling: bool = False
    tile_size: tuple[int, int] = (256, 256)
    tile_overlap: float = Field(0.25, ge=0.0, le=0.5)
    tiles_per_image: int = Field(4, ge=1, le=64, description="random tiles drawn from each image per epoch")
    augmentation: AugmentationConfig = Field(default_factory=default_segmentation_augmentation)

    @field_validator("architecture")
    @classmethod
    def _known(cls, value: str) -> str:
        return known_architecture(value, SEGMENTATION_ARCHITECTURES)

    @field_validator("tile_size")
    @classmethod
    def _tile(cls, value: tuple[int, int]) -> tuple[int, int]:
        return tile_at_least_32(value)
