"""KITTI object labels: one text file per image, one object per line, 15 space-separated fields.

Fields: ``type truncated occluded alpha left top right bottom height width length x y z rotation_y``,
optionally a 16th ``score`` (detection results). Only the 2D box (fields 5-8) and the type are used;
the 3D fields are ignored. Box values are taken as pixel-edge coordinates, unchanged. ``DontCare``
lines mark regions with unlabelled objects and are skipped. The image of ``<stem>.txt`` is ``<stem>``
with any image suffix in the image folder. (The manual also mentions KITTI tracklet XML files; the
per-image label text files here are the format KITTI's object benchmark and most tools use.)
Clipping, duplicates and missing images follow :mod:`astrocyte_lab.formats.common`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrocyte_lab.data.annotations import Annotation, AnnotationError, Box, ParsedDatabase
from astrocyte_lab.formats.common import (
    DatabaseBuilder,
    DatabaseConfigError,
    ImageFinder,
    PathLike,
    config_flag,
    config_path,
    files_with_suffix,
    format_number,
    number,
    read_lines,
    require_folder,
)

IGNORED_TYPE = "DontCare"


@dataclass
class KittiDatabase:
    """A folder of KITTI ``<stem>.txt`` label files and the folder of their images."""

    labels: Path
    images: Path
    skip_missing_images: bool = False

    def __post_init__(self) -> None:
        self.labels = config_path(self.labels, "labels")
        self.images = config_path(self.images, "images")
        config_flag(self.skip_missing_images, "skip_missing_images")

    def read(self) -> ParsedDatabase:
        folder = require_folder(self.labels, "label")
        finder = ImageFinder(require_folder(self.images, "image"))
        builder = DatabaseBuilder(skip_missing_images=self.skip_missing_images)
        for label_file in files_with_suffix(folder, ".txt"):
            image, expected = finder.by_stem(label_file.stem)
            entry = builder.image(image, expected, label_file)
            if entry is None:
                continue
            for line, text in enumerate(read_lines(label_file), start=1):
                fields = text.split()
                if not fields or fields[0] == IGNORED_TYPE:
                    continue
                if len(fields) not in (15, 16):
                    raise AnnotationError(label_file, f"{len(fields)} fields; KITTI lines have 15 (type, truncated, "
                                                      "occluded, alpha, 2D box, 3D size, 3D position, rotation_y) "
                                                      "or 16 (with a score)", line)
                x1, y1, x2, y2 = (number(v, label_file, line, role)
                                  for v, role in zip(fields[4:8], ("left", "top", "right", "bottom"), strict=True))
                score = number(fields[15], label_file, line, "score") if len(fields) == 16 else None
                builder.add(entry, Box(fields[0], x1, y1, x2, y2, score=score), label_file, line)
        return builder.result()

    def to_dict(self) -> dict[str, Any]:
        return {"format": "kitti", "labels": str(self.labels), "images": str(self.images),
                "skip_missing_images": self.skip_missing_images}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KittiDatabase:
        return cls(data["labels"], data["images"], data.get("skip_missing_images", False))


def kitti_line(annotation: Annotation) -> str:
    """One KITTI label line: the 2D box (enclosing box for rotated boxes and polygons), 3D fields unknown.

    Unknown values use KITTI's own markers: dimensions -1, location -1000, angles -10; ``truncated`` and
    ``occluded`` are 0. A score is written as the 16th field.
    """
    if not annotation.category or any(c.isspace() for c in annotation.category):
        raise DatabaseConfigError(f"KITTI types cannot be empty or contain spaces: {annotation.category!r}")
    x1, y1, x2, y2 = annotation.bounds()
    fields = [annotation.category, "0.00", "0", "-10", *(format_number(v, 2) for v in (x1, y1, x2, y2)),
              "-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"]
    if annotation.score is not None:
        fields.append(format_number(annotation.score, 4))
    return " ".join(fields)


def write_kitti(path: PathLike, objects: Iterable[Annotation]) -> Path:
    """Write one KITTI label file (see :func:`kitti_line`); coordinates keep two decimals, as KITTI does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(kitti_line(a) + "\n" for a in objects), encoding="utf-8")
    return path
