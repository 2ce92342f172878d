"""The exportable segmentation network: per-pixel class logits; the export adds the softmax."""

from __future__ import annotations

import torch
from torch import nn

from astrocyte_lab.modules.segmentation.registry import SEGMENTATION_ARCHITECTURES
from astrocyte_lab.training import weights

STRIDE = 32  # encoders downsample 32x: inputs are padded to a multiple of it


class SegmentationNet(nn.Module):
    """``(N, C, H, W)`` normalised images -> ``(N, K, H, W)`` logits; grey input repeats to 3 channels."""

    def __init__(self, architecture: str, num_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        if architecture not in SEGMENTATION_ARCHITECTURES:
            raise KeyError(f"unknown architecture {architecture!r}; choose from {sorted(SEGMENTATION_ARCHITECTURES)}")
        self.architecture = architecture
        self.net, self.pretrained_loaded = SEGMENTATION_ARCHITECTURES[architecture].build(num_classes, pretrained)
        if pretrained and not self.pretrained_loaded:
            weights.warn_random_init(architecture)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % STRIDE, (-width) % STRIDE
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > 1 else "constant")
        out = self.net(x)
        return out[..., :height, :width]


class SegmentationExport(nn.Module):
    """What goes into ONNX: class probabilities, named ``probabilities``."""

    def __init__(self, net: SegmentationNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)
