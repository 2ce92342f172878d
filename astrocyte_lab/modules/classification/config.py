"""Classification hyper parameters."""

from __future__ import annotations

from pydantic import Field, field_validator

from astrocyte_lab.modules.classification.registry import ARCHITECTURES, DEFAULT_ARCHITECTURE
from astrocyte_lab.training.augment import AugmentationConfig, default_classification
from astrocyte_lab.training.config import TrainConfig, known_architecture


class ClassificationConfig(TrainConfig):
    """Manual training of a classifier; ``continual`` keeps class prototypes for learning at run time."""

    architecture: str = DEFAULT_ARCHITECTURE
    continual: bool = False
    max_classes: int | None = Field(None, ge=2, description="continual: refuse to learn beyond this many classes")
    undefined_margin: float = Field(0.05, ge=0, le=1, description="continual: slack below the 5th percentile")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augmentation: AugmentationConfig = Field(default_factory=default_classification)

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        return known_architecture(value, ARCHITECTURES)
