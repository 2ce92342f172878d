"""The exportable classifier: a backbone, a linear head, and the embedding continual learning uses."""

from __future__ import annotations

import torch
from torch import nn

from astrocyte_lab.modules.classification.registry import create_backbone


class ClassifierNet(nn.Module):
    """Image batch ``(N, C, H, W)`` (normalised) -> logits ``(N, K)``; grey input is repeated to 3 channels
    so ImageNet weights still apply."""

    def __init__(self, architecture: str, num_classes: int, in_channels: int, pretrained: bool = True) -> None:
        super().__init__()
        self.architecture = architecture
        self.in_channels = in_channels
        self.backbone, self.feature_dim, self.pretrained_loaded = create_backbone(architecture, pretrained)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class ExportWrapper(nn.Module):
    """What goes into the ONNX graph: logits and the embedding, both named outputs."""

    def __init__(self, net: ClassifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.net.embed(image)
        return self.net.head(embedding), embedding
