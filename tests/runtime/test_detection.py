"""Detection runtime head: decoding, NMS (boxes and rotated boxes), coordinate mapping, tiling, metadata checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrocyte_lab.runtime import PackageError
from astrocyte_lab.runtime.detection import (
    Candidates,
    DetectionHead,
    box_iou,
    decode,
    nms,
    probiou,
    rotated_corners,
    select,
    validate_metadata,
)

CATEGORIES = ["nut", "bolt"]


def metadata(width: int = 64, height: int = 48, rotated: bool = False, tiling: dict | None = None,
             crop: list[int] | None = None, **detection) -> dict:
    return {"module": "detection", "categories": CATEGORIES,
            "input": {"width": width, "height": height, "channels": 3, "source_channels": 3, "bit_depth": 8,
                      "resize": "bilinear", "mean": [0, 0, 0], "std": [1, 1, 1]},
            "roi": {"crop": crop, "mask": None}, "outputs": {"predictions": "out"},
            "detection": {"rotated": rotated, "confidence": 0.3, "overlap": 0.5, "max_detections": 10,
                          "class_agnostic": False, "tiling": tiling, **detection}}


def anchors(rows: list[list[float]], classes: int = 2, rotated: bool = False) -> np.ndarray:
    """(4 + K [+1], A) output from rows ``[cx, cy, w, h, score_0, ..., (angle)]``."""
    out = np.asarray(rows, np.float32).T
    assert out.shape[0] == 4 + classes + (1 if rotated else 0)
    return out


class BrightSpot:
    """A fake network: one detection of class 0 centred on the brightest pixel of each input, 8 x 8 pixels."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.shapes.append(batch.shape)
        outs = []
        for x in batch:
            grey = x.mean(0)
            y, xx = np.unravel_index(int(np.argmax(grey)), grey.shape)
            score = float(grey.max())
            outs.append(anchors([[xx + 0.5, y + 0.5, 8, 8, score, 0.0], [1, 1, 2, 2, 0.01, 0.02]]))
        return {"out": np.stack(outs)}


def test_box_iou_values() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert np.allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_probiou_identical_and_far() -> None:
    box = np.array([[50, 50, 20, 10, 0.3]])
    assert probiou(box, box)[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert probiou(box, np.array([[500, 500, 20, 10, 0.3]]))[0, 0] < 1e-3
    turned = np.array([[50, 50, 20, 10, 0.3 + math.pi]])  # a half turn is the same box
    assert probiou(box, turned)[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_nms_keeps_best_and_separates_classes() -> None:
    geometry = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 0, 1])
    assert nms(geometry, scores, 0.5).tolist() == [0, 2]
    kept = select(Candidates(geometry, classes, scores), 0.5, 10, class_agnostic=False, rotated=False)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    agnostic = select(Candidates(geometry, classes, scores), 0.5, 10, class_agnostic=True, rotated=False)
    assert agnostic.scores.tolist() == pytest.approx([0.9, 0.7])
    assert len(select(Candidates(geometry, classes, scores), 0.5, 1, False, False).scores) == 1


def test_decode_threshold_and_best_class() -> None:
    out = anchors([[10, 10, 4, 2, 0.2, 0.9], [30, 30, 4, 4, 0.1, 0.2]])
    found = decode(out, 2, 0.3, rotated=False)
    assert found.classes.tolist() == [1]
    assert np.allclose(found.geometry, [[8, 9, 12, 11]])
    with pytest.raises(PackageError):
        decode(out, 3, 0.3, rotated=False)


def test_head_maps_boxes_back_to_image_pixels() -> None:
    image = np.zeros((96, 256, 3), np.uint8)  # resized to 64 x 48: x / 4, y / 2
    image[40:44, 100:104] = 255
    head = DetectionHead(metadata(), None, BrightSpot())
    result = head.predict([image, image], batch_size=2)
    assert len(result) == 2 and result[0].label == "nut" and result[0].score > 0.9
    x1, y1, x2, y2 = result[0].boxes[0]
    assert (x1 + x2) / 2 == pytest.approx(102, abs=4) and (y1 + y2) / 2 == pytest.approx(42, abs=2)
    assert x2 - x1 == pytest.approx(32) and y2 - y1 == pytest.approx(16)  # 8 x 8 input pixels, scaled back
    assert result[0].rotated is None and result[0].counts() == {"nut": 1, "bolt": 0}


def test_head_crop_offsets_boxes() -> None:
    image = np.zeros((96, 128, 3), np.uint8)
    image[60, 90] = 255
    head = DetectionHead(metadata(crop=[64, 48, 64, 48]), None, BrightSpot())
    box = head.predict([image], 1)[0].boxes[0]
    assert (box[0] + box[2]) / 2 == pytest.approx(90.5, abs=0.6) and (box[1] + box[3]) / 2 == pytest.approx(60.5,
                                                                                                             abs=0.6)


def test_empty_result_has_no_label() -> None:
    head = DetectionHead(metadata(), None, BrightSpot())
    result = head.predict([np.zeros((48, 64, 3), np.uint8)], 1)[0]
    assert result.label == "" and result.score == 0.0 and len(result) == 0 and result.boxes.shape == (0, 4)


def test_per_call_thresholds_override_package() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10, 10] = 100  # grey value ~0.39: kept at 0.3, dropped at 0.5
    head = DetectionHead(metadata(), None, BrightSpot())
    assert len(head.predict([image], 1)[0]) == 1
    assert len(head.predict([image], 1, confidence=0.5)[0]) == 0


def test_tiled_head_finds_spots_in_every_tile() -> None:
    image = np.zeros((100, 150, 3), np.uint8)
    spots = [(20, 30), (70, 120)]
    for y, x in spots:
        image[y, x] = 255
    model = BrightSpot()
    head = DetectionHead(metadata(width=64, height=64, tiling={"tile": [64, 64], "overlap": 0.25}), None, model)
    assert head.tiled
    result = head.predict([image], 4)[0]
    assert all(shape[2:] == (64, 64) for shape in model.shapes)
    centres = sorted(((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for b in result.boxes)
    assert len(centres) == 2  # each spot is seen by several tiles; NMS keeps one box each
    for (cy, cx), (y, x) in zip(centres, sorted(spots), strict=True):
        assert cy == pytest.approx(y + 0.5, abs=0.6) and cx == pytest.approx(x + 0.5, abs=0.6)


def test_rotated_head_reports_degrees_and_corners() -> None:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        rows = [[32, 24, 20, 6, 0.9, 0.1, math.radians(30)], [32, 24, 20, 6, 0.8, 0.1, math.radians(31)]]
        return {"out": np.stack([anchors(rows, rotated=True)] * len(batch))}

    head = DetectionHead(metadata(rotated=True), None, run)
    result = head.predict([np.zeros((48, 64, 3), np.uint8)], 1)[0]
    assert len(result) == 1  # the near-duplicate is suppressed by ProbIoU
    cx, cy, w, h, angle = result.rotated[0]
    assert (cx, cy, w, h) == pytest.approx((32, 24, 20, 6)) and angle == pytest.approx(30, abs=1e-4)
    corners = rotated_corners(np.array([[32, 24, 20, 6, math.radians(30)]]))[0]
    assert np.allclose(result.boxes[0], [*corners.min(0), *corners.max(0)], atol=1e-4)


@pytest.mark.parametrize(("change", "message"), [
    ({"confidence": 1.5}, "confidence"),
    ({"max_detections": 0}, "max_detections"),
    ({"max_detections": 6000}, "max_detections"),
    ({"rotated": "yes"}, "rotated"),
    ({"tiling": {"tile": [32, 32], "overlap": 0.1}}, "input size"),
    ({"tiling": {"tile": [64, 48], "overlap": 1.5}}, "overlap"),
])
def test_bad_metadata_is_refused(change: dict, message: str) -> None:
    meta = metadata()
    meta["detection"].update(change)
    with pytest.raises(PackageError, match=message):
        validate_metadata(meta, "metadata.json")


def test_missing_output_is_refused() -> None:
    meta = metadata()
    meta["outputs"] = {"logits": "x"}
    with pytest.raises(PackageError, match="predictions"):
        validate_metadata(meta, "metadata.json")
    validate_metadata(metadata(tiling={"tile": [64, 48], "overlap": 0.1}), "ok")


def test_run_time_options_are_the_package_thresholds() -> None:
    head = DetectionHead(metadata(), None, BrightSpot())
    assert {name: getattr(head.settings, name) for name in head.tunable} == {
        "confidence": 0.3, "overlap": 0.5, "max_detections": 10}
