"""Anomaly detection hyper parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from astrocyte_lab.modules.anomaly.registry import BACKBONES, DEFAULT_BACKBONE
from astrocyte_lab.training.config import TrainConfig, known_architecture, tile_at_least_32


class AnomalyConfig(TrainConfig):
    """Training an anomaly detector on the Normal images of the training set.

    ``granularity``: ``pixel`` (default), ``pixel_low_res`` (half the input resolution) or ``image``.
    ``algorithm`` picks the pixel-level model: ``patchcore`` (default) or ``padim``. PatchCore keeps a memory
    bank of patch features chosen by a greedy k-center coreset: ``coreset_ratio`` of all training patches,
    at most ``memory_bank_size`` entries (the bound on memory and on inference time). ``layout_model`` adds to
    PatchCore's patch distances the residual of the image's coarse feature grid outside the directions the
    Normal images span (``layout.py``): large regions that look normal patch by patch but not where they are.
    ``defect_segmenter`` trains a small network on synthetic defects to sharpen PatchCore's heatmap inside an
    image (``segmenter.py``); the image score does not use it.
    ``threshold`` and ``heatmap_ratio`` are the defaults written into packages until testing picks a threshold;
    the heatmap shows pixels whose anomaly value reaches ``heatmap_ratio * threshold``. ``outlier_exposure``
    (image level only) tunes the feature model on synthetic anomalies made from the normal training images. Epochs,
    learning rate, optimiser and augmentation do not apply: these models are fitted in one pass over the
    features of a frozen pretrained backbone.
    """

    architecture: str = DEFAULT_BACKBONE
    granularity: Literal["pixel", "pixel_low_res", "image"] = "pixel"
    algorithm: Literal["patchcore", "padim"] = "patchcore"
    coreset_ratio: float = Field(0.01, gt=0.0, le=1.0, description="share of training patches kept (PatchCore)")
    memory_bank_size: int = Field(8192, ge=1, le=1_000_000, description="most patches the memory bank keeps")
    coreset_candidates: int = Field(400_000, ge=1000, le=100_000_000,
                                    description="patches drawn at random before the greedy coreset (bounds fit time "
                                                "and memory)")
    coreset_per_step: int = Field(64, ge=1, le=1024, description="coreset entries added per pass over the "
                                                                 "candidates (1 = classic greedy)")
    coreset_projection: int = Field(32, ge=8, le=1024, description="random projection width for the coreset")
    layout_model: bool = Field(True, description="add PatchCore's whole-image layout term (parts in a fixed pose; "
                                                   "needs 8 Normal images; not with tiling)")
    layout_variance: float = Field(0.95, gt=0.0, lt=1.0, description="variance share of the Normal layouts the "
                                                                     "layout model's directions keep")
    defect_segmenter: bool = Field(True, description="train a small network on synthetic defects made from the "
                                                      "Normal images and add its output to PatchCore's heatmap (not to "
                                                      "the score); needs 10 Normal images; not with tiling")
    segmenter_patches: int = Field(1_500_000, ge=10_000, le=50_000_000,
                                   description="patch positions the defect segmenter learns from (2/3 synthetic-"
                                               "defect images, 1/3 Normal images): bounds its fit time and memory")
    segmenter_epochs: int = Field(12, ge=1, le=200, description="passes of the defect segmenter over its images")
    padim_features: int = Field(100, ge=8, le=1024, description="feature channels PaDiM keeps")
    blur_sigma: float = Field(4.0, gt=0.0, le=32.0, description="Gaussian smoothing of the anomaly map (pixels)")
    outlier_exposure: bool = True
    threshold: float | None = Field(None, description="anomaly threshold; None: chosen from validation")
    heatmap_ratio: float = Field(0.9, gt=0.0, le=10.0, description="heatmap threshold as a share of the "
                                                                    "anomaly threshold")
    tiling: bool = False
    tile_size: tuple[int, int] = (256, 256)
    tile_overlap: float = Field(0.25, ge=0.0, le=0.5)
    batch_size: int = Field(8, ge=1, le=4096)
    epochs: int = Field(1, ge=1, le=100_000)

    @field_validator("architecture")
    @classmethod
    def _known(cls, value: str) -> str:
        return known_architecture(value, BACKBONES)

    @field_validator("tile_size")
    @classmethod
    def _tile(cls, value: tuple[int, int]) -> tuple[int, int]:
        return tile_at_least_32(value)
