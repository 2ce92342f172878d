"""The detection quick starts through the CLI: the last line is the JSON summary and the detector has learnt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astrocyte_lab.cli import app


def run_quickstart(name: str, workspace: Path) -> dict:
    result = CliRunner().invoke(app, ["quickstart", name, "--workspace", str(workspace), "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"module", "dataset", "images", "model", "metrics", "package", "runtime"} <= set(summary)
    assert Path(summary["package"]).is_file()
    assert {"label", "score", "ms"} <= set(summary["runtime"])
    return summary


@pytest.mark.slow
def test_detection_quickstart_learns(tmp_path: Path) -> None:
    summary = run_quickstart("detection", tmp_path / "ws")
    metrics = summary["metrics"]
    assert summary["images"] == 60 and set(metrics["ap"]) == {"washer", "nut", "nail", "screw", "crimpterminal"}
    assert metrics["mAP"] > 0.3, metrics  # an untrained detector scores 0


@pytest.mark.slow
def test_rotated_quickstart_learns(tmp_path: Path) -> None:
    summary = run_quickstart("detection-rotated", tmp_path / "ws")
    assert summary["module"] == "detection-rotated" and summary["metrics"]["mAP"] > 0.2, summary["metrics"]


@pytest.mark.slow
def test_selftrain_quickstart_saves_pseudo_labels(tmp_path: Path) -> None:
    summary = run_quickstart("detection-selftrain", tmp_path / "ws")
    metrics = summary["metrics"]
    # the teacher must pseudo-label at least as many images as there are labelled training images (35)
    assert metrics["labelled_images"] == 40 and metrics["pseudo_labelled_images"] >= 35, metrics
    assert metrics["mAP"] > 0.3, metrics  # scored on the labelled validation images only


def test_detection_quickstart_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default suite runs the CLI path with one short epoch (learning is checked by the slow tests)."""
    from astrocyte_lab.modules.detection import quickstart

    original = quickstart._config
    monkeypatch.setattr(quickstart, "_config", lambda fast, **fields: original(
        fast, **{**fields, "epochs": 1, "region_size": (288, 224)}))
    summary = run_quickstart("detection", tmp_path / "ws")
    assert summary["module"] == "detection" and summary["model"] == "quickstart-hardware"
    assert 0.0 <= summary["metrics"]["mAP"] <= 1.0 and "mAP_50_95" in summary["metrics"]
