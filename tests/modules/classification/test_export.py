"""The deployable package: same predictions as PyTorch, continual learning without torch, CLI predict."""

from __future__ import annotations

import numpy as np
import torch
from typer.testing import CliRunner

from astrocyte_lab.cli import app
from astrocyte_lab.modules.classification.config import ClassificationConfig
from astrocyte_lab.modules.classification.export import export_package
from astrocyte_lab.modules.classification.trainer import load_network, train_job
from astrocyte_lab.runtime import load_package

FAST = {"architecture": "squeezenet1_1", "pretrained": False, "batch_size": 8, "learning_rate": 3e-3, "seed": 0,
        "region_size": (40, 32)}


def test_package_matches_pytorch(shapes, tmp_path) -> None:
    ws, name = shapes
    dataset = ws.dataset(name)
    dataset.set_roi(np.pad(np.zeros((24, 24), bool), 4, constant_values=True))  # ignore a 4 px border
    dataset.save()
    train_job(ws, name, "m", ClassificationConfig(epochs=2, **FAST)).result(timeout=300)
    package = export_package(ws, "m", tmp_path / "m.astromodel")
    predictor = load_package(package)
    assert predictor.metadata["roi"]["crop"] == [4, 4, 24, 24]
    net, _, spec = load_network(ws, "m")
    worst = 0.0
    for image_id in dataset.ids[:6]:
        image = dataset.image(int(image_id))
        with torch.no_grad():
            expected = torch.softmax(net(torch.from_numpy(spec.to_tensor(image))[None]), 1)[0].numpy()
        got = predictor.predict(image)
        scores = np.array([got.scores[c] for c in predictor.categories])
        worst = max(worst, float(np.abs(scores - expected).max()))
        assert got.label == predictor.categories[int(expected.argmax())]
    assert worst < 1e-4


def test_continual_package_learns_new_class(shapes, tmp_path) -> None:
    ws, name = shapes
    train_job(ws, name, "c", ClassificationConfig(epochs=2, continual=True, **FAST)).result(timeout=300)
    predictor = load_package(export_package(ws, "c", tmp_path / "c.astromodel"))
    dataset = ws.dataset(name)
    green = np.zeros((32, 32, 3), np.uint8)
    green[:, :, 1] = 200
    predictor.learn(green, "green")
    saved = load_package(predictor.save(tmp_path / "c2.astromodel"))
    assert saved.categories == ["blue", "red", "green"]
    assert saved.predict(green).label == "green"
    assert saved.predict(dataset.image(int(dataset.ids[0]))).label in ("blue", "red", "Undefined")


def test_cli_export_and_predict(shapes, tmp_path) -> None:
    ws, name = shapes
    runner = CliRunner()
    result = runner.invoke(app, ["train", name, "cli", "--architecture", "squeezenet1_1", "--epochs", "1",
                                 "--no-pretrained", "--seed", "0", "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["test", "cli", name, "--subset", "all", "--workspace", str(ws.path)])
    assert result.exit_code == 0 and '"accuracy"' in result.output
    result = runner.invoke(app, ["export", "cli", str(tmp_path / "cli.astromodel"), "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    image = ws.dataset(name).table["source"].iloc[0]
    result = runner.invoke(app, ["predict", str(tmp_path / "cli.astromodel"), image])
    assert result.exit_code == 0, result.output
    label, score, ms = result.output.strip().split("\t")[1:]
    assert label in ("blue", "red") and 0 <= float(score) <= 1 and ms.endswith("ms")
    result = runner.invoke(app, ["models", "list", "--workspace", str(ws.path)])
    assert "cli" in result.output
