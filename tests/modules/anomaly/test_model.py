"""The exportable network: anomalib's blur applied separably, shapes, batch independence, registry, config."""

from __future__ import annotations

import warnings

import pytest
import torch
from pydantic import ValidationError

from astrocyte_lab.modules.anomaly import model as model_module
from astrocyte_lab.modules.anomaly.config import AnomalyConfig
from astrocyte_lab.modules.anomaly.model import AnomalyNet, SeparableBlur, low_res, nearest_distances
from astrocyte_lab.modules.anomaly.registry import BACKBONES, DEFAULT_BACKBONE


def test_separable_blur_equals_anomalibs_gaussian_blur() -> None:
    from anomalib.models.components.filters import GaussianBlur2d

    x = torch.rand(2, 1, 70, 90)
    for sigma in (1.0, 4.0):
        expected = GaussianBlur2d(sigma=(sigma, sigma), channels=1)(x)
        torch.testing.assert_close(SeparableBlur(sigma)(x), expected, atol=1e-5, rtol=1e-5)
    assert SeparableBlur(4.0)(torch.rand(1, 1, 9, 12)).shape == (1, 1, 9, 12)  # kernel wider than the map


def test_nearest_distances_equal_anomalibs_distance_matrix_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    torch.manual_seed(0)
    patches, bank = torch.randn(300, 16) * 3, torch.randn(70, 16) * 3
    bank[5] = patches[7]  # an exact match: distance 0 after the clamp, not a NaN
    expected = PatchcoreModel.euclidean_dist(patches, bank).amin(1)
    monkeypatch.setattr(model_module, "BANK_CHUNK", 32)  # chunks of 32, 32 and 6 rows
    got = nearest_distances(patches, bank)
    assert torch.allclose(got, expected, atol=1e-4)
    assert got[7].item() == pytest.approx(0.0, abs=1e-2) and not torch.isnan(got).any()
    with pytest.raises(ValueError, match="empty"):
        nearest_distances(patches, bank[:0])


@pytest.mark.parametrize("kind", ["patchcore", "padim", "dfm"])
def test_forward_shapes_and_batch_independence(kind: str) -> None:
    torch.manual_seed(0)
    net = AnomalyNet("tf_efficientnet_lite0", kind, pretrained=False)
    images = torch.randn(4, 1, 64, 64)
    embedding = net.embed(images)
    if kind == "patchcore":
        net.set_memory_bank(net.model.reshape_embedding(embedding)[:200])
    elif kind == "padim":
        net.model.gaussian.fit(embedding)
    else:
        net.model.memory_bank = [embedding]
        net.model.fit()
    tests = torch.randn(3, 1, 64, 64)
    score, amap = net(tests)
    assert score.shape == (3,) and amap.shape == (3, 1, 64, 64)
    alone, alone_map = net(tests[1:2])
    torch.testing.assert_close(alone, score[1:2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(alone_map, amap[1:2], rtol=1e-4, atol=1e-4)
    if kind != "dfm":
        torch.testing.assert_close(score, amap.flatten(1).amax(1))


def test_backbones_load_local_weights_or_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_BACKBONE == "tf_efficientnet_lite0" and set(BACKBONES) == {"tf_efficientnet_lite0", "resnet18"}
    lite0 = AnomalyNet("tf_efficientnet_lite0", "patchcore", pretrained=True)
    assert lite0.pretrained_loaded  # the bundled ImageNet weights, no download
    monkeypatch.setattr(torch.hub, "get_dir", lambda: "/nonexistent")
    monkeypatch.delenv("ASTROCYTE_WEIGHTS", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resnet = AnomalyNet("resnet18", "patchcore", pretrained=True)
    assert not resnet.pretrained_loaded and any("random initialisation" in str(w.message) for w in caught)


def test_config_validation_and_low_res() -> None:
    config = AnomalyConfig()
    assert (config.granularity, config.algorithm, config.architecture) == ("pixel", "patchcore", DEFAULT_BACKBONE)
    with pytest.raises(ValidationError, match="unknown architecture"):
        AnomalyConfig(architecture="vgg16")
    with pytest.raises(ValidationError):
        AnomalyConfig(memory_bank_size=0)
    with pytest.raises(ValidationError, match="tile size"):
        AnomalyConfig(tile_size=(16, 64))
    assert low_res(256, 200) == (128, 100) and low_res(40, 40) == (32, 32)
