"""Segmentation end to end on tiny data: train, IoU test, tiling, export, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from astrocyte_lab.cli import app
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation.segmentation import evaluate_segmenter
from astrocyte_lab.modules.segmentation.config import SegmentationConfig
from astrocyte_lab.modules.segmentation.trainer import train_job

FAST = {"architecture": "unet_resnet18", "pretrained": False, "batch_size": 4, "learning_rate": 5e-3, "seed": 0}


def test_train_and_test_reports_iou(blobs) -> None:
    ws, name = blobs
    train_job(ws, name, "seg", SegmentationConfig(epochs=30, **FAST)).result(timeout=600)
    record = ws.model_store.record("seg")
    assert record["categories"] == ["background", "square", "disc"]
    assert record["segmentation"]["tiling"] is None
    report = evaluate_segmenter(ws, "seg", name, "all")
    assert set(report.iou) == {"background", "square", "disc"}
    assert report.iou["background"] > 0.9 and report.mean_iou > 0.5, report.iou  # it learned the squares at least
    assert len(report.masks) == len(ws.dataset(name)) and report.masks[0].shape == (64, 64)
    assert 0 < report.accuracy <= 1 and len(report.per_image) == len(ws.dataset(name))
    stored = ws.dataset(name)  # written back for overlays, in the dataset's own category indices
    lut = np.array([stored.categories.index(c) for c in record["categories"]])
    assert all(np.array_equal(stored.predicted_mask(i), lut[mask]) for i, mask in report.masks.items())
    assert stored.table["has_predicted_mask"].all()


def test_tiling_trains_on_tiles_and_stitches(blobs) -> None:
    ws, name = blobs
    config = SegmentationConfig(epochs=2, tiling=True, tile_size=(32, 32), tile_overlap=0.25, **FAST)
    train_job(ws, name, "tiled", config).result(timeout=600)
    record = ws.model_store.record("tiled")
    assert record["segmentation"]["tiling"] == {"tile": [32, 32], "overlap": 0.25}
    assert (record["input"]["width"], record["input"]["height"]) == (32, 32)
    report = evaluate_segmenter(ws, "tiled", name, "validation")
    assert next(iter(report.masks.values())).shape == (64, 64)  # full resolution, stitched


def test_classification_dataset_is_refused(blobs, tmp_path) -> None:
    ws, _ = blobs
    with pytest.raises(AstrocyteError, match="not segmentation"):
        from astrocyte_lab import Location, NamedSet

        ws.create_dataset("c", "classification", [NamedSet("s", [Location(tmp_path / "img", category="x")])])
        train_job(ws, "c", "nope", SegmentationConfig(epochs=1, **FAST)).result(timeout=60)


def test_cli_trains_tests_and_exports_by_module(blobs, tmp_path) -> None:
    ws, name = blobs
    runner = CliRunner()
    result = runner.invoke(app, ["train", name, "cli-seg", "--architecture", "unet_resnet18", "--epochs", "1",
                                 "--no-pretrained", "--batch-size", "4", "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["test", "cli-seg", name, "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    assert "mean_iou" in json.loads(result.stdout.strip().splitlines()[-1])
    result = runner.invoke(app, ["export", "cli-seg", str(tmp_path / "s.astromodel"), "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.astromodel").stat().st_size > 1000


@pytest.mark.parametrize("tiled", [False, True])
def test_package_matches_pytorch(blobs, tmp_path, tiled: bool) -> None:
    import numpy as np

    from astrocyte_lab.evaluation.segmentation import predict_probabilities
    from astrocyte_lab.modules.segmentation.export import export_package
    from astrocyte_lab.modules.segmentation.trainer import load_network
    from astrocyte_lab.runtime import load_package
    from astrocyte_lab.training.devices import resolve_device

    ws, name = blobs
    dataset = ws.dataset(name)
    dataset.set_roi(np.pad(np.zeros((56, 56), bool), 4, constant_values=True))
    dataset.save()
    options = {"tiling": True, "tile_size": (32, 32)} if tiled else {"region_size": (48, 48)}
    train_job(ws, name, "p", SegmentationConfig(epochs=1, **options, **FAST)).result(timeout=600)
    predictor = load_package(export_package(ws, "p", tmp_path / "p.astromodel"))
    net, record, spec = load_network(ws, "p")
    for image_id in dataset.ids[:3]:
        image = dataset.image(int(image_id))
        expected = predict_probabilities(net, spec, image, record["segmentation"]["tiling"], 0, resolve_device("cpu"))
        got = predictor.predict(image)
        assert got.mask.shape == image.shape[:2]
        # a 1-epoch model's logits reach ~1e4, so float rounding between the two runtimes (~1e-7 relative)
        # moves the probabilities of pixels whose top two logits are nearly tied by up to ~1e-3; everywhere
        # else they agree to float precision, and a preprocessing or resize slip would show in the mean
        difference = np.abs(got.probabilities - expected)
        assert difference.max() < 2e-3 and difference.mean() < 1e-5, (difference.max(), difference.mean())
        assert (got.mask == expected.argmax(0)).mean() > 0.999
