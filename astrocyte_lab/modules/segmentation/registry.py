"""The segmentation architectures on offer: one explicit table over segmentation-models-pytorch.

"Multi-scale attention encoder-decoder" is MANet on the EfficientNet-Lite0 encoder (default; its ImageNet
weights are bundled); "encoder-decoder (classic)" are DeepLabV3 and UNet on ResNet encoders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from astrocyte_lab.modules.classification.registry import IMAGENET_MEAN, IMAGENET_STD
from astrocyte_lab.training import weights


@dataclass(frozen=True)
class SegmentationArchitecture:
    name: str
    family: str  # "multi_scale_attention" | "classic"
    build: Callable[[int, bool], tuple[nn.Module, bool]]  # (classes, pretrained) -> (network, pretrained loaded?)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str


def _manet_lite0(classes: int, pretrained: bool) -> tuple[nn.Module, bool]:
    import segmentation_models_pytorch as smp

    net = smp.MAnet(encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=classes)
    loaded = False
    if pretrained:
        state = _local("tf_efficientnet_lite0") or weights.efficientnet_lite0_state()
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith(("classifier.", "conv_head.", "bn2."))}
            net.encoder.model.load_state_dict(state, strict=False)
            loaded = True
    return net, loaded


def _classic(kind: str, encoder: str) -> Callable[[int, bool], tuple[nn.Module, bool]]:
    def build(classes: int, pretrained: bool) -> tuple[nn.Module, bool]:
        import segmentation_models_pytorch as smp

        net = getattr(smp, kind)(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=classes)
        loaded = False
        if pretrained:
            state = _local(encoder) or _torchvision_state(encoder)
            if state is not None:
                state = {k: v for k, v in state.items() if not k.startswith("fc.")}
                net.encoder.load_state_dict(state, strict=False)
                loaded = True
        return net, loaded

    return build


def _local(name: str) -> dict | None:
    path = weights.local_weights(name)
    return weights.load_state_file(path) if path else None


def _torchvision_state(name: str) -> dict | None:
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT.get_state_dict(progress=False)
    except Exception:  # noqa: BLE001 - offline: random init with a warning
        return None


SEGMENTATION_ARCHITECTURES: dict[str, SegmentationArchitecture] = {
    "manet_lite0": SegmentationArchitecture("manet_lite0", "multi_scale_attention", _manet_lite0, (0.5,) * 3,
                                            (0.5,) * 3, "MANet, EfficientNet-Lite0 encoder (mobile; default)"),
    "deeplabv3_resnet50": SegmentationArchitecture("deeplabv3_resnet50", "classic", _classic("DeepLabV3", "resnet50"),
                                                   IMAGENET_MEAN, IMAGENET_STD, "DeepLabV3, ResNet-50 encoder"),
    "deeplabv3_resnet101": SegmentationArchitecture("deeplabv3_resnet101", "classic",
                                                    _classic("DeepLabV3", "resnet101"), IMAGENET_MEAN, IMAGENET_STD,
                                                    "DeepLabV3, ResNet-101 encoder"),
    "unet_resnet18": SegmentationArchitecture("unet_resnet18", "classic", _classic("Unet", "resnet18"), IMAGENET_MEAN,
                                              IMAGENET_STD, "UNet, ResNet-18 encoder"),
    "unet_resnet50": SegmentationArchitecture("unet_resnet50", "classic", _classic("Unet", "resnet50"), IMAGENET_MEAN,
                                              IMAGENET_STD, "UNet, ResNet-50 encoder"),
}
DEFAULT_SEGMENTATION_ARCHITECTURE = "manet_lite0"
