"""Every segmentation architecture builds and maps an image batch to per-pixel logits (random init)."""

from __future__ import annotations

import pytest
import torch

from astrocyte_lab.modules.segmentation.model import SegmentationExport, SegmentationNet
from astrocyte_lab.modules.segmentation.registry import SEGMENTATION_ARCHITECTURES


@pytest.mark.parametrize("architecture", sorted(SEGMENTATION_ARCHITECTURES))
def test_architecture_builds(architecture: str) -> None:
    net = SegmentationNet(architecture, num_classes=3, pretrained=False).eval()
    with torch.no_grad():
        probs = SegmentationExport(net)(torch.randn(1, 1, 40, 72))  # grey, not a multiple of 32
    assert probs.shape == (1, 3, 40, 72)
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 72), atol=1e-5)


def test_bundled_encoder_weights_load() -> None:
    net = SegmentationNet("manet_lite0", num_classes=2, pretrained=True)
    assert net.pretrained_loaded
