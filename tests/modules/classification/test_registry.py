"""Every architecture of the table builds and classifies a batch (random init: no download)."""

from __future__ import annotations

import pytest
import torch

from astrocyte_lab.modules.classification.model import ClassifierNet, ExportWrapper
from astrocyte_lab.modules.classification.registry import ARCHITECTURES


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_architecture_builds_and_runs(architecture: str, channels: int) -> None:
    net = ClassifierNet(architecture, num_classes=3, in_channels=channels, pretrained=False).eval()
    with torch.no_grad():
        logits, embedding = ExportWrapper(net)(torch.randn(2, channels, 64, 48))
    assert logits.shape == (2, 3) and embedding.shape == (2, net.feature_dim)
    assert torch.allclose(torch.softmax(logits, 1).sum(1), torch.ones(2))
