"""Pretrained weights come from the local folder or the bundled EfficientNet-Lite0 package, never the network."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from astrocyte_lab.modules.classification.registry import create_backbone
from astrocyte_lab.training import weights


def test_bundled_lite0_weights_map_exactly_onto_timm() -> None:
    state = weights.efficientnet_lite0_state()
    assert state is not None
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(state, strict=True)  # every key and shape matches
    assert len(state) == len(net.state_dict())


def test_local_weights_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    reference = torchvision.models.squeezenet1_1(weights=None)
    for p in reference.parameters():
        torch.nn.init.constant_(p, 0.125)
    save_file(reference.state_dict(), str(tmp_path / "squeezenet1_1.safetensors"))
    monkeypatch.setenv("ASTROCYTE_WEIGHTS", str(tmp_path))
    net, _, loaded = create_backbone("squeezenet1_1", pretrained=True)
    assert loaded
    assert torch.all(next(net.parameters()) == 0.125)


def test_random_init_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "efficientnet_lite0_state", lambda: None)
    monkeypatch.delenv("ASTROCYTE_WEIGHTS", raising=False)
    with pytest.warns(UserWarning, match="random initialisation"):
        _, _, loaded = create_backbone("tf_efficientnet_lite0", pretrained=True)
    assert not loaded
