"""Hyper parameters shared by every module, as one validated, serialisable pydantic model.

Each module subclasses :class:`TrainConfig` with its own fields (architecture, thresholds, ...). Values are
checked when set, so a bad learning rate or patience fails at the line that sets it, with the field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from astrocyte_lab.runtime.limits import env_name, limit
from astrocyte_lab.training.augment import AugmentationConfig

MIN_REGION_SIDE = 8
MIN_TILE_SIDE = 32


def known_architecture(value: str, table: Mapping[str, object]) -> str:
    """A module config's ``architecture`` check: the name must be in the module's registry ``table``."""
    if value not in table:
        raise ValueError(f"unknown architecture {value!r}; choose from {sorted(table)}")
    return value


def check_side_limit(value: tuple[int, int], what: str) -> tuple[int, int]:
    """Refuse a network input (region or tile) wider or taller than the runtime's ``input_side`` limit.

    An exported package with a larger input is refused at load, and such an input would exhaust memory long
    before training finishes; the limit is the one :mod:`astrocyte_lab.runtime.limits` applies (8192 pixels a
    side, raisable by ``ASTROCYTE_MAX_INPUT_SIDE``).
    """
    side = limit("input_side")
    if value[0] > side or value[1] > side:
        raise ValueError(f"{what} {value[0]} x {value[1]} is above the limit of {side} pixels a side; set "
                         f"{env_name('input_side')} to raise it, or use tiling")
    return value


def tile_at_least_32(value: tuple[int, int]) -> tuple[int, int]:
    """A tiled module's ``tile_size`` check: from 32 x 32 (smaller tiles leave the network nothing to see) up to
    the input side limit (:func:`check_side_limit`)."""
    if value[0] < MIN_TILE_SIDE or value[1] < MIN_TILE_SIDE:
        raise ValueError(f"tile size must be at least {MIN_TILE_SIDE} x {MIN_TILE_SIDE}, got {value[0]} x {value[1]}")
    return check_side_limit(value, "tile size")


class TrainConfig(BaseModel):
    """Manual-training hyper parameters (the manual's basic and advanced sets)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    batch_size: int = Field(16, ge=1, le=4096)
    epochs: int = Field(30, ge=1, le=100_000)
    learning_rate: float = Field(1e-3, ge=1e-8, le=1.0)
    early_stopping: bool = False
    patience: int = Field(8, ge=1, le=100_000, description="epochs without validation improvement before stopping")
    warmup_epochs: int = Field(0, ge=0, le=100_000, description="epochs before early stopping may trigger")
    scheduler: Literal["none", "exponential", "cyclic", "one_cycle"] = "one_cycle"
    gamma: float = Field(0.95, gt=0, le=1, description="decay per epoch of the exponential scheduler")
    optimizer: Literal["sgd", "adam"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    seed: int = Field(-1, ge=-1, description="-1 draws a random seed, recorded with the model")
    workers: int = Field(0, ge=0, le=64)
    region_size: tuple[int, int] | None = Field(None, description="network input (w, h); None uses the dataset size")
    fast_training: bool = Field(False, description="train only the last layer of a pretrained network")
    pretrained: bool = True
    resume_from: str | None = Field(None, description="name of a trained model to continue from")
    device: str = "auto"
    mixed_precision: bool = Field(True, description="float16 autocast on CUDA (ignored on CPU)")
    cudnn_benchmark: bool = True
    max_grad_norm: float | None = Field(10.0, gt=0)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)

    @field_validator("region_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is None:
            return None
        if value[0] < MIN_REGION_SIDE or value[1] < MIN_REGION_SIDE:
            raise ValueError(f"region size must be at least {MIN_REGION_SIDE} x {MIN_REGION_SIDE} pixels, got "
                             f"{value[0]} x {value[1]}")
        return check_side_limit(value, "region size")

    @model_validator(mode="after")
    def _warmup_within_epochs(self) -> TrainConfig:
        if self.early_stopping and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return cls.model_validate(data)
