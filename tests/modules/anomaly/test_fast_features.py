"""Backbone features through onnxruntime while fitting: the same embedding as eager PyTorch, or eager itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrocyte_lab.modules.anomaly.model import AnomalyNet


@pytest.fixture(scope="module")
def net() -> AnomalyNet:
    torch.manual_seed(0)
    return AnomalyNet("tf_efficientnet_lite0", "patchcore", pretrained=False).eval()


def test_onnx_features_match_eager_for_their_size_only(net: AnomalyNet) -> None:
    image, other_size = torch.randn(3, 1, 64, 64), torch.randn(1, 1, 32, 32)
    eager, eager_small = net.embed(image), net.embed(other_size)
    reports: list[str] = []
    assert net.use_fast_features(64, 64, reports.append)
    try:
        torch.testing.assert_close(net.embed(image), eager, atol=1e-4, rtol=1e-3)
        assert net.fast_features is not None and net.fast_features.active and not reports
        torch.testing.assert_close(net.embed(other_size), eager_small)  # not the exported size: eager
    finally:
        net.fast_features = None


def test_a_mismatch_on_the_first_batch_falls_back_to_eager(net: AnomalyNet, monkeypatch) -> None:
    image = torch.randn(2, 1, 64, 64)
    eager = net.embed(image)
    shapes = [tuple(v.shape) for v in net.model.feature_extractor(image.expand(-1, 3, -1, -1)).values()]
    reports: list[str] = []
    assert net.use_fast_features(64, 64, reports.append)
    try:
        runner = net.fast_features
        assert runner is not None
        monkeypatch.setattr(runner._session, "run",
                            lambda names, feeds: [np.zeros(shape, np.float32) for shape in shapes])
        torch.testing.assert_close(net.embed(image), eager)  # the wrong graph was caught and eager answered
        assert not runner.active and "differ from eager" in reports[0]
        torch.testing.assert_close(net.embed(image), eager)
    finally:
        net.fast_features = None


def test_dfm_keeps_eager_features() -> None:
    net = AnomalyNet("tf_efficientnet_lite0", "dfm", pretrained=False)
    assert not net.use_fast_features(64, 64) and net.fast_features is None
