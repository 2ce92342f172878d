"""Detection training, testing, export and package parity on a tiny generated dataset (one epoch, random init)."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, RotatedBox
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation.detection import detector_for, evaluate_detector
from astrocyte_lab.modules.detection.config import DetectionConfig
from astrocyte_lab.modules.detection.export import export_package
from astrocyte_lab.modules.detection.labelling import (
    approve_pseudo_labels,
    overlapping_annotations,
    pseudo_filter,
    smart_label,
)
from astrocyte_lab.modules.detection.selftrain import SelfTrainingError
from astrocyte_lab.modules.detection.trainer import plan_tiling, train_job
from astrocyte_lab.runtime import load_package
from astrocyte_lab.runtime.preprocess import preprocess, preprocess_full
from astrocyte_lab.runtime.tiling import extract_tile

from .conftest import make_dataset


def assert_same_detections(ours, theirs) -> None:
    """Same number of detections and best score. (Untrained networks score many junk boxes exactly alike, so which
    of a tie survives NMS may differ by float rounding: the network outputs themselves are compared exactly.)"""
    assert len(theirs) > 0 and abs(len(ours) - len(theirs)) <= 2
    assert ours.score == pytest.approx(theirs.score, abs=2e-3)


def assert_same_outputs(detector, predictor, batch) -> None:
    torch_out = detector._run(batch)
    onnx_out = predictor.run(batch)["predictions"]
    assert onnx_out.shape == torch_out.shape
    assert np.allclose(onnx_out, torch_out, atol=2e-3 * max(1.0, float(np.abs(torch_out).max())))


def quick(**fields) -> DetectionConfig:
    return DetectionConfig(**{"architecture": "nano", "epochs": 1, "batch_size": 8, "seed": 0, "pretrained": False,
                              "region_size": (288, 224), "optimizer": "adam", "learning_rate": 0.002, **fields})


@pytest.fixture(scope="module")
def trained(shapes):
    ws, name = shapes
    job = train_job(ws, name, "boxes", quick())
    events = []
    job.subscribe(events.append)
    assert job.result() == "boxes"
    return ws, name, events


@pytest.mark.parametrize("size", [(300, 224), (192, 256), (224, 200)])
def test_input_size_rules(size) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        DetectionConfig(region_size=size)
    with pytest.raises(ValueError):
        DetectionConfig(max_detections=5001)
    assert DetectionConfig(region_size=(640, 480)).region_size == (640, 480)


def test_training_reports_epochs_and_stores_model(trained) -> None:
    ws, _, events = trained
    epochs = [e for e in events if e.kind == "epoch"]
    assert len(epochs) == 1 and {"loss", "val_loss", "val_map50", "val_map"} <= set(epochs[0].values)
    record = ws.model_store.record("boxes")
    assert record["module"] == "detection" and record["categories"] == ["square", "bar"]
    assert record["detection"]["rotated"] is False and record["input"]["width"] == 288
    assert record["detection"]["yaml"]["nc"] == 2


def test_test_writes_predictions_and_package_matches_pytorch(trained, tmp_path) -> None:
    ws, name, _ = trained
    report = evaluate_detector(ws, "boxes", name, "all", confidence=0.001, max_detections=50)
    assert set(report.ap) == {"square", "bar"} and 0.0 <= report.mAP <= 1.0
    assert report.lines()[-1].startswith("mAP") and "mAP_50_95" in report.summary()
    dataset = ws.dataset(name)
    assert int(dataset.table["n_prediction"].sum()) == len(report.predictions) > 0
    assert {"iou", "score", "category"} <= set(report.predictions.columns)

    package = export_package(ws, "boxes", tmp_path / "boxes.astromodel", confidence=0.001, max_detections=50)
    predictor = load_package(package)
    detector, _ = detector_for(ws, "boxes", confidence=0.001, max_detections=50)
    image = dataset.image(int(dataset.ids[0]))
    assert_same_outputs(detector, predictor, preprocess(image, detector.meta_input, detector.roi, None)[None])
    ours, theirs = detector.detect([image], 1)[0], predictor.predict(image)
    assert_same_detections(ours, theirs)


def test_smart_label_pseudo_toggle_and_overlap_filter(trained) -> None:
    ws, name, _ = trained
    dataset = ws.dataset(name)
    target = int(dataset.ids[0])
    ground_truth = dataset.objects(target, pseudo=False)
    added = smart_label(ws, dataset, "boxes", [target], confidence=0.001, max_detections=5)
    assert added[target] == len(dataset.objects(target, pseudo=True)) > 0
    assert dataset.objects(target, pseudo=False) == ground_truth
    assert all(a.score is not None for a in dataset.objects(target, pseudo=True))
    assert pseudo_filter(dataset, "only") == [target] and target not in pseudo_filter(dataset, "exclude")
    assert approve_pseudo_labels(dataset, [target]) == added[target]
    assert not dataset.objects(target, pseudo=True)
    dataset.reload()
    other = int(dataset.ids[1])
    first = dataset.objects(other)[0]
    dataset.add_object(other, Box(first.category, first.bounds()[0] + 1, *first.bounds()[1:]))
    found = overlapping_annotations(dataset)
    assert list(found) == [other] and found[other][0][2] > 0.9


def test_rotated_boxes_train_and_export(tmp_path) -> None:
    ws, name = make_dataset(tmp_path, "bars", count=10, rotated=True)
    ws.dataset(name)
    assert train_job(ws, name, "obb", quick()).result() == "obb"
    assert ws.model_store.record("obb")["detection"]["rotated"] is True
    package = export_package(ws, "obb", tmp_path / "obb.astromodel", confidence=0.001, max_detections=20)
    detector, _ = detector_for(ws, "obb", confidence=0.001, max_detections=20)
    image = ws.dataset(name).image(0)
    predictor = load_package(package)
    assert_same_outputs(detector, predictor, preprocess(image, detector.meta_input, detector.roi, None)[None])
    ours, theirs = detector.detect([image], 1)[0], predictor.predict(image)
    assert theirs.rotated is not None and theirs.rotated.shape[1] == 5
    assert_same_detections(ours, theirs)
    report = evaluate_detector(ws, "obb", name, "all", confidence=0.001, write_back=True)
    assert set(report.ap) == {"square", "bar"}
    predicted = ws.dataset(name).predicted_objects(0)
    assert predicted and all(isinstance(a, RotatedBox) for a in predicted)


def test_tiling_plan_and_tiled_package(tmp_path) -> None:
    ws, name = make_dataset(tmp_path, "large", count=6, size=(448, 320))
    dataset = ws.dataset(name)
    plan = plan_tiling(dataset, dataset.ids.tolist(), quick(tiling=True, tile_size=(224, 224), region_size=None))
    # the 60 px bars: (60 + 10) / 224 is over the 25 % cap, and 60 > 224 / 4 asks for a whole-image pass
    assert plan.overlap == 0.25 and plan.whole_image
    assert plan_tiling(dataset, dataset.ids.tolist(), quick(tiling=True, tile_size=(512, 512), region_size=None)
                       ).overlap == pytest.approx(70 / 512, abs=1e-4)
    config = quick(tiling=True, tile_size=(224, 224), region_size=None)
    assert train_job(ws, name, "tiled", config).result() == "tiled"
    record = ws.model_store.record("tiled")
    assert record["detection"]["tiling"]["tile"] == [224, 224] and record["input"]["width"] == 224
    package = export_package(ws, "tiled", tmp_path / "tiled.astromodel", confidence=0.001, max_detections=20)
    predictor = load_package(package)
    detector, _ = detector_for(ws, "tiled", confidence=0.001, max_detections=20)
    image = dataset.image(0)
    full = preprocess_full(image, detector.meta_input, detector.roi, None)
    tiles = np.stack([extract_tile(full, x, y, 224, 224).transpose(2, 0, 1) for x, y in ((0, 0), (336, 96))])
    assert_same_outputs(detector, predictor, tiles)
    ours, theirs = detector.detect([image], 4)[0], predictor.predict(image)
    assert_same_detections(ours, theirs)
    assert theirs.boxes[:, 2].max() > 224  # boxes from the second tile column are in image pixels


def test_self_training_needs_mostly_unlabelled_images(shapes) -> None:
    ws, name = shapes
    with pytest.raises(SelfTrainingError, match="more than half"):
        train_job(ws, name, "selftrain", quick(self_training=True)).result()


def test_bad_inputs_are_refused(trained, tmp_path) -> None:
    ws, name, _ = trained
    with pytest.raises(AstrocyteError, match="already exists"):
        train_job(ws, name, "boxes", quick())
    empty, empty_name = make_dataset(tmp_path, "empty", count=3, labelled=0)
    with pytest.raises(AstrocyteError, match="no training image"):
        train_job(empty, empty_name, "nothing", quick()).result()


def test_cancel_stops_training(tmp_path) -> None:
    ws, name = make_dataset(tmp_path, "cancel", count=6)
    job = train_job(ws, name, "cancelled", quick(epochs=50))
    job.cancel()
    job.wait(300)
    assert job.state == "cancelled" and not ws.model_store.exists("cancelled")


def test_self_training_saves_flagged_pseudo_labels(tmp_path) -> None:
    ws, name = make_dataset(tmp_path, "partial", count=12, labelled=4)
    config = quick(self_training=True, pseudo_confidence=0.001, max_detections=3)
    assert train_job(ws, name, "student", config).result() == "student"
    dataset = ws.dataset(name)
    table = dataset.table
    unlabelled = table.index[(table["n_ground_truth"] == 0) & (table["assigned"] != "validation")]
    assert len(unlabelled) >= 5 and (table.loc[unlabelled, "n_pseudo"] > 0).all()
    assert (table.loc[table["n_ground_truth"] > 0, "n_pseudo"] == 0).all()
    assert set(table.loc[unlabelled, "set"]) == {"auto"}
    pseudo = dataset.objects(int(unlabelled[0]), pseudo=True)
    assert all(a.pseudo and a.score is not None and a.score >= 0.001 for a in pseudo)
    info = ws.model_store.record("student")["detection"]["self_training"]
    assert info["pseudo_images"] == len(unlabelled) and info["labelled_repeat"] == 2
    # resuming from the student skips the teacher; a threshold nothing reaches stops with the reason
    with pytest.raises(SelfTrainingError, match="fewer than"):
        train_job(ws, name, "student2", quick(self_training=True, pseudo_confidence=0.99,
                                              resume_from="student")).result()
    assert ws.dataset(name).table["n_pseudo"].sum() == 0  # the (empty) new pseudo labels were saved


def test_int8_package_quantises_convolutions_and_tests_like_the_float_one(trained, tmp_path) -> None:
    import zipfile

    import onnx

    ws, name, _ = trained
    thresholds = {"confidence": 0.001, "max_detections": 50}
    plain = export_package(ws, "boxes", tmp_path / "plain.astromodel", **thresholds)
    packed = export_package(ws, "boxes", tmp_path / "int8.astromodel", int8=True, calibration_images=4, **thresholds)
    with zipfile.ZipFile(packed) as archive:
        graph = onnx.load_from_string(archive.read("model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    predictor, quantized = load_package(plain), load_package(packed)
    section = quantized.metadata["quantization"]
    assert section["type"] == "int8" and section["calibration_images"] == 4
    assert [n for n in section["float_nodes"] if "dfl" in n], section  # box distances stay in float
    dataset = ws.dataset(name)
    batch = predictor.preprocess(dataset.image(int(dataset.ids[0])))[None]
    exact, approx = predictor.run(batch)["predictions"], quantized.run(batch)["predictions"]
    assert approx.shape == exact.shape
    boxes = slice(0, 4)  # rows: x, y, w, h, class scores... per anchor
    assert np.median(np.abs(approx[:, boxes] - exact[:, boxes])) < 2.0  # pixels at 288 x 224
    assert np.corrcoef(approx.ravel(), exact.ravel())[0, 1] > 0.99
    by_model = evaluate_detector(ws, "boxes", name, "all", write_back=False, **thresholds)
    by_package = evaluate_detector(ws, "boxes", name, "all", write_back=False, package=plain)
    assert by_package.mAP == pytest.approx(by_model.mAP, abs=0.02) and by_package.images == by_model.images
    assert set(evaluate_detector(ws, "boxes", name, "all", write_back=False, package=packed).ap) == set(by_model.ap)


def test_cli_tests_exports_and_predicts(trained, tmp_path) -> None:
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from astrocyte_lab.cli import app

    ws, name, _ = trained
    runner = CliRunner()
    tested = runner.invoke(app, ["test", "boxes", name, "--subset", "all", "--workspace", str(ws.path)])
    assert tested.exit_code == 0, tested.output
    assert "mAP" in json.loads(tested.stdout.strip().splitlines()[-1])
    exported = runner.invoke(app, ["export", "boxes", str(tmp_path / "cli.astromodel"), "--workspace", str(ws.path)])
    assert exported.exit_code == 0, exported.output
    quantized = runner.invoke(app, ["export", "boxes", str(tmp_path / "q.astromodel"), "--int8", "--workspace",
                                    str(ws.path)])
    assert quantized.exit_code == 0, quantized.output
    assert load_package(tmp_path / "q.astromodel").metadata["quantization"]["type"] == "int8"
    Image.fromarray(ws.dataset(name).image(0)).save(tmp_path / "part.png")
    predicted = runner.invoke(app, ["predict", str(tmp_path / "cli.astromodel"), str(tmp_path / "part.png")])
    assert predicted.exit_code == 0, predicted.output


def test_importing_ultralytics_leaves_pil_alone(tmp_path) -> None:
    from PIL import Image

    from astrocyte_lab.modules.detection.yolo import ultralytics_module
    from astrocyte_lab.runtime.errors import PreprocessError
    from astrocyte_lab.runtime.preprocess import load_image

    ultralytics_module()
    assert Image.open.__module__.startswith("PIL")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(PreprocessError, match="junk.png"):
        load_image(tmp_path / "junk.png")
