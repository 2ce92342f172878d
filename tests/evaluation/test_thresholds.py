"""Picking another ROC point: decisions written back, threshold stored with the model and used by the export."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
from astrocyte_lab.evaluation.thresholds import apply_threshold

_spec = importlib.util.spec_from_file_location("anomaly_data", Path(__file__).parents[1] / "modules" / "anomaly" /
                                               "conftest.py")
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)


@pytest.fixture(scope="module")
def tested(tmp_path_factory: pytest.TempPathFactory):
    source = _data.write_images(tmp_path_factory.mktemp("images"), normal=12, anomalies=4)
    ws, name = _data.fit_model(tmp_path_factory.mktemp("ws"), source)
    return ws, name, evaluate_anomaly(ws, name, "tiles", "all")


def test_a_new_threshold_relabels_the_dataset_and_is_stored(tested) -> None:
    ws, name, report = tested
    strict = float(np.max(report.predictions["score"])) + 1.0  # nothing is an anomaly above every score
    moved = apply_threshold(ws, report, strict)
    assert moved.threshold == strict and (moved.predictions["prediction"] == "Normal").all()
    table = ws.dataset("tiles").table
    assert (table.loc[moved.predictions.index, "prediction"] == "Normal").all()
    assert ws.model_store.record(name)["anomaly"]["threshold"] == pytest.approx(strict)
    lenient = float(np.min(report.predictions["score"]))
    apply_threshold(ws, report, lenient)
    assert (ws.dataset("tiles").table["prediction"] == "Anomaly").all()
