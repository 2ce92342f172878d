"""Explanation heatmaps: every method on a tiny CNN and a torchvision ResNet, model left untouched, overlays."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from astrocyte_lab.evaluation.heatmaps import METHODS, HeatmapExplainer, heatmap, last_conv_layer, overlay


def tiny_cnn(channels: int = 3, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )


@functools.cache
def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3)


def resnet() -> nn.Module:
    """A fresh copy of one random-weight ResNet-18 (building one costs more than copying it)."""
    return copy.deepcopy(_resnet())


def image(channels: int = 3, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(channels, size, size, generator=generator)


def check_map(heat: np.ndarray, shape: tuple[int, int]) -> None:
    assert heat.shape == shape
    assert heat.dtype == np.float32
    assert np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat.max() == pytest.approx(1.0)
    assert np.ptp(heat) > 0.0


def snapshot(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "hooks": [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                  for m in model.modules()],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert before["inplace"] == after["inplace"]
    assert before["hooks"] == after["hooks"]
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_cnn_every_method(method, channels):
    model = tiny_cnn(channels)
    check_map(heatmap(model, image(channels), target=1, method=method), (32, 32))


@pytest.mark.parametrize("method", METHODS)
def test_resnet18_every_method_with_batch_dimension(method):
    model = resnet()
    check_map(heatmap(model, image(3, 64)[None], target=2, method=method), (64, 64))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("train_mode", [True, False])
def test_caller_model_left_untouched(method, train_mode):
    model = resnet()
    model.train(train_mode)
    for p in model.conv1.parameters():  # a partly frozen model, as with fast training
        p.requires_grad_(False)
    before = snapshot(model)
    heatmap(model, image(3, 64), target=0, method=method)
    assert_same(before, snapshot(model))


def test_input_tensor_untouched():
    x = image()
    original = x.clone()
    heatmap(tiny_cnn(), x, 0, "guided_backprop")
    assert torch.equal(x, original) and not x.requires_grad and x.grad is None


def test_last_conv_layer_and_explicit_layer():
    model = resnet()
    assert last_conv_layer(model) is model.layer4[1].conv2
    by_block = heatmap(model, image(3, 64), 2, "gradcam", layer=model.layer3)
    check_map(by_block, (64, 64))
    assert not np.allclose(by_block, heatmap(model, image(3, 64), 2, "gradcam"))
    with pytest.raises(ValueError, match="not a module of the model"):
        heatmap(model, image(3, 64), 1, "gradcam", layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="no Conv2d"):
        heatmap(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.rand(3, 2, 2), 0, "gradcam")


def test_gradcam_without_positive_evidence_is_all_zero():
    # random weights: for this class and layer every Grad-CAM weight sum is negative, and ReLU leaves nothing
    model = resnet()
    heat = heatmap(model, image(3, 64), 1, "gradcam", layer=model.layer3)
    assert heat.shape == (64, 64) and heat.dtype == np.float32 and not heat.any()


def test_saliency_works_without_convolutions():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    check_map(heatmap(model, torch.rand(3, 4, 4), 1, "saliency"), (4, 4))


def test_unknown_method_and_bad_inputs():
    model = tiny_cnn()
    with pytest.raises(ValueError, match="unknown heatmap method 'lime'.*saliency"):
        heatmap(model, image(), 0, "lime")
    with pytest.raises(ValueError, match="one image"):
        heatmap(model, torch.rand(2, 3, 8, 8), 0, "saliency")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        heatmap(model, torch.rand(8, 8), 0, "saliency")
    with pytest.raises(TypeError, match="torch.Tensor"):
        heatmap(model, np.zeros((3, 8, 8), np.float32), 0, "saliency")


def test_explainer_batches_and_reuse():
    model = tiny_cnn()
    explainer = HeatmapExplainer(model, "guided_gradcam")
    batch = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = explainer(batch, [0, 1, 2, 0])
    assert maps.shape == (4, 32, 32) and maps.dtype == np.float32
    single = explainer(batch[1], 1)
    np.testing.assert_allclose(single, maps[1], atol=1e-5)
    np.testing.assert_allclose(heatmap(model, batch[1], 1, "guided_gradcam"), single, atol=1e-5)
    with pytest.raises(ValueError, match="targets for 4 images"):
        explainer(batch, [0, 1])


def test_overlay_layouts_and_colours():
    heat = np.zeros((10, 20), np.float32)
    heat[:, 10:] = 1.0
    grey8 = np.full((10, 20), 128, np.uint8)
    for img in (grey8, grey8[:, :, None], np.full((10, 20, 3), 0.5, np.float32),
                np.full((10, 20), 2048, np.uint16)):
        out = overlay(img, heat)
        assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    out = overlay(grey8, heat, alpha=1.0)
    assert out[0, 0, 2] > out[0, 0, 0]  # cold = blue
    assert out[0, -1, 0] > out[0, -1, 2]  # hot = red
    np.testing.assert_array_equal(overlay(grey8, heat, alpha=0.0), np.repeat(grey8[:, :, None], 3, axis=2))


def test_overlay_resizes_heat_and_validates():
    out = overlay(np.zeros((40, 60, 3), np.uint8), np.random.default_rng(0).random((5, 6)))
    assert out.shape == (40, 60, 3)
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), alpha=1.5)
    with pytest.raises(ValueError, match="image must be"):
        overlay(np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4)))


def test_overlay_of_a_real_heatmap():
    x = image(1, 32)
    heat = heatmap(tiny_cnn(1), x, 0, "gradcam")
    out = overlay(x[0].numpy(), heat)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
