"""The quick starts run end to end from the command line and meet the issue's bar (fast mode)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from astrocyte_lab.cli import app
from astrocyte_lab.runtime import load_package

KEYS = {"module", "dataset", "images", "model", "metrics", "package", "runtime"}


def run(module: str, workspace: Path) -> dict:
    result = CliRunner().invoke(app, ["quickstart", module, "--workspace", str(workspace), "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == KEYS
    assert set(summary["runtime"]) == {"label", "score", "ms"}
    return summary


def test_quickstart_classification(tmp_path: Path) -> None:
    summary = run("classification", tmp_path)
    assert summary["metrics"]["accuracy"] >= 0.9
    assert load_package(summary["package"]).categories == ["cap_ceramic", "cap_tantalum", "opto", "resistor"]
    assert summary["runtime"]["label"] in ("cap_ceramic", "cap_tantalum", "opto", "resistor")


def test_quickstart_continual(tmp_path: Path) -> None:
    summary = run("continual", tmp_path)
    metrics = summary["metrics"]
    assert metrics["classes"] == ["cap_ceramic", "cap_tantalum", "opto", "resistor"]
    assert metrics["recall_before"]["opto"] == 0 and metrics["recall_before"]["resistor"] == 0
    assert all(recall >= 0.8 for recall in metrics["recall_after"].values()), metrics


def test_quickstart_segmentation(tmp_path: Path) -> None:
    summary = run("segmentation", tmp_path)
    metrics = summary["metrics"]
    assert set(metrics["iou"]) == {"background", "scratch", "spot"}
    assert metrics["iou"]["background"] > 0.9
    assert metrics["mean_iou_defects"] > 0.2, metrics  # the defect classes are learned, not just background
    assert summary["runtime"]["label"] in ("background", "scratch", "spot")
