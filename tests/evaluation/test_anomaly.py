"""Testing an anomaly model: ROC data, default and chosen thresholds, write-back, heatmaps, pixel AUROC."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrocyte_lab import Workspace
from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
from astrocyte_lab.modules.anomaly import postprocess


def _helpers():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "modules" / "anomaly" / "conftest.py"
    spec = importlib.util.spec_from_file_location("anomaly_test_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("anomaly_test_data", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    helpers = _helpers()
    source = helpers.write_images(tmp_path_factory.mktemp("images"))
    return helpers.fit_model(tmp_path_factory.mktemp("ws"), source)


def test_roc_threshold_rules() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.8, 0.9])
    curve = postprocess.roc(truth, scores)
    assert curve.fpr[0] == 0 and curve.tpr[0] == 0 and curve.thresholds[0] > scores.max()
    assert np.all(np.diff(curve.thresholds) < 0)
    best = curve.closest_to_corner()  # (fpr 1/4, tpr 1) at 0.5 beats (fpr 0, tpr 2/3) at 0.8
    assert curve.thresholds[best] == pytest.approx(0.5)
    assert postprocess.default_threshold(truth, scores) == pytest.approx(0.5)
    assert postprocess.auroc(truth, scores) == pytest.approx(11 / 12)
    assert 0 < postprocess.aupr(truth, scores) <= 1
    assert curve.thresholds[curve.index_of(fpr=0.0)] == pytest.approx(0.8)
    assert curve.thresholds[curve.index_of(threshold=0.55)] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="both"):
        postprocess.auroc(np.zeros(3, bool), np.ones(3))
    masks = [np.array([[0, 1], [0, 0]], bool), np.zeros((2, 2), bool)]
    maps = [np.array([[0.1, 0.9], [0.2, 0.3]]), np.full((2, 2), 0.25)]
    assert postprocess.pixel_auroc(masks, maps) == pytest.approx(1.0)
    assert postprocess.pixel_auroc([np.zeros((2, 2), bool)], [np.ones((2, 2))]) is None


def test_evaluate_writes_back_and_stores_the_threshold(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    report = evaluate_anomaly(ws, name, "tiles", "validation", keep_heatmaps=True)
    assert report.auroc is not None and report.auroc >= 0.9 and report.aupr is not None
    assert report.pixel_auroc is not None and report.pixel_auroc > 0.6  # random init, 64 px, sigma-4 blur
    best = report.curve.closest_to_corner()
    assert report.threshold == pytest.approx(report.curve.thresholds[best])
    table = ws.dataset("tiles").table.loc[report.predictions.index]
    assert table["prediction"].tolist() == report.predictions["prediction"].tolist()
    np.testing.assert_allclose(table["score"], report.predictions["score"], rtol=1e-6)
    assert ws.model_store.record(name)["anomaly"]["threshold"] == pytest.approx(report.threshold)
    heatmap = report.heatmaps[int(report.predictions.index[0])]
    assert heatmap.shape == (64, 64) and heatmap.dtype == np.float32
    summary = report.summary()
    assert {"auroc", "aupr", "threshold", "pixel_auroc", "heatmap_ratio"} <= set(summary)
    json.dumps(report.to_dict())
    assert any("AUROC" in line for line in report.lines())


def test_moving_the_threshold(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    report = evaluate_anomaly(ws, name, "tiles", "validation", write_back=False, store_threshold=False)
    everything = report.with_threshold(float(report.predictions["score"].min()))
    assert set(everything.predictions["prediction"]) == {"Anomaly"} and everything.rates() == (1.0, 1.0)
    first = report.at_point(0)  # above every score: nothing is an anomaly
    assert set(first.predictions["prediction"]) == {"Normal"} and first.rates() == (0.0, 0.0)
    fixed = evaluate_anomaly(ws, name, "tiles", "validation", threshold=1e9, write_back=False,
                             store_threshold=False)
    assert fixed.threshold == 1e9 and fixed.accuracy < 1.0
    normals = evaluate_anomaly(ws, name, "tiles", ws.dataset("tiles").select(ground_truth="Normal").tolist(),
                               write_back=False, store_threshold=False)
    assert normals.auroc is None and normals.curve is None and normals.pixel_auroc is None
    assert normals.threshold == pytest.approx(ws.model_store.record(name)["anomaly"]["threshold"])
