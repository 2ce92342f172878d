"""Explanation heatmaps for image classifiers (captum): which pixels drove the score of a class.

Methods:

- ``saliency``: gradient of the class score with respect to the input pixels.
- ``guided_backprop``: the same gradient with negative signals stopped at every ReLU, which gives
  sharper, less noisy maps.
- ``gradcam``: a convolutional layer's activations weighted by their averaged gradients, rectified and
  upsampled to the input size: coarse but class-specific.
- ``guided_gradcam``: guided backprop multiplied by Grad-CAM: fine detail, class-specific.

Every map is the absolute attribution summed over channels and scaled so its maximum is 1 (an all-zero
map means nothing in the image speaks for the class). Attribution runs on a private copy of the model
in eval mode, with in-place activations switched off, so the caller's model is never touched.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal, get_args

import cv2
import numpy as np
import torch
from captum.attr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam, Saliency
from torch import nn

from astrocyte_lab.data.imageio import significant_bits

__all__ = ["METHODS", "HeatmapExplainer", "Method", "heatmap", "last_conv_layer", "overlay"]

Method = Literal["guided_gradcam", "guided_backprop", "saliency", "gradcam"]
METHODS: tuple[str, ...] = get_args(Method)


def last_conv_layer(model: nn.Module) -> nn.Conv2d:
    """The last ``Conv2d`` in ``model``'s module order (the usual Grad-CAM layer)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None:
        raise ValueError("the model has no Conv2d layer: pass the layer for Grad-CAM explicitly")
    return last


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown heatmap method {method!r}; choose one of {', '.join(METHODS)}")
    return method


class HeatmapExplainer:
    """Reusable explainer: copies the model once, then explains any number of images.

    ``layer`` (a module of ``model``) is used by the Grad-CAM methods; it defaults to the last Conv2d.
    The copy is frozen at construction: build a new explainer after further training.
    """

    def __init__(self, model: nn.Module, method: Method = "guided_gradcam", layer: nn.Module | None = None) -> None:
        self.method = _check_method(method)
        names = {id(module): name for name, module in model.named_modules()}
        if layer is None:
            layer = last_conv_layer(model) if method in ("gradcam", "guided_gradcam") else None
        elif id(layer) not in names:
            raise ValueError("layer is not a module of the model")
        self.model = copy.deepcopy(model).eval()
        for module in self.model.modules():
            if getattr(module, "inplace", False) is True:  # guided backprop hooks want untouched ReLU outputs
                module.inplace = False
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.layer = None if layer is None else dict(self.model.named_modules())[names[id(layer)]]
        first = next(self.model.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self._dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        if method == "saliency":
            self._attribution = Saliency(self.model)
        elif method == "guided_backprop":
            self._attribution = GuidedBackprop(self.model)
        elif method == "gradcam":
            self._attribution = LayerGradCam(self.model, self.layer)
        else:
            self._attribution = GuidedGradCam(self.model, self.layer)

    def __call__(self, image: torch.Tensor, target: int | list[int] | torch.Tensor) -> np.ndarray:
        """Heatmaps, float32 in [0, 1]: ``(C, H, W)`` and one target give ``(H, W)``; ``(N, C, H, W)`` with
        one target for all or N targets gives ``(N, H, W)``.
        """
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
        single = image.dim() == 3
        batch = image.unsqueeze(0) if single else image
        if batch.dim() != 4:
            raise ValueError(f"image must be (C, H, W) or (N, C, H, W), got shape {tuple(image.shape)}")
        inputs = batch.detach().to(self.device, self._dtype).clone().requires_grad_(True)
        targets = torch.as_tensor(target, device=self.device).reshape(-1).long()
        if single and targets.numel() != 1:
            raise ValueError("a single image takes a single target")
        if targets.numel() == 1:
            targets = targets.expand(inputs.shape[0])
        elif targets.numel() != inputs.shape[0]:
            raise ValueError(f"{targets.numel()} targets for {inputs.shape[0]} images")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(backward hooks|require gradients).*", category=UserWarning)
            attribution = self._attribute(inputs, targets)
        maps = attribution.detach().abs().sum(dim=1).float().cpu().numpy()
        peak = maps.reshape(maps.shape[0], -1).max(axis=1).reshape(-1, 1, 1)
        maps = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
        maps = np.nan_to_num(np.clip(maps, 0.0, 1.0), nan=0.0).astype(np.float32)
        return maps[0] if single else maps

    def _attribute(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        size = tuple(inputs.shape[2:])
        if self.method == "saliency":
            return self._attribution.attribute(inputs, target=targets, abs=True)
        if self.method == "guided_backprop":
            return self._attribution.attribute(inputs, target=targets)
        if self.method == "gradcam":
            cam = self._attribution.attribute(inputs, target=targets, relu_attributions=True)
            return LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")
        return self._attribution.attribute(inputs, target=targets, interpolate_mode="bilinear")


def heatmap(model: nn.Module, image: torch.Tensor, target: int, method: Method = "guided_gradcam",
            layer: nn.Module | None = None) -> np.ndarray:
    """``(H, W)`` float32 map in [0, 1] of what in ``image`` (``(C, H, W)`` or ``(1, C, H, W)``, already
    normalised as the model expects) drove ``model``'s score for class ``target``.

    ``method`` is one of :data:`METHODS`; ``layer`` (Grad-CAM methods) defaults to the last Conv2d.
    ``model`` is left exactly as it was (mode, parameters, gradient flags, hooks). To explain many
    images, build one :class:`HeatmapExplainer` instead (this copies the model on every call).
    """
    _check_method(method)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] != 1:
        raise ValueError(f"heatmap explains one image; got a batch of {image.shape[0]} (use HeatmapExplainer)")
    if image.dim() not in (3, 4):
        raise ValueError(f"image must be (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}")
    maps = HeatmapExplainer(model, method, layer)(image.reshape(1, *image.shape[-3:]), int(target))
    return maps[0]


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint16:
        image = image.astype(np.float32) / float((1 << significant_bits(image)) - 1)
    if image.dtype != np.uint8:
        image = np.round(np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` blend of ``image`` with ``heat`` in jet colours (blue = 0, red = 1).

    ``image`` is ``(H, W[, C])`` uint8, uint16 or float in [0, 1]; ``heat`` (values in [0, 1]) is resized
    to the image when its size differs; ``alpha`` is the weight of the colours.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = _to_rgb_uint8(image)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3 and heat.shape[2] == 1:
        heat = heat[:, :, 0]
    if heat.ndim != 2:
        raise ValueError(f"heat must be (H, W), got shape {heat.shape}")
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    levels = np.round(np.clip(np.nan_to_num(heat), 0.0, 1.0) * 255.0).astype(np.uint8)
    colours = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(rgb, 1.0 - alpha, colours, alpha, 0.0)
