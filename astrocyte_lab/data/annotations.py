"""Object annotations as plain values: boxes, rotated boxes and polygons, in dataset pixel coordinates.

Coordinates are pixel-edge based: a box covering pixel columns 10..19 has ``x1 = 10, x2 = 20``.
Rotated boxes use degrees in [0, 180): the ``width`` side points along ``(cos a, sin a)`` with y down,
so a positive angle turns clockwise on screen (Pascal VOC ``robndbox`` stores the same angle in radians).
Every object is ground truth unless ``pseudo`` (a label proposed by a model and kept by the user/filter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from astrocyte_lab.errors import AstrocyteError


class AnnotationError(AstrocyteError):
    """A problem in an annotation file; the message names the file and, where known, the line."""

    def __init__(self, file: str | Path, message: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.reason = str(file), line, message


@dataclass(frozen=True)
class Box:
    """Axis-aligned box ``[x1, x2) x [y1, y2)``."""

    category: str
    x1: float
    y1: float
    x2: float
    y2: float
    pseudo: bool = False
    score: float | None = None

    def bounds(self) -> tuple[float, float, float, float]:
        return self.x1, self.y1, self.x2, self.y2

    def corners(self) -> np.ndarray:
        return np.array([[self.x1, self.y1], [self.x2, self.y1], [self.x2, self.y2], [self.x1, self.y2]])


@dataclass(frozen=True)
class RotatedBox:
    """Oriented box: centre, side lengths, and the angle (degrees, [0, 180)) of the ``width`` side."""

    category: str
    cx: float
    cy: float
    width: float
    height: float
    angle: float
    pseudo: bool = False
    score: float | None = None

    def corners(self) -> np.ndarray:
        """The four corners, in order around the box."""
        a = math.radians(self.angle)
        ux, uy = math.cos(a) * self.width / 2, math.sin(a) * self.width / 2
        vx, vy = -math.sin(a) * self.height / 2, math.cos(a) * self.height / 2
        c = np.array([self.cx, self.cy])
        return np.array([c - (ux, uy) - (vx, vy), c + (ux, uy) - (vx, vy), c + (ux, uy) + (vx, vy),
                         c - (ux, uy) + (vx, vy)])

    def bounds(self) -> tuple[float, float, float, float]:
        pts = self.corners()
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


@dataclass(frozen=True)
class Polygon:
    """Closed polygon (vertices in order, the last joins the first); segmentation regions."""

    category: str
    points: tuple[tuple[float, float], ...]
    pseudo: bool = False
    score: float | None = None

    def corners(self) -> np.ndarray:
        return np.asarray(self.points, dtype=np.float64).reshape(-1, 2)

    def bounds(self) -> tuple[float, float, float, float]:
        pts = self.corners()
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


Annotation = Box | RotatedBox | Polygon


def normalise_angle(angle: float) -> float:
    """Map any angle in degrees onto [0, 180) (a rotated box looks the same turned by 180)."""
    value = math.fmod(angle, 180.0)
    return value + 180.0 if value < 0 else (0.0 if value >= 180.0 else value)


def rotated_from_corners(category: str, corners: np.ndarray, pseudo: bool = False,
                         score: float | None = None) -> RotatedBox:
    """The rotated box through four corners given in order (first edge = the width side)."""
    pts = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    width = float(np.linalg.norm(pts[1] - pts[0]))
    height = float(np.linalg.norm(pts[2] - pts[1]))
    angle = math.degrees(math.atan2(pts[1, 1] - pts[0, 1], pts[1, 0] - pts[0, 0]))
    cx, cy = pts.mean(axis=0)
    return RotatedBox(category, float(cx), float(cy), width, height, normalise_angle(angle), pseudo, score)


def transform(annotation: Annotation, scale_x: float, scale_y: float, offset_x: float = 0.0,
              offset_y: float = 0.0) -> Annotation:
    """Map an annotation through ``x' = x * scale_x + offset_x`` (and y), as image resizing does."""
    if isinstance(annotation, Box):
        return replace(annotation, x1=annotation.x1 * scale_x + offset_x, y1=annotation.y1 * scale_y + offset_y,
                       x2=annotation.x2 * scale_x + offset_x, y2=annotation.y2 * scale_y + offset_y)
    if isinstance(annotation, Polygon):
        return replace(annotation, points=tuple((x * scale_x + offset_x, y * scale_y + offset_y)
                                                for x, y in annotation.points))
    corners = annotation.corners() * (scale_x, scale_y) + (offset_x, offset_y)
    if math.isclose(scale_x, scale_y, rel_tol=1e-6):
        return rotated_from_corners(annotation.category, corners, annotation.pseudo, annotation.score)
    # unequal scaling turns the rectangle into a parallelogram: keep the tightest rotated box around it
    import cv2

    (cx, cy), (w, h), _ = cv2.minAreaRect(corners.astype(np.float32))
    box_pts = cv2.boxPoints(((cx, cy), (w, h), _))
    return rotated_from_corners(annotation.category, box_pts, annotation.pseudo, annotation.score)


def clip(annotation: Annotation, width: int, height: int) -> Annotation | None:
    """Clip an axis-aligned box or polygon to the image; None when nothing is left inside.

    Rotated boxes are returned unchanged when their centre lies inside (their corners may stick out:
    clipping would change their shape; database readers warn about them as they do about clipped boxes),
    and None otherwise.
    """
    if isinstance(annotation, Box):
        x1, y1 = max(0.0, annotation.x1), max(0.0, annotation.y1)
        x2, y2 = min(float(width), annotation.x2), min(float(height), annotation.y2)
        return replace(annotation, x1=x1, y1=y1, x2=x2, y2=y2) if x2 > x1 and y2 > y1 else None
    if isinstance(annotation, Polygon):
        pts = annotation.corners()
        pts[:, 0] = pts[:, 0].clip(0, width)
        pts[:, 1] = pts[:, 1].clip(0, height)
        if np.ptp(pts[:, 0]) <= 0 or np.ptp(pts[:, 1]) <= 0:
            return None
        return replace(annotation, points=tuple(map(tuple, pts.tolist())))
    inside = 0 <= annotation.cx <= width and 0 <= annotation.cy <= height
    return annotation if inside else None


@dataclass
class ImageAnnotations:
    """Everything a database says about one image file."""

    image: Path
    objects: list[Annotation] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # whole-image labels (text databases without boxes)
    mask: Path | None = None  # pixel-value mask file (segmentation databases)
    size: tuple[int, int] | None = None  # (width, height) when the file states it


@dataclass
class ParsedDatabase:
    """The result of reading an annotation database: images, their objects, category names, warnings."""

    images: list[ImageAnnotations]
    categories: list[str]
    warnings: list[str] = field(default_factory=list)
