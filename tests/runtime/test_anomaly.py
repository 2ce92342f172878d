"""Anomaly packages: torch-free scores and heatmaps equal to the PyTorch model's, tiled and untiled, with ROI;
the ``anomaly`` metadata section is checked on load."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab import Workspace
from astrocyte_lab.runtime import PackageError, load_package, read_package
from astrocyte_lab.runtime.anomaly import AnomalyPrediction, validate_metadata


def _helpers():
    path = Path(__file__).resolve().parents[1] / "modules" / "anomaly" / "conftest.py"
    spec = importlib.util.spec_from_file_location("anomaly_test_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("anomaly_test_data", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _helpers().write_images(tmp_path_factory.mktemp("images"))


def _parity(ws: Workspace, name: str, tmp_path: Path) -> None:
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import load_network, torch_scorer

    package = export_package(ws, name, tmp_path / f"{name}.astromodel")
    predictor = load_package(package, threads=2)
    net, record, spec = load_network(ws, name)
    reference = torch_scorer(net, spec, record["anomaly"])
    dataset = ws.dataset("tiles")
    images = [dataset.image(int(i)) for i in dataset.select(assigned="validation")[:6]]
    expected = reference.predict(images, 4)
    got = predictor.predict_batch(images, batch_size=4)
    for want, have in zip(expected, got, strict=True):
        assert isinstance(have, AnomalyPrediction)
        assert have.score == pytest.approx(want.score, rel=1e-3, abs=1e-3)
        if abs(want.score - want.threshold) > 1e-3 * max(1.0, want.threshold):  # not on the threshold itself
            assert have.label == want.label
        assert have.heatmap.shape == images[0].shape[:2]
        np.testing.assert_allclose(have.heatmap, want.heatmap, rtol=1e-3, atol=2e-3 * max(1.0, want.score))
        assert have.threshold == pytest.approx(record["anomaly"]["threshold"]) and have.ms > 0
    single = predictor.predict(images[0])
    assert single.score == pytest.approx(got[0].score, rel=1e-4)
    assert single.region.dtype == bool and single.region.shape == single.heatmap.shape


CHILD_TAIL = r"""
import numpy as np
from astrocyte_lab.runtime import load_package

result = load_package(sys.argv[2]).predict(np.load(sys.argv[3]))
others = sorted(n for n in set(sys.modules) - before
                if n.startswith("astrocyte_lab.") and not n.startswith("astrocyte_lab.runtime"))
heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
print(json.dumps({"score": result.score, "label": result.label, "shape": list(result.heatmap.shape),
                  "others": others, "heavy": heavy}))
"""


def test_package_matches_pytorch_untiled(tmp_path: Path, source: Path) -> None:
    import json
    import subprocess

    from .test_isolation import BLOCKED, CHILD

    ws, name = _helpers().fit_model(tmp_path / "ws", source)
    _parity(ws, name, tmp_path)
    metadata, _ = read_package(tmp_path / f"{name}.astromodel")
    image = ws.dataset("tiles").image(0)
    np.save(tmp_path / "image.npy", image)
    child = CHILD[:CHILD.index("before = set(sys.modules)")] + "before = set(sys.modules)\n" + CHILD_TAIL
    done = subprocess.run([sys.executable, "-c", child, ",".join(BLOCKED), str(tmp_path / f"{name}.astromodel"),
                           str(tmp_path / "image.npy")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["others"] == [] and report["heavy"] == [] and report["shape"] == [64, 64]
    assert report["score"] == pytest.approx(load_package(tmp_path / f"{name}.astromodel").predict(image).score)
    assert metadata["anomaly"]["heatmap_ratio"] == 0.9 and metadata["outputs"] == {
        "score": "score", "anomaly_map": "anomaly_map", "score_map": "score_map"}  # the segmenter's heatmap term


def test_package_matches_pytorch_tiled_with_roi(tmp_path: Path, source: Path) -> None:
    helpers = _helpers()
    ws = Workspace(tmp_path / "ws")
    dataset = helpers.make_dataset(ws, source)
    ignored = np.zeros((64, 64), bool)
    ignored[:4, :] = True
    ignored[20:30, 20:30] = True  # a hole in the ROI: masked, inside the crop
    dataset.set_roi(ignored)
    dataset.save()
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.trainer import train

    train(ws, "tiles", "tiled", AnomalyConfig(seed=0, pretrained=False, tiling=True, tile_size=(32, 32)))
    _parity(ws, "tiled", tmp_path)
    result = load_package(tmp_path / "tiled.astromodel").predict(dataset.image(0))
    assert np.all(result.heatmap[:4] == 0) and np.all(result.heatmap[20:30, 20:30] == 0)


def test_export_overrides_and_image_level(tmp_path: Path, source: Path) -> None:
    from astrocyte_lab.modules.anomaly.export import export_package

    ws, name = _helpers().fit_model(tmp_path / "ws", source, "dfm", granularity="image")
    package = export_package(ws, name, tmp_path / "dfm.astromodel", threshold=1e-6, heatmap_ratio=0.5)
    predictor = load_package(package)
    result = predictor.predict(ws.dataset("tiles").image(0))
    assert result.label == "Anomaly" and result.threshold == 1e-6 and result.heatmap_ratio == 0.5
    assert predictor.metadata["anomaly"]["algorithm"] == "dfm"
    _parity(ws, name, tmp_path) if predictor.metadata["anomaly"]["heatmap"] else None


def _metadata() -> dict:
    return {"categories": ["Normal", "Anomaly"], "input": {"width": 32, "height": 32},
            "outputs": {"score": "score", "anomaly_map": "anomaly_map"},
            "anomaly": {"threshold": 1.5, "heatmap_ratio": 0.9, "score": "map_max", "heatmap": True,
                        "tiling": {"tile": [32, 32], "overlap": 0.25}}}


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.pop("anomaly"), "needs an 'anomaly' section"),
    (lambda m: m["anomaly"].update(threshold=float("nan")), "threshold"),
    (lambda m: m["anomaly"].update(threshold="high"), "threshold"),
    (lambda m: m["anomaly"].update(heatmap_ratio=0), "heatmap_ratio"),
    (lambda m: m["anomaly"].update(score="mean"), "anomaly.score"),
    (lambda m: m["anomaly"].update(tiling={"tile": [16, 32]}), "must equal the input size"),
    (lambda m: m["anomaly"].update(tiling={"tile": [32, 32], "overlap": 1.0}), "overlap"),
    (lambda m: m["outputs"].pop("anomaly_map"), "missing"),
    (lambda m: m.update(categories=["Normal"]), "exactly two categories"),
])
def test_bad_anomaly_metadata_is_refused(change, message: str) -> None:
    validate_metadata(_metadata())
    broken = copy.deepcopy(_metadata())
    change(broken)
    with pytest.raises(PackageError, match=message):
        validate_metadata(broken, "x.astromodel")


def test_resize_map_equals_the_preprocessing_resize() -> None:
    from astrocyte_lab.runtime.anomaly import resize_map
    from astrocyte_lab.runtime.preprocess import resize_bilinear

    plane = np.random.default_rng(0).random((37, 53), dtype=np.float32)
    for width, height in ((130, 70), (20, 11), (53, 37)):
        expected = resize_bilinear(plane[:, :, None], width, height)[:, :, 0]
        np.testing.assert_allclose(resize_map(plane, width, height), expected, rtol=1e-5, atol=1e-6)


def test_options_change_the_decision_without_reloading(tmp_path: Path, source: Path) -> None:
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.runtime.errors import PackageError

    ws, name = _helpers().fit_model(tmp_path / "ws", source)
    predictor = load_package(export_package(ws, name, tmp_path / "m.astromodel"))
    assert set(predictor.options()) == {"threshold", "heatmap_ratio"}
    image = ws.dataset("tiles").image(0)
    score = predictor.predict(image).score
    predictor.configure(threshold=score + 1.0)
    assert predictor.predict(image).label == "Normal" and predictor.options()["threshold"] == score + 1.0
    predictor.configure(threshold=score - 1.0)
    assert predictor.predict(image).label == "Anomaly"
    assert load_package(predictor.save(tmp_path / "kept.astromodel")).options()["threshold"] == score - 1.0
    with pytest.raises(PackageError, match="cannot be configured"):
        predictor.configure(colour=1)


@pytest.mark.parametrize("tiled", [False, True])
def test_score_comes_from_the_score_map_when_the_package_has_one(tiled: bool) -> None:
    """A heatmap term the score leaves out (the defect segmenter's) changes the heatmap, never the score."""
    from astrocyte_lab.runtime.anomaly import AnomalyScorer

    metadata = _metadata()
    metadata["input"] = {"width": 32, "height": 32, "channels": 1, "source_channels": 1, "bit_depth": 8,
                         "resize": "bilinear", "mean": [0.0], "std": [1.0]}
    metadata["roi"] = {"crop": None, "mask": None}
    metadata["outputs"]["score_map"] = "score_map"
    if not tiled:
        metadata["anomaly"]["tiling"] = None
    validate_metadata(metadata)

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        score_map = np.full((len(batch), 1, 32, 32), 1.0, np.float32)
        score_map[:, :, 5, 5] = 1.2
        heatmap = score_map.copy()
        heatmap[:, :, 20:24, 20:24] += 3.0  # the heatmap-only term
        return {"score": score_map.reshape(len(batch), -1).max(1), "anomaly_map": heatmap, "score_map": score_map}

    image = np.zeros((48 if tiled else 32, 48 if tiled else 32), np.uint8)
    result = AnomalyScorer(metadata, None, run).predict([image], 4)[0]
    assert result.score == pytest.approx(1.2, abs=1e-4) and result.label == "Normal"  # threshold 1.5
    assert result.heatmap.max() > 3.5 and result.region.any()
