"""Pascal VOC databases: one XML file per image, ``<object>`` elements holding boxes.

Coordinates. VOC ``<bndbox>`` values are 1-based and inclusive (a box over pixel columns 0..9 is
``xmin=1, xmax=10``); our boxes are 0-based pixel edges with ``x2`` exclusive, so reading maps
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` and writing does the inverse, which makes a
round trip exact. ``<robndbox>`` (roLabelImg oriented boxes: ``cx cy w h angle``, angle in radians of the
``w`` side, y down) and ``<polygon>`` vertices are continuous coordinates already and are taken as they
are. An object with a ``<robndbox>`` becomes a RotatedBox (its companion ``<bndbox>`` is ignored); one
with a ``<polygon>`` becomes a Polygon; otherwise its ``<bndbox>`` becomes a Box.

Ignored on purpose: ``<part>`` elements (boxes of object parts inside the object box, as the manual says),
``<difficult>``, ``<truncated>``, ``<pose>``. The image is ``<filename>`` inside the image folder; when that
is missing or not found, the XML file's stem with any image suffix. An absolute ``<filename>`` (or one
climbing out with ``..``) is never followed: its base name is looked for in the image folder, with a
warning (see :mod:`astrocyte_lab.formats.common`). ``<size>`` is checked against the image file, whose
own size wins. Clipping, duplicates and missing images follow
:mod:`astrocyte_lab.formats.common`. Each XML file is one labelled image, even with no ``<object>``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrocyte_lab.data.annotations import (
    Annotation,
    AnnotationError,
    Box,
    ImageAnnotations,
    ParsedDatabase,
    Polygon,
    RotatedBox,
    normalise_angle,
)
from astrocyte_lab.formats.common import (
    DatabaseBuilder,
    ImageFinder,
    PathLike,
    as_path,
    config_flag,
    config_path,
    files_with_suffix,
    format_number,
    image_size,
    number,
    path_text,
    require_folder,
)
from astrocyte_lab.formats.xmltree import XmlNode, parse_xml


@dataclass
class VocDatabase:
    """A folder of VOC ``.xml`` files and the folder of the images they describe.

    ``masks``: optional folder of pixel-value mask images matched by image stem (segmentation databases).
    """

    annotations: Path
    images: Path
    masks: Path | None = None
    skip_missing_images: bool = False

    def __post_init__(self) -> None:
        self.annotations = config_path(self.annotations, "annotations")
        self.images = config_path(self.images, "images")
        self.masks = as_path(self.masks, "masks")
        config_flag(self.skip_missing_images, "skip_missing_images")

    def read(self) -> ParsedDatabase:
        folder = require_folder(self.annotations, "annotation")
        builder = DatabaseBuilder(skip_missing_images=self.skip_missing_images, masks=self.masks)
        finder = ImageFinder(require_folder(self.images, "image"), warn=builder.warn)
        for xml_file in files_with_suffix(folder, ".xml"):
            _read_file(xml_file, finder, builder)
        return builder.result()

    def to_dict(self) -> dict[str, Any]:
        return {"format": "voc", "annotations": str(self.annotations), "images": str(self.images),
                "masks": path_text(self.masks), "skip_missing_images": self.skip_missing_images}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocDatabase:
        return cls(data["annotations"], data["images"], data.get("masks"), data.get("skip_missing_images", False))


def _read_file(path: Path, finder: ImageFinder, builder: DatabaseBuilder) -> None:
    root = parse_xml(path)
    if root.tag != "annotation":
        raise AnnotationError(path, f"not a Pascal VOC file: root element <{root.tag}>, <annotation> expected",
                              root.line)
    named = root.find("filename")
    image, expected = (finder.by_path(named.text, source=path, line=named.line) if named is not None and named.text
                       else (None, None))
    if image is None:  # no <filename>, or it names a file that is not there: try the XML file's stem
        image, by_stem = finder.by_stem(path.stem)
        expected = expected or by_stem
    entry = builder.image(image, expected, path, root.line, _stated_size(root, path))
    if entry is None:
        return
    for node in root.find_all("object"):
        builder.add(entry, _object(node, path), path, node.line)


def _stated_size(root: XmlNode, path: Path) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None or not size.child_text("width") or not size.child_text("height"):
        return None
    return int(_value(size, "width", path)), int(_value(size, "height", path))


def _object(node: XmlNode, path: Path) -> Annotation:
    name = node.child_text("name")
    if not name:
        raise AnnotationError(path, "<object> without a <name>", node.line)
    rotated = node.find("robndbox")
    if rotated is not None:
        cx, cy, w, h, angle = (_value(rotated, tag, path) for tag in ("cx", "cy", "w", "h", "angle"))
        return RotatedBox(name, cx, cy, w, h, normalise_angle(math.degrees(angle)))
    polygon = node.find("polygon")
    if polygon is not None:
        return Polygon(name, _polygon_points(polygon, path))
    box = node.find("bndbox")
    if box is not None:
        xmin, ymin, xmax, ymax = (_value(box, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        return Box(name, xmin - 1, ymin - 1, xmax, ymax)
    raise AnnotationError(path, f"<object> {name!r} has no <bndbox>, <robndbox> or <polygon>", node.line)


def _value(parent: XmlNode, tag: str, path: Path) -> float:
    child = parent.find(tag)
    if child is None:
        raise AnnotationError(path, f"<{parent.tag}> has no <{tag}>", parent.line)
    return number(child.text, path, child.line, f"<{parent.tag}><{tag}>")


def _polygon_points(polygon: XmlNode, path: Path) -> tuple[tuple[float, float], ...]:
    """Vertices written either as ``<pt><x/><y/></pt>`` children or as ``<x1/><y1/><x2/><y2/>...``."""
    points = polygon.find_all("pt")
    if points:
        return tuple((_value(pt, "x", path), _value(pt, "y", path)) for pt in points)
    indices = sorted({int(child.tag[1:]) for child in polygon.children if re.fullmatch(r"[xy][0-9]{1,9}", child.tag)})
    return tuple((_value(polygon, f"x{i}", path), _value(polygon, f"y{i}", path)) for i in indices)


def write_voc(path: PathLike, filename: str, size: tuple[int, int, int], objects: Iterable[Annotation],
              folder: str = "") -> Path:
    """Write one VOC XML file for image ``filename`` of ``size`` = (width, height, depth).

    Boxes become ``<bndbox>`` (1-based inclusive, see the module docstring). Rotated boxes become a
    ``<robndbox>`` (angle in radians) plus the integer ``<bndbox>`` enclosing it within the image, so
    readers without oriented-box support still see a box; polygons likewise get an enclosing ``<bndbox>``
    and a ``<polygon>`` of ``x1 y1 x2 y2 ...`` children. Scores and the pseudo-label flag are not written.
    """
    path = Path(path)
    width, height, depth = size
    root = ET.Element("annotation")
    _sub(root, "folder", folder)
    _sub(root, "filename", filename)
    size_node = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        _sub(size_node, tag, str(int(value)))
    _sub(root, "segmented", "0")
    for annotation in objects:
        node = ET.SubElement(root, "object")
        if isinstance(annotation, RotatedBox):
            _sub(node, "type", "robndbox")
        _sub(node, "name", annotation.category)
        _sub(node, "pose", "Unspecified")
        _sub(node, "truncated", "0")
        _sub(node, "difficult", "0")
        if isinstance(annotation, Box):
            _bndbox(node, annotation.x1 + 1, annotation.y1 + 1, annotation.x2, annotation.y2)
            continue
        if isinstance(annotation, RotatedBox):
            rotated = ET.SubElement(node, "robndbox")
            values = (annotation.cx, annotation.cy, annotation.width, annotation.height)
            for tag, value in zip(("cx", "cy", "w", "h"), values, strict=True):
                _sub(rotated, tag, format_number(value))
            _sub(rotated, "angle", format_number(math.radians(annotation.angle), 9))
        x1, y1, x2, y2 = annotation.bounds()
        _bndbox(node, max(1, math.floor(x1) + 1), max(1, math.floor(y1) + 1),
                min(width, math.ceil(x2)), min(height, math.ceil(y2)))
        if isinstance(annotation, Polygon):
            polygon = ET.SubElement(node, "polygon")
            for index, (x, y) in enumerate(annotation.points, start=1):
                _sub(polygon, f"x{index}", format_number(x))
                _sub(polygon, f"y{index}", format_number(y))
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_voc_folder(folder: PathLike, images: Sequence[ImageAnnotations], depth: int = 3) -> list[Path]:
    """Write ``<stem>.xml`` for each image into ``folder`` (sizes from the entries, else the image files)."""
    folder = Path(folder)
    written = []
    for entry in images:
        width, height = entry.size if entry.size else image_size(entry.image)
        written.append(write_voc(folder / f"{Path(entry.image).stem}.xml", Path(entry.image).name,
                                 (width, height, depth), entry.objects))
    return written



def _bndbox(node: ET.Element, xmin: float, ymin: float, xmax: float, ymax: float) -> None:
    box = ET.SubElement(node, "bndbox")
    for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
        _sub(box, tag, format_number(value))


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text
    return child
