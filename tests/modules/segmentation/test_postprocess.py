"""IoU rules (-1 absent, 0 missed), pixel accuracy, blob measures."""

from __future__ import annotations

import numpy as np

from astrocyte_lab.modules.segmentation import postprocess as pp


def test_iou_rules() -> None:
    truth = np.zeros((10, 10), np.int64)
    truth[2:4, 2:6] = 1  # 8 px of class 1; class 2 absent everywhere; class 3 in truth only
    truth[8:10, 8:10] = 3
    predicted = np.zeros_like(truth)
    predicted[2:4, 2:4] = 1  # half of class 1 found
    matrix = pp.confusion(truth, predicted, 4)
    ious = pp.iou_per_class(matrix)
    assert ious[1] == 0.5 and ious[2] == -1.0 and ious[3] == 0.0
    assert abs(ious[0] - 88 / 96) < 1e-9  # 88 background pixels, 96 predicted background
    assert pp.mean_iou(ious) == np.mean([ious[0], 0.5, 0.0])
    assert pp.pixel_accuracy(matrix) == 0.92


def test_valid_pixels_only() -> None:
    truth = np.ones((4, 4), np.int64)
    predicted = np.zeros((4, 4), np.int64)
    valid = np.zeros((4, 4), bool)
    assert pp.confusion(truth, predicted, 2, valid).sum() == 0


def test_blobs_measure_regions() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[5:7, 5:35] = 1  # a long thin scratch
    mask[20:30, 20:30] = 2  # a square spot
    found = {b.category: b for b in pp.blobs(mask, ["background", "scratch", "spot"])}
    assert found["scratch"].area == 60 and found["scratch"].elongation > 10
    assert found["spot"].area == 100 and abs(found["spot"].elongation - 1.0) < 0.2
    assert found["spot"].bbox == (20, 20, 10, 10)


def test_overlay_and_palette() -> None:
    colours = pp.palette(3)
    assert colours.shape == (3, 3) and (colours[0] == 0).all()
    image = np.full((8, 8), 100, np.uint8)
    predicted = np.zeros((8, 8), np.uint8)
    predicted[2:4, 2:4] = 1
    rgb = pp.colour_overlay(image, predicted, predicted, colours)
    assert rgb.shape == (8, 8, 3) and not np.array_equal(rgb[3, 3], rgb[7, 7])
