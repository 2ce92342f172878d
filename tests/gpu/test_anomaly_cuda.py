"""The anomaly module on CUDA: fit (the crash of issue 21), test, export; the network's tensors all on the GPU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from astrocyte_lab import Location, NamedSet, Workspace

pytestmark = pytest.mark.gpu

SIZE = 64


def write_tiles(folder: Path, normal: int = 14, anomalies: int = 4) -> Path:
    """Smooth grey noise (Normal) and the same with a bright square (Anomaly), with masks."""
    rng = np.random.default_rng(0)
    for sub in ("good", "bad", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    def texture() -> np.ndarray:
        coarse = cv2.resize(rng.normal(128, 12, (8, 8)).astype(np.float32), (SIZE, SIZE))
        return np.clip(coarse + rng.normal(0, 4, (SIZE, SIZE)), 0, 255).astype(np.uint8)

    for i in range(normal):
        cv2.imwrite(str(folder / "good" / f"g{i:02d}.png"), texture())
    for i in range(anomalies):
        image, mask = texture(), np.zeros((SIZE, SIZE), np.uint8)
        image[20:32, 24:36], mask[20:32, 24:36] = 250, 255
        cv2.imwrite(str(folder / "bad" / f"b{i:02d}.png"), image)
        cv2.imwrite(str(folder / "masks" / f"b{i:02d}.png"), mask)
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    source = write_tiles(tmp_path_factory.mktemp("tiles"))
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    dataset = ws.create_dataset("tiles", "anomaly", [
        NamedSet("good", [Location(source / "good", category="Normal")]),
        NamedSet("bad", [Location(source / "bad", category="Anomaly")], masks=Location(source / "masks"))], seed=0)
    dataset.assign_set(dataset.select(ground_truth="Anomaly"), "validation")
    dataset.save()
    return ws


@pytest.mark.parametrize("options", [{}, {"algorithm": "padim"}, {"granularity": "image"}])
def test_anomaly_fits_tests_and_exports_on_cuda(workspace: Workspace, tmp_path: Path, options: dict) -> None:
    from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import train
    from astrocyte_lab.runtime import load_package

    name = "cuda-" + "-".join(f"{v}" for v in options.values()) if options else "cuda-patchcore"
    train(workspace, "tiles", name, AnomalyConfig(seed=0, pretrained=False, device="cuda:0", **options))
    record = workspace.model_store.record(name)
    assert record["device"] == "cuda:0"
    if not options:
        assert record["anomaly"]["layout"] is not None and record["anomaly"]["segmenter"] is not None
    report = evaluate_anomaly(workspace, name, "tiles", "validation", device="cuda:0")
    assert report.summary()["threshold"] is not None
    package = load_package(export_package(workspace, name, tmp_path / f"{name}.astromodel"))
    image = workspace.dataset("tiles").image(int(workspace.dataset("tiles").select(ground_truth="Anomaly")[0]))
    assert np.isfinite(package.predict(image).score)


def test_a_fitted_network_moves_whole_to_cuda_and_agrees_with_the_cpu(workspace: Workspace) -> None:
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.trainer import load_network, train

    train(workspace, "tiles", "cpu-fit", AnomalyConfig(seed=0, pretrained=False, device="cpu"))
    net = load_network(workspace, "cpu-fit")[0]
    images = torch.randn(2, 1, SIZE, SIZE)
    expected = net(images)
    net.to("cuda:0")
    stray = [name for name, tensor in [*net.named_parameters(), *net.named_buffers()] if tensor.device.type != "cuda"]
    assert stray == []
    got = net(images.to("cuda:0"))
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have.cpu(), want, rtol=1e-3, atol=1e-3)


def test_coreset_and_segmenter_run_on_cuda(cuda: torch.device) -> None:
    from astrocyte_lab.modules.anomaly.coreset import greedy_coreset
    from astrocyte_lab.modules.anomaly.segmenter import fit_segmenter

    features = torch.randn(3000, 64, generator=torch.Generator().manual_seed(0))
    chosen = greedy_coreset(features, 100, projection=16, per_step=4, seed=0, device=cuda)
    assert chosen.device.type == "cpu" and len(set(chosen.tolist())) == 100
    defects, normals = torch.randn(8, 16, 8, 8).half(), torch.randn(8, 16, 8, 8).half()
    model = fit_segmenter(defects, torch.rand(8, 1, 8, 8), normals, width=8, epochs=2, batch_size=4, device=cuda)
    assert all(p.device.type == "cuda" for p in model.parameters())
