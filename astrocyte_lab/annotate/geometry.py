"""Geometry behind the annotation editor: shapes from clicks, hit tests, handles, rasterising, IoU.

All coordinates are image pixels in the data layer's pixel-edge convention (pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``, its centre is ``(i + 0.5, j + 0.5)``). Pure numpy / OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from astrocyte_lab.data.annotations import Annotation, Box, Polygon, RotatedBox, rotated_from_corners, transform

Point = tuple[float, float]


@dataclass(frozen=True)
class Shape:
    """A paintable region: ``kind`` is polygon, circle, annulus, rectangle or stroke.

    ``points`` holds the polygon vertices, the rectangle's two corners, the stroke's path or the
    circle's centre; ``radius`` is the circle / stroke radius (the outer one for an annulus).
    """

    kind: str
    points: tuple[Point, ...]
    radius: float = 0.0
    inner: float = 0.0

    def bounds(self) -> tuple[float, float, float, float]:
        pts = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        r = self.radius
        return (float(pts[:, 0].min() - r), float(pts[:, 1].min() - r), float(pts[:, 0].max() + r),
                float(pts[:, 1].max() + r))


def distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


# -- shapes from clicks ----------------------------------------------------------------------------------
def box_from_points(category: str, a: Point, b: Point) -> Box:
    """The axis-aligned box spanned by two opposite corners (any order)."""
    return Box(category, min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))


def rotated_from_three_points(category: str, a: Point, b: Point, c: Point) -> RotatedBox | None:
    """Rotated box whose side ``a -> b`` is one edge and whose extent reaches ``c`` (None when flat).

    ``a`` and ``b`` are two corners of one side (the width side, so the angle is that of ``a -> b``);
    the other side's length is the distance of ``c`` from the line through ``a`` and ``b``, on ``c``'s side.
    """
    pa, pb, pc = (np.asarray(p, dtype=np.float64) for p in (a, b, c))
    side = pb - pa
    length = float(np.linalg.norm(side))
    if length < 1e-9:
        return None
    normal = np.array([-side[1], side[0]]) / length
    extent = float(np.dot(pc - pa, normal))
    if abs(extent) < 1e-9:
        return None
    corners = np.array([pa, pb, pb + extent * normal, pa + extent * normal])
    return rotated_from_corners(category, corners)


# -- hit tests and handles -------------------------------------------------------------------------------
def outline(annotation: Annotation) -> np.ndarray:
    """The closed outline of an annotation as an ``(N, 2)`` float array."""
    return np.asarray(annotation.corners(), dtype=np.float64).reshape(-1, 2)


def area(annotation: Annotation) -> float:
    return float(abs(cv2.contourArea(outline(annotation).astype(np.float32))))


def contains(annotation: Annotation, point: Point, tolerance: float = 0.0) -> bool:
    """True when ``point`` lies inside the annotation or within ``tolerance`` of its outline."""
    contour = outline(annotation).astype(np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), True) >= -tolerance


def hit(objects: list[Annotation], point: Point, tolerance: float = 0.0) -> int | None:
    """Index of the object under ``point``; the smallest one wins so nested objects stay reachable."""
    hits = [i for i, a in enumerate(objects) if contains(a, point, tolerance)]
    return min(hits, key=lambda i: (area(objects[i]), -i)) if hits else None


def handles(annotation: Annotation) -> np.ndarray:
    """Corner handles ``(4, 2)``: the box corners, or the bounding-box corners of a polygon."""
    if isinstance(annotation, Polygon):
        x1, y1, x2, y2 = annotation.bounds()
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    return outline(annotation)


def rotation_handle(box: RotatedBox, offset: float) -> Point:
    """The angle handle: beyond the middle of the side opposite the height direction, ``offset`` out."""
    a = math.radians(box.angle)
    reach = box.height / 2 + offset
    return box.cx + math.sin(a) * reach, box.cy - math.cos(a) * reach


def handle_at(annotation: Annotation, point: Point, tolerance: float) -> int | None:
    """Index (0-3) of the corner handle within ``tolerance`` of ``point``, nearest first."""
    d = np.hypot(*(handles(annotation) - np.asarray(point)).T)
    k = int(np.argmin(d))
    return k if d[k] <= tolerance else None


# -- edits -------------------------------------------------------------------------------------------------
def translate(annotation: Annotation, dx: float, dy: float) -> Annotation:
    return transform(annotation, 1.0, 1.0, dx, dy) if not isinstance(annotation, RotatedBox) else \
        replace(annotation, cx=annotation.cx + dx, cy=annotation.cy + dy)


def resize(annotation: Annotation, handle: int, point: Point) -> Annotation:
    """Move corner ``handle`` to ``point`` keeping the opposite corner fixed (rotated boxes keep their angle)."""
    corners = handles(annotation)
    fixed = corners[(handle + 2) % 4]
    if isinstance(annotation, Box):
        return replace(box_from_points(annotation.category, tuple(fixed), point), pseudo=annotation.pseudo,
                       score=annotation.score)
    if isinstance(annotation, RotatedBox):
        a = math.radians(annotation.angle)
        u, v = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        d = np.asarray(point, dtype=np.float64) - fixed
        du, dv = float(np.dot(d, u)), float(np.dot(d, v))
        centre = fixed + (du * u + dv * v) / 2
        return replace(annotation, cx=float(centre[0]), cy=float(centre[1]), width=abs(du), height=abs(dv))
    moving = corners[handle]
    span = moving - fixed
    sx = (point[0] - fixed[0]) / span[0] if abs(span[0]) > 1e-9 else 1.0
    sy = (point[1] - fixed[1]) / span[1] if abs(span[1]) > 1e-9 else 1.0
    return transform(annotation, sx, sy, fixed[0] - fixed[0] * sx, fixed[1] - fixed[1] * sy)


def rotate_towards(box: RotatedBox, point: Point) -> RotatedBox:
    """Turn ``box`` about its centre so its angle handle points at ``point`` (angle not normalised)."""
    angle = math.degrees(math.atan2(point[0] - box.cx, -(point[1] - box.cy)))
    return replace(box, angle=angle)


def degenerate(annotation: Annotation, minimum: float) -> bool:
    """True when the annotation is thinner than ``minimum`` pixels in either direction (or empty)."""
    if isinstance(annotation, RotatedBox):
        return annotation.width < minimum or annotation.height < minimum
    x1, y1, x2, y2 = annotation.bounds()
    return x2 - x1 < minimum or y2 - y1 < minimum or area(annotation) <= 0


# -- rasterising ---------------------------------------------------------------------------------------------
_SHIFT = 4  # OpenCV sub-pixel bits
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    """Edge coordinates to OpenCV fixed-point pixel-centre coordinates."""
    return np.round((np.asarray(points, dtype=np.float64) - 0.5) * _ONE).astype(np.int32)


def rasterise(shape: Shape, size: tuple[int, int]) -> np.ndarray:
    """Bool ``(h, w)`` array of the pixels whose centres the shape covers; ``size = (w, h)``."""
    width, height = size
    out = np.zeros((height, width), np.uint8)
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    if shape.kind == "polygon":
        if len(pts) >= 3:
            cv2.fillPoly(out, [_fixed(pts)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        return out.astype(bool)
    if shape.kind == "rectangle":
        x1, x2 = sorted((pts[0, 0], pts[-1, 0]))
        y1, y2 = sorted((pts[0, 1], pts[-1, 1]))
        c1, c2 = max(0, int(round(x1))), min(width, int(round(x2)))
        r1, r2 = max(0, int(round(y1))), min(height, int(round(y2)))
        out[r1:r2, c1:c2] = 1
        return out.astype(bool)
    if shape.kind in ("circle", "annulus"):
        return _disc(pts[0], shape.radius, shape.inner if shape.kind == "annulus" else -1.0, size)
    if shape.kind == "stroke":
        thickness = max(1, int(round(2 * shape.radius)))
        fixed = _fixed(pts)
        for p in fixed:
            cv2.circle(out, (int(p[0]), int(p[1])), int(round(shape.radius * _ONE)), 1, -1, cv2.LINE_8, _SHIFT)
        for p, q in zip(fixed[:-1], fixed[1:], strict=True):
            cv2.line(out, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, thickness, cv2.LINE_8, _SHIFT)
        return out.astype(bool)
    raise ValueError(f"unknown shape kind {shape.kind!r}")


def _disc(centre: np.ndarray, outer: float, inner: float, size: tuple[int, int]) -> np.ndarray:
    """Pixels with centres at distance in ``(inner, outer]`` from ``centre`` (inner < 0: a full disc)."""
    width, height = size
    out = np.zeros((height, width), bool)
    x0, x1 = max(0, int(math.floor(centre[0] - outer))), min(width, int(math.ceil(centre[0] + outer)) + 1)
    y0, y1 = max(0, int(math.floor(centre[1] - outer))), min(height, int(math.ceil(centre[1] + outer)) + 1)
    if x0 >= x1 or y0 >= y1:
        return out
    ys, xs = np.mgrid[y0:y1, x0:x1]
    d2 = (xs + 0.5 - centre[0]) ** 2 + (ys + 0.5 - centre[1]) ** 2
    out[y0:y1, x0:x1] = (d2 <= outer * outer) & (d2 > inner * inner if inner >= 0 else True)
    return out


# -- overlap -----------------------------------------------------------------------------------------------
def iou(a: Annotation, b: Annotation) -> float:
    """Intersection over union of two annotations (exact for convex shapes, rasterised otherwise)."""
    if isinstance(a, Box) and isinstance(b, Box):
        w = min(a.x2, b.x2) - max(a.x1, b.x1)
        h = min(a.y2, b.y2) - max(a.y1, b.y1)
        inter = max(0.0, w) * max(0.0, h)
        union = area(a) + area(b) - inter
        return inter / union if union > 0 else 0.0
    pa, pb = outline(a).astype(np.float32), outline(b).astype(np.float32)
    if cv2.isContourConvex(pa) and cv2.isContourConvex(pb):
        inter = float(cv2.intersectConvexConvex(pa, pb)[0])
        union = area(a) + area(b) - inter
        return max(0.0, inter / union) if union > 0 else 0.0
    return _raster_iou(pa, pb)


def _raster_iou(pa: np.ndarray, pb: np.ndarray, cells: int = 512) -> float:
    both = np.vstack([pa, pb])
    lo = both.min(axis=0)
    scale = cells / max(float(np.ptp(both, axis=0).max()), 1e-9)
    size = (cells + 2, cells + 2)
    ma = rasterise(Shape("polygon", tuple(map(tuple, (pa - lo) * scale))), size)
    mb = rasterise(Shape("polygon", tuple(map(tuple, (pb - lo) * scale))), size)
    union = np.count_nonzero(ma | mb)
    return np.count_nonzero(ma & mb) / union if union else 0.0
