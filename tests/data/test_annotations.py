"""Annotation values: geometry helpers, transforms under image correction, clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrocyte_lab.data.annotations import (
    AnnotationError,
    Box,
    Polygon,
    RotatedBox,
    clip,
    normalise_angle,
    rotated_from_corners,
    transform,
)
from astrocyte_lab.data.correction import correct, correction_transform


def test_rotated_box_corners_round_trip() -> None:
    box = RotatedBox("screw", 50.0, 40.0, 30.0, 10.0, 30.0)
    corners = box.corners()
    assert np.allclose(corners.mean(axis=0), (50, 40))
    assert math.isclose(float(np.linalg.norm(corners[1] - corners[0])), 30.0)
    again = rotated_from_corners("screw", corners)
    assert again.category == "screw"
    assert np.allclose((again.cx, again.cy, again.width, again.height, again.angle), (50, 40, 30, 10, 30))


@pytest.mark.parametrize(("angle", "expected"), [(0, 0), (180, 0), (190, 10), (-10, 170), (359.5, 179.5)])
def test_normalise_angle(angle: float, expected: float) -> None:
    assert math.isclose(normalise_angle(angle), expected, abs_tol=1e-9)


def test_transform_scales_and_offsets_every_kind() -> None:
    box = transform(Box("nut", 10, 20, 30, 40), 0.5, 2.0, 1.0, -1.0)
    assert box.bounds() == (6.0, 39.0, 16.0, 79.0)
    poly = transform(Polygon("spot", ((0, 0), (4, 0), (4, 2))), 2.0, 2.0)
    assert poly.points == ((0, 0), (8, 0), (8, 4))
    rotated = transform(RotatedBox("s", 10, 10, 8, 2, 45.0), 0.5, 0.5)
    assert np.allclose((rotated.cx, rotated.cy, rotated.width, rotated.height, rotated.angle), (5, 5, 4, 1, 45))


def test_unequal_scaling_keeps_a_rotated_box_around_the_parallelogram() -> None:
    rotated = transform(RotatedBox("s", 20, 20, 20, 4, 30.0), 2.0, 1.0)
    stretched = RotatedBox("s", 20, 20, 20, 4, 30.0).corners() * (2.0, 1.0)
    x1, y1, x2, y2 = rotated.bounds()
    assert x1 <= stretched[:, 0].min() + 1e-3 and x2 >= stretched[:, 0].max() - 1e-3
    assert y1 <= stretched[:, 1].min() + 1e-3 and y2 >= stretched[:, 1].max() - 1e-3


def test_clip_trims_and_drops() -> None:
    assert clip(Box("a", -5, 2, 10, 30), 20, 20).bounds() == (0, 2, 10, 20)
    assert clip(Box("a", 25, 2, 30, 10), 20, 20) is None
    assert clip(RotatedBox("a", 30, 5, 4, 4, 0), 20, 20) is None
    inside = RotatedBox("a", 19, 5, 10, 4, 0)
    assert clip(inside, 20, 20) == inside  # centre inside: kept whole


@pytest.mark.parametrize("method", ["", "resize", "resize_keep_aspect", "crop"])
def test_correction_transform_follows_the_pixels(method: str) -> None:
    """A marked pixel of the source lands where the transform says, for every correction."""
    source = np.zeros((60, 100), np.uint8)
    source[20:30, 40:50] = 255
    size = (50, 50)
    out = correct(source, size, method or "resize", nearest=True)
    sx, sy, ox, oy = correction_transform((100, 60), size, method)
    ys, xs = np.nonzero(out)
    assert xs.min() == pytest.approx(40 * sx + ox, abs=1) and xs.max() + 1 == pytest.approx(50 * sx + ox, abs=1)
    assert ys.min() == pytest.approx(20 * sy + oy, abs=1) and ys.max() + 1 == pytest.approx(30 * sy + oy, abs=1)


def test_annotation_error_names_file_and_line() -> None:
    error = AnnotationError("labels/a.txt", "too few columns", line=3)
    assert str(error) == "labels/a.txt:3: too few columns"
    assert (error.file, error.line) == ("labels/a.txt", 3)
