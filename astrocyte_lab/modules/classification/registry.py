"""The classifier backbones on offer: one explicit table, each entry builds a feature extractor.

Every backbone maps an image batch to a feature vector; :mod:`model` puts the classification head on top.
Pretrained weights come from :mod:`astrocyte_lab.training.weights` (local folder, library cache/download,
or the bundled EfficientNet-Lite0 weights); otherwise the network starts from random initialisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from astrocyte_lab.training import weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[bool], tuple[nn.Module, int, bool]]  # pretrained -> (features, dim, loaded pretrained?)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str


def _torchvision(name: str) -> Callable[[bool], tuple[nn.Module, int, bool]]:
    def build(pretrained: bool) -> tuple[nn.Module, int, bool]:
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        loaded = False
        if pretrained:
            loaded = _load_local(net, name) or _load_torchvision_cache(net, name)
        if name.startswith("resnet"):
            dim = net.fc.in_features
            net.fc = nn.Identity()
        else:  # squeezenet: conv features + global pooling
            dim = 512
            net = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return net, dim, loaded

    return build


def _load_local(net: nn.Module, name: str) -> bool:
    path = weights.local_weights(name)
    if path is None:
        return False
    state = weights.load_state_file(path)
    net.load_state_dict(state, strict=False)
    return True


def _load_torchvision_cache(net: nn.Module, name: str) -> bool:
    """torchvision's own weights: from its cache, downloading when online (never in tests: pretrained=False)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name).DEFAULT
        net.load_state_dict(enum.get_state_dict(progress=False))
        return True
    except Exception:  # noqa: BLE001 - offline or blocked: fall back to random init with a warning
        return False


def _efficientnet_lite0(pretrained: bool) -> tuple[nn.Module, int, bool]:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    loaded = False
    if pretrained:
        loaded = _load_local(net, "tf_efficientnet_lite0")
        if not loaded:
            state = weights.efficientnet_lite0_state()
            if state is not None:
                state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
                net.load_state_dict(state, strict=True)
                loaded = True
    return net, net.num_features, loaded


ARCHITECTURES: dict[str, Architecture] = {
    "tf_efficientnet_lite0": Architecture("tf_efficientnet_lite0", _efficientnet_lite0, (0.5,) * 3, (0.5,) * 3,
                                          "EfficientNet-Lite0 (4.7 M parameters); ImageNet weights bundled"),
    "resnet18": Architecture("resnet18", _torchvision("resnet18"), IMAGENET_MEAN, IMAGENET_STD, "ResNet-18"),
    "resnet50": Architecture("resnet50", _torchvision("resnet50"), IMAGENET_MEAN, IMAGENET_STD, "ResNet-50"),
    "resnet101": Architecture("resnet101", _torchvision("resnet101"), IMAGENET_MEAN, IMAGENET_STD, "ResNet-101"),
    "squeezenet1_1": Architecture("squeezenet1_1", _torchvision("squeezenet1_1"), IMAGENET_MEAN, IMAGENET_STD,
                                  "SqueezeNet 1.1 (small, fast)"),
}
DEFAULT_ARCHITECTURE = "tf_efficientnet_lite0"


def create_backbone(name: str, pretrained: bool = True) -> tuple[nn.Module, int, bool]:
    """``(features, feature_dim, pretrained_loaded)`` for an architecture of the table."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}")
    net, dim, loaded = ARCHITECTURES[name].build(pretrained)
    if pretrained and not loaded:
        weights.warn_random_init(name)
    return net, dim, loaded


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


