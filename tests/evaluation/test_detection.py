"""Detection metrics: COCO-style matching, AP, rotated IoU, annotations from predictions."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, RotatedBox
from astrocyte_lab.evaluation.detection import (
    ImageResult,
    average_precision,
    class_ap,
    iou_matrix,
    object_geometry,
    to_annotations,
)
from astrocyte_lab.runtime.detection import DetectionPrediction


def result(pred: list[tuple[int, float, list[float]]], truth: list[tuple[int, list[float]]]) -> ImageResult:
    ious = iou_matrix([np.array(p[2], float) for p in pred], [np.array(t[1], float) for t in truth], False)
    return ImageResult(np.array([p[0] for p in pred], np.int64), np.array([p[1] for p in pred], np.float32), ious,
                       np.array([t[0] for t in truth], np.int64))


def test_perfect_detections_give_ap_one() -> None:
    r = result([(0, 0.9, [0, 0, 10, 10]), (0, 0.8, [20, 20, 30, 30])], [(0, [0, 0, 10, 10]), (0, [20, 20, 30, 30])])
    assert class_ap([r], 0, 0.5)[0] == pytest.approx(1.0)


def test_missed_object_halves_recall() -> None:
    r = result([(0, 0.9, [0, 0, 10, 10])], [(0, [0, 0, 10, 10]), (0, [20, 20, 30, 30])])
    ap, precision, recall = class_ap([r], 0, 0.5)
    assert recall == pytest.approx(0.5) and precision == pytest.approx(1.0)
    assert ap == pytest.approx(51 / 101)  # precision 1 at recall 0..0.5: 51 of the 101 points


def test_duplicate_counts_as_false_positive_and_threshold_matters() -> None:
    r = result([(0, 0.9, [0, 0, 10, 10]), (0, 0.8, [0, 0, 10, 10]), (0, 0.7, [0, 0, 10, 14])],
               [(0, [0, 0, 10, 10])])
    assert class_ap([r], 0, 0.5)[1] == pytest.approx(1 / 3)
    shifted = result([(0, 0.9, [0, 0, 10, 14])], [(0, [0, 0, 10, 10])])  # IoU 100/140 = 0.71
    assert class_ap([shifted], 0, 0.5)[0] == pytest.approx(1.0)
    assert class_ap([shifted], 0, 0.75)[0] == pytest.approx(0.0)


def test_wrong_class_does_not_match_and_absent_class_is_none() -> None:
    r = result([(1, 0.9, [0, 0, 10, 10])], [(0, [0, 0, 10, 10])])
    assert class_ap([r], 0, 0.5)[0] == 0.0
    assert class_ap([r], 1, 0.5) is None


def test_average_precision_envelope() -> None:
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_rotated_iou_is_exact() -> None:
    a = RotatedBox("x", 50, 50, 20, 10, 0)
    b = RotatedBox("x", 50, 50, 20, 10, 90)  # a cross: overlap 10 x 10
    ious = iou_matrix([object_geometry(a, True)], [object_geometry(b, True), object_geometry(a, True)], True)
    assert ious[0, 0] == pytest.approx(100 / 300, abs=1e-3) and ious[0, 1] == pytest.approx(1.0, abs=1e-4)


def test_predictions_become_annotations() -> None:
    boxes = DetectionPrediction(boxes=np.array([[1, 2, 5, 6]], np.float32), classes=np.array([1]),
                                scores=np.array([0.7], np.float32), labels=["b"], categories=["a", "b"])
    assert to_annotations(boxes, pseudo=True) == [Box("b", 1, 2, 5, 6, True, pytest.approx(0.7))]
    rotated = DetectionPrediction(boxes=np.zeros((1, 4), np.float32), classes=np.array([0]),
                                  scores=np.array([0.9], np.float32), labels=["a"], categories=["a", "b"],
                                  rotated=np.array([[10, 10, 8, 4, 200]], np.float32))
    found = to_annotations(rotated)[0]
    assert isinstance(found, RotatedBox) and found.angle == pytest.approx(20) and not found.pseudo
