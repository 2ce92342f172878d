"""Derive annotations from rendered geometry, so labels always agree with the pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np

from astrocyte_lab.samples.writers import Box


def box_from_mask(name: str, mask: np.ndarray, rotated: bool = False) -> Box | None:
    """Tight boxes of the non-zero pixels of ``mask`` (``None`` if it is empty).

    Axis-aligned: ``cv2.boundingRect`` with exclusive X2/Y2. Oriented (``rotated=True``):
    ``cv2.minAreaRect`` over pixel centres, grown by one pixel so it covers whole pixels, shifted by
    +0.5 to pixel-edge coordinates and converted to the roLabelImg convention (long side = w, angle of
    the w side in radians, [0, pi)). The angle is read from the box corners rather than from
    minAreaRect's own angle, whose convention changed between OpenCV versions.
    """
    pts = cv2.findNonZero((mask > 0).astype(np.uint8))
    if pts is None:
        return None
    x, y, w, h = cv2.boundingRect(pts)
    rot = None
    if rotated:
        rect = cv2.minAreaRect(pts)
        c = cv2.boxPoints(rect).astype(np.float64)
        e1, e2 = c[1] - c[0], c[2] - c[1]
        l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
        if l1 >= l2:
            ang, rw, rh = math.atan2(e1[1], e1[0]), l1, l2
        else:
            ang, rw, rh = math.atan2(e2[1], e2[0]), l2, l1
        ang = round(ang % math.pi, 4)
        if ang >= math.pi:  # rounding can land on pi; the same box has angle 0
            ang = 0.0
        cx, cy = rect[0]
        rot = (round(cx + 0.5, 4), round(cy + 0.5, 4), round(rw + 1.0, 4), round(rh + 1.0, 4), ang)
    return Box(name, int(x), int(y), int(x + w), int(y + h), rot)
