"""``astrocyte-lab quickstart anomaly --fast`` runs end to end on the metal sample and meets the issue's bar."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from astrocyte_lab.cli import app
from astrocyte_lab.runtime import load_package


def test_quickstart_anomaly_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["quickstart", "anomaly", "--workspace", str(tmp_path), "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"module", "dataset", "images", "model", "metrics", "package", "runtime"}
    assert summary["module"] == "anomaly" and summary["images"] == 84
    metrics = summary["metrics"]
    assert metrics["auroc"] >= 0.95, metrics
    assert {"aupr", "threshold", "pixel_auroc"} <= set(metrics)
    assert set(summary["runtime"]) == {"label", "score", "ms"}
    assert summary["runtime"]["label"] == "Anomaly"  # the package scores a defective image
    predictor = load_package(summary["package"])
    assert predictor.categories == ["Normal", "Anomaly"]
    assert predictor.metadata["anomaly"]["threshold"] == metrics["threshold"]
