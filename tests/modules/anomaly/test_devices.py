"""Devices: every tensor of the anomaly network follows ``.to()``, and whatever is fitted later is installed on
the network's device, checked without a GPU on PyTorch's ``meta`` device (the class of bug of issue 21:
PatchCore's memory bank left on the CPU under a CUDA network made ``torch.addmm`` fail)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from astrocyte_lab import Workspace
from astrocyte_lab.modules.anomaly.coreset import greedy_coreset
from astrocyte_lab.modules.anomaly.layout import LayoutModel
from astrocyte_lab.modules.anomaly.model import AnomalyNet
from astrocyte_lab.modules.anomaly.segmenter import DefectSegmenter, fit_segmenter
from astrocyte_lab.modules.anomaly.trainer import load_network, torch_scorer

META = torch.device("meta")


def tensors_of(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter, buffer and plain tensor attribute of ``module`` and its submodules, by dotted name."""
    for prefix, sub in module.named_modules():
        for name, value in vars(sub).items():
            if isinstance(value, torch.Tensor):
                yield f"{prefix}.{name}", value
        for group in ("_parameters", "_buffers"):
            for name, value in vars(sub)[group].items():
                if value is not None:
                    yield f"{prefix}.{name}", value


def off_device(module: nn.Module, device: torch.device) -> list[str]:
    return [f"{name} on {value.device}" for name, value in tensors_of(module) if value.device != device]


def assert_runs_on_meta(net: AnomalyNet, size: int = 64) -> None:
    outputs = net(torch.empty(2, 1, size, size, device=META))
    assert all(out.device == META for out in outputs)
    assert outputs[0].shape == (2,) and outputs[1].shape == (2, 1, size, size)


def patchcore(seed: int = 0) -> tuple[AnomalyNet, torch.Tensor]:
    torch.manual_seed(seed)
    net = AnomalyNet("tf_efficientnet_lite0", "patchcore", pretrained=False)
    return net, net.embed(torch.randn(10, 1, 64, 64))


def test_a_memory_bank_chosen_on_the_cpu_serves_a_network_on_another_device() -> None:
    net, embedding = patchcore()
    net.to(META)
    net.set_memory_bank(net.model.reshape_embedding(embedding)[:50])  # the coreset is chosen on the CPU
    # what _fit_patchcore calls with patches on the network's device: "addmm: tensor on device cpu" on CUDA
    assert net.bank_distances(torch.empty(7, embedding.shape[1], device=META)).shape == (7,)
    assert net.model.memory_bank.device == META


def test_parts_fitted_on_the_cpu_are_installed_on_the_networks_device() -> None:
    net, embedding = patchcore()
    channels = embedding.shape[1]
    net.to(META)
    net.set_memory_bank(net.model.reshape_embedding(embedding)[:50])
    net.set_layout(LayoutModel(channels, (8, 8), 3, (1, 1)))
    net.set_segmenter(DefectSegmenter(channels, 16, 2, 4))
    assert off_device(net, META) == []
    assert net.device == META
    assert net.patch_map(torch.empty(2, channels, 8, 8, device=META)).device == META
    assert_runs_on_meta(net)
    net.set_layout(None)
    net.set_segmenter(None)
    assert net.layout is None and net.segmenter is None


def test_a_fitted_patchcore_model_moves_whole(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    net = load_network(ws, name)[0]
    assert net.layout is not None and net.segmenter is not None and net.model.memory_bank.numel()
    net.to(META)
    assert off_device(net, META) == []
    assert_runs_on_meta(net)
    assert len(net(torch.empty(1, 1, 64, 64, device=META))) == 3  # score, anomaly_map, score_map


@pytest.mark.parametrize("kind", ["padim", "dfm"])
def test_padim_and_dfm_fits_land_on_the_networks_device(kind: str) -> None:
    torch.manual_seed(0)
    net = AnomalyNet("tf_efficientnet_lite0", kind, pretrained=False)
    features = net.embed(torch.randn(12, 1, 64, 64))
    if kind == "padim":
        net.fit_gaussian(features)
    else:
        net.fit_dfm(features, "fre", 0.9)
        assert net.model.pca_model.singular_values.numel() > 0  # a plain attribute in anomalib: now a buffer
        assert "model.pca_model.singular_values" not in net.state_dict()  # stored models keep their keys
    net.to(META)
    assert off_device(net, META) == []
    outputs = net(torch.empty(2, 1, 64, 64, device=META))
    assert outputs[0].device == META and outputs[0].shape == (2,)


def test_the_wrong_kind_cannot_be_fitted() -> None:
    net = AnomalyNet("tf_efficientnet_lite0", "patchcore", pretrained=False)
    with pytest.raises(ValueError, match="PaDiM"):
        net.fit_gaussian(torch.zeros(2, 4, 2, 2))
    with pytest.raises(ValueError, match="DFM"):
        net.fit_dfm(torch.zeros(2, 4), "fre", 0.9)


def test_torch_scorer_runs_where_the_network_is(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    net, record, spec = load_network(ws, name)
    seen: list[torch.device] = []
    net.register_forward_pre_hook(lambda _, args: seen.append(args[0].device))
    torch_scorer(net, spec, record["anomaly"]).predict([ws.dataset("tiles").image(0)], 1)
    assert seen == [net.device]


def test_segmenter_trains_on_the_given_device() -> None:
    torch.manual_seed(0)
    defects, normals = torch.randn(6, 16, 8, 8).half(), torch.randn(6, 16, 8, 8).half()
    targets = torch.rand(6, 1, 8, 8)
    model = fit_segmenter(defects, targets, normals, width=8, epochs=1, batch_size=4, device=META)
    assert off_device(model, META) == []
    on_cpu = fit_segmenter(defects, targets, normals, width=8, epochs=1, batch_size=4)
    assert off_device(on_cpu, torch.device("cpu")) == []


def test_coreset_on_an_explicit_device_chooses_the_same_patches() -> None:
    features = torch.randn(400, 24, generator=torch.Generator().manual_seed(1))
    expected = greedy_coreset(features, 20, projection=8, per_step=1, seed=3)
    got = greedy_coreset(features, 20, projection=8, per_step=1, seed=3, device="cpu")
    assert got.device.type == "cpu" and torch.equal(got, expected)
