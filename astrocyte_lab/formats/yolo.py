"""YOLO label databases: one text file per image, one object per line, coordinates as image fractions.

Each line's kind is told by its number of values:

* 5: ``class cx cy width height`` (detection) -> Box;
* 9: ``class x1 y1 x2 y2 x3 y3 x4 y4`` (oriented boxes, corners in order) -> RotatedBox, whose width
  side is the first edge. Four corners that are not a rectangle (off by more than
  :func:`rectangle_tolerance`) are not trusted to three of their corners: the box becomes the smallest
  rectangle enclosing all four (as Ultralytics reads such lines), with a warning naming file and line;
* any other odd number from 7 up: ``class x1 y1 ... xn yn`` (segmentation outline) -> Polygon.

``class`` is a 0-based index into the class names, read from a names file: one name a line
(``classes.txt``, ``obj.names``), or a ``data.yaml`` whose ``names:`` is a list or an index mapping.
Fractions become pixels through the image size read from the image header, so every labelled image must
be readable. ``classes.txt`` inside the label folder (where labelImg puts it) is not a label file.
Images without a label file are not part of the database. Clipping, duplicates and missing images follow
:mod:`astrocyte_lab.formats.common`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astrocyte_lab.data.annotations import (
    Annotation,
    AnnotationError,
    Box,
    ImageAnnotations,
    ParsedDatabase,
    Polygon,
    RotatedBox,
    rotated_from_corners,
)
from astrocyte_lab.formats.common import (
    DatabaseBuilder,
    DatabaseConfigError,
    ImageFinder,
    PathLike,
    config_flag,
    config_path,
    files_with_suffix,
    format_number,
    image_size,
    number,
    read_lines,
    read_names,
    require_file,
    require_folder,
    whole_number,
)

DECIMALS = 6
"""Decimals written for fractions: 1e-6 of a 10,000-pixel side is 0.01 pixel."""


@dataclass
class YoloDatabase:
    """A folder of YOLO ``<stem>.txt`` files, the folder of their images, and the class-names file."""

    labels: Path
    images: Path
    names: Path
    skip_missing_images: bool = False

    def __post_init__(self) -> None:
        self.labels = config_path(self.labels, "labels")
        self.images = config_path(self.images, "images")
        self.names = config_path(self.names, "names")
        config_flag(self.skip_missing_images, "skip_missing_images")

    def read(self) -> ParsedDatabase:
        folder = require_folder(self.labels, "label")
        finder = ImageFinder(require_folder(self.images, "image"))
        names = read_class_names(require_file(self.names, "class names file"))
        builder = DatabaseBuilder(skip_missing_images=self.skip_missing_images, categories=names)
        for label_file in files_with_suffix(folder, ".txt", exclude=(self.names, folder / "classes.txt")):
            image, expected = finder.by_stem(label_file.stem)
            entry = builder.image(image, expected, label_file)
            if entry is None:
                continue
            if entry.size is None:
                raise AnnotationError(label_file, f"cannot read the size of {entry.image}; YOLO coordinates "
                                                  "are fractions of it")
            for line, text in enumerate(read_lines(label_file), start=1):
                fields = text.split()
                if fields:
                    annotation = _object(fields, names, entry.size, label_file, line, builder)
                    builder.add(entry, annotation, label_file, line)
        return builder.result()

    def to_dict(self) -> dict[str, Any]:
        return {"format": "yolo", "labels": str(self.labels), "images": str(self.images), "names": str(self.names),
                "skip_missing_images": self.skip_missing_images}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YoloDatabase:
        return cls(data["labels"], data["images"], data["names"], data.get("skip_missing_images", False))


def _object(fields: list[str], names: list[str], size: tuple[int, int], path: Path, line: int,
            builder: DatabaseBuilder) -> Annotation:
    count = len(fields)
    if count != 5 and (count < 7 or count % 2 == 0):
        raise AnnotationError(path, f"{count} values; expected 5 (class cx cy width height), 9 (class and 4 "
                                    "corners x y) or another odd number (class and polygon points x y)", line)
    index = whole_number(fields[0], path, line, "class")
    if not 0 <= index < len(names):
        raise AnnotationError(path, f"unknown class index {index} (the names file lists {len(names)} classes, "
                                    f"0 to {len(names) - 1})", line)
    name = names[index]
    width, height = size
    if count == 5:
        cx, cy, w, h = (number(v, path, line, role) for v, role in zip(fields[1:], ("cx", "cy", "width", "height"),
                                                                        strict=True))
        return Box(name, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
    roles = [f"{axis}{i}" for i in range(1, (count - 1) // 2 + 1) for axis in "xy"]
    values = [number(v, path, line, role) for v, role in zip(fields[1:], roles, strict=True)]
    points = np.array(values, dtype=np.float64).reshape(-1, 2) * (width, height)
    if count == 9:
        return _oriented_box(name, points, path, line, builder)
    return Polygon(name, tuple((float(x), float(y)) for x, y in points))


def _oriented_box(name: str, points: np.ndarray, path: Path, line: int, builder: DatabaseBuilder) -> RotatedBox:
    """The rotated box of four corners in order; the smallest enclosing rectangle, with a warning, for others."""
    if not np.isfinite(points).all():
        raise AnnotationError(path, f"oriented box for {name!r} has a corner too far away to compute", line)
    if np.linalg.norm(points[1] - points[0]) == 0 or np.linalg.norm(points[2] - points[1]) == 0:
        raise AnnotationError(path, f"oriented box for {name!r} has a zero-length side", line)
    off = rectangle_error(points)
    if off <= rectangle_tolerance(points):
        return rotated_from_corners(name, points)
    builder.warn(path, line, f"oriented box for {name!r}: the 4 corners are not a rectangle (off by "
                             f"{format_number(off, 2)} px); using the smallest rectangle enclosing them")
    return rotated_from_corners(name, enclosing_rectangle(points))


def rectangle_error(points: np.ndarray) -> float:
    """How far (pixels) 4 corners in order are from a rectangle: the diagonals must bisect each other
    (a parallelogram) and have the same length (a rectangle)."""
    p0, p1, p2, p3 = np.asarray(points, dtype=np.float64).reshape(4, 2)
    centres = float(np.linalg.norm((p0 + p2) - (p1 + p3))) / 2
    diagonals = abs(float(np.linalg.norm(p2 - p0)) - float(np.linalg.norm(p3 - p1))) / 2
    return max(centres, diagonals)


def rectangle_tolerance(points: np.ndarray) -> float:
    """1 pixel (integer-rounded corners), or 1% of the longer diagonal for large boxes."""
    p0, p1, p2, p3 = np.asarray(points, dtype=np.float64).reshape(4, 2)
    return max(1.0, 0.01 * max(float(np.linalg.norm(p2 - p0)), float(np.linalg.norm(p3 - p1))))


def enclosing_rectangle(points: np.ndarray) -> np.ndarray:
    """Corners of the smallest-area rectangle enclosing ``points``, its first edge closest to the first edge given.

    One side of that rectangle lies along an edge of the convex hull, so trying the direction through
    every pair of points is enough for four points.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    best: tuple[float, np.ndarray] | None = None
    for i, j in itertools.combinations(range(len(pts)), 2):
        direction = pts[j] - pts[i]
        length = math.hypot(*direction)
        if length == 0:
            continue
        u = direction / length
        v = np.array([-u[1], u[0]])
        a, b = pts @ u, pts @ v
        area = float(np.ptp(a) * np.ptp(b))
        corners = np.array([a.min() * u + b.min() * v, a.max() * u + b.min() * v,
                            a.max() * u + b.max() * v, a.min() * u + b.max() * v])
        if best is None or area < best[0]:
            best = (area, corners)
    assert best is not None  # the caller refused coincident corners
    corners = best[1]
    first = pts[1] - pts[0]

    def alignment(k: int) -> float:  # how parallel the rectangle's edge k is to the first edge given
        edge = corners[k + 1] - corners[k]
        return abs(float(np.dot(edge, first))) / max(float(np.linalg.norm(edge)), 1e-12)

    return corners if alignment(0) >= alignment(1) else np.roll(corners, -1, axis=0)


def read_class_names(path: Path) -> list[str]:
    """Class names from a ``.yaml``/``.yml`` file's ``names:`` entry, or from a one-name-a-line file."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml_names(path)
    return read_names(path)


def yaml_names(path: Path) -> list[str]:
    """The ``names:`` of a YOLO ``data.yaml``: ``[a, b]``, ``{0: a, 1: b}``, or a block list or mapping.

    Only this one key is read, by a small parser, so no YAML library is needed.
    """
    lines = [_strip_comment(text) for text in read_lines(path)]
    start = next((i for i, text in enumerate(lines) if re.match(r"names\s*:", text)), None)
    if start is None:
        raise AnnotationError(path, "no 'names:' entry")
    rest = lines[start].split(":", 1)[1].strip()
    if rest.startswith(("[", "{")):
        closing = "]" if rest[0] == "[" else "}"
        text, end = rest, start
        while closing not in text and end + 1 < len(lines):
            end += 1
            text += " " + lines[end].strip()
        if closing not in text:
            raise AnnotationError(path, f"'names:' list is not closed with {closing!r}", start + 1)
        items = [item.strip() for item in text[1:text.index(closing)].split(",") if item.strip()]
        if rest[0] == "[":
            return _check_names([_unquote(item) for item in items], path, start + 1)
        pairs = [item.split(":", 1) for item in items]
        return _indexed(pairs, path, start + 1)
    block: list[str] = []
    for text in lines[start + 1:]:
        if not text.strip():
            continue
        if not text[0].isspace() and not text.startswith("-"):
            break
        block.append(text.strip())
    if block and all(item.startswith("-") for item in block):
        return _check_names([_unquote(item[1:].strip()) for item in block], path, start + 1)
    return _indexed([item.split(":", 1) for item in block], path, start + 1)


def _indexed(pairs: list[list[str]], path: Path, line: int) -> list[str]:
    try:
        mapping = {int(key.strip()): _unquote(value.strip()) for key, value in pairs}
    except ValueError:
        raise AnnotationError(path, "'names:' must be a list or a mapping from class index to name", line) from None
    if sorted(mapping) != list(range(len(mapping))):
        raise AnnotationError(path, f"'names:' indices must be 0 to {len(mapping) - 1} without gaps", line)
    return _check_names([mapping[i] for i in range(len(mapping))], path, line)


def _check_names(names: list[str], path: Path, line: int) -> list[str]:
    if not names or any(not name for name in names):
        raise AnnotationError(path, "'names:' is empty or has an empty name", line)
    if len(set(names)) != len(names):
        raise AnnotationError(path, "'names:' lists a name twice", line)
    return names


def _strip_comment(text: str) -> str:
    return re.split(r"\s#", text, maxsplit=1)[0].rstrip() if not text.lstrip().startswith("#") else ""


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def yolo_line(annotation: Annotation, class_index: int, width: int, height: int) -> str:
    """One YOLO line for an object in a ``width x height`` image (5, 9 or 2n+1 values by kind)."""
    if isinstance(annotation, Box):
        values = [(annotation.x1 + annotation.x2) / 2 / width, (annotation.y1 + annotation.y2) / 2 / height,
                  (annotation.x2 - annotation.x1) / width, (annotation.y2 - annotation.y1) / height]
    else:
        values = (annotation.corners() / (width, height)).reshape(-1).tolist()
    return " ".join([str(class_index), *(format_number(v, DECIMALS) for v in values)])


def write_yolo(labels_dir: PathLike, images: Sequence[ImageAnnotations], categories: Sequence[str],
               names_file: PathLike | None = None) -> Path:
    """Write ``<stem>.txt`` per image into ``labels_dir`` and the class names, one a line, to ``names_file``.

    ``names_file`` defaults to ``classes.txt`` in the label folder (the labelImg layout). Rotated boxes are
    written as oriented-box corner lines, polygons as segmentation lines. Returns the names file.
    """
    labels_dir = Path(labels_dir)
    names = list(categories)
    bad = [name for name in names if not name.strip() or "\n" in name]
    if bad:
        raise DatabaseConfigError(f"class names cannot be empty or hold line breaks: {bad!r}")
    labels_dir.mkdir(parents=True, exist_ok=True)
    for entry in images:
        width, height = entry.size if entry.size else image_size(Path(entry.image))
        lines = []
        for annotation in entry.objects:
            if annotation.category not in names:
                raise DatabaseConfigError(f"{entry.image}: category {annotation.category!r} is not in the class list")
            lines.append(yolo_line(annotation, names.index(annotation.category), width, height))
        (labels_dir / f"{Path(entry.image).stem}.txt").write_text("".join(f"{t}\n" for t in lines), encoding="utf-8")
    names_path = Path(names_file) if names_file is not None else labels_dir / "classes.txt"
    names_path.parent.mkdir(parents=True, exist_ok=True)
    names_path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return names_path


