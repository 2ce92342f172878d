"""MS COCO instances databases: one JSON file listing images, categories and object annotations.

Only instances files are read (as the manual says); captions, person-keypoints and panoptic files are
refused with a message saying so. Each annotation becomes:

* one Polygon per part of a polygon ``segmentation`` (a list of ``[x1, y1, x2, y2, ...]`` lists);
* for an RLE ``segmentation`` (``counts`` as a list, or the compact string, decoded by
  :mod:`astrocyte_lab.formats.rle`), one Polygon per region outline found by ``cv2.findContours``,
  through the centres of the boundary pixels; a mask too small for any outline falls back to its bbox;
* a Box from ``bbox = [x, y, width, height]`` (pixel edges, no offset) when there is no segmentation,
  or always when ``use_segmentation`` is False.

Crowd annotations (``iscrowd: 1``) mark a region holding many objects at once, not one object; they are
left out with a warning unless ``include_crowd``. JSON gives no line per annotation, so messages name the
file and the annotation id (or the list index). Images listed without annotations are labelled images
with no object. Clipping, duplicates, missing images and absolute or ``..`` image paths in ``file_name``
(looked for by base name inside the image folder, with a warning) follow
:mod:`astrocyte_lab.formats.common`.

The file is read by :func:`astrocyte_lab.data.jsonfile.read_json` (size and nesting bounded, ``NaN`` and
``Infinity`` refused), and every value is type-checked before use: ids are integers or strings, numbers
are finite. An RLE mask must have its image's size (``size = [height, width]``) and stay within the
``image_pixels`` limit; both are checked before the mask is decoded.
"""

from __future__ import annotations

import json
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
)
from astrocyte_lab.data.jsonfile import JsonFileError, read_json
from astrocyte_lab.formats import rle
from astrocyte_lab.formats.common import (
    DatabaseBuilder,
    ImageFinder,
    PathLike,
    as_path,
    config_flag,
    config_path,
    image_size,
    number,
    path_text,
    polygon_area,
    require_file,
    require_folder,
    short,
)

Id = int | str


@dataclass
class CocoDatabase:
    """A COCO instances JSON file and the folder its ``file_name`` entries are relative to.

    ``masks``: optional folder of pixel-value mask images matched by image stem (segmentation databases).
    """

    annotation_file: Path
    images: Path
    masks: Path | None = None
    skip_missing_images: bool = False
    use_segmentation: bool = True
    include_crowd: bool = False

    def __post_init__(self) -> None:
        self.annotation_file = config_path(self.annotation_file, "annotation_file")
        self.images = config_path(self.images, "images")
        self.masks = as_path(self.masks, "masks")
        for option in ("skip_missing_images", "use_segmentation", "include_crowd"):
            config_flag(getattr(self, option), option)

    def read(self) -> ParsedDatabase:
        path = require_file(self.annotation_file, "COCO annotation file")
        document = _load(path)
        categories = _categories(document, path)
        builder = DatabaseBuilder(skip_missing_images=self.skip_missing_images, masks=self.masks,
                                  categories=list(dict.fromkeys(categories.values())))
        finder = ImageFinder(require_folder(self.images, "image"), warn=builder.warn)
        entries: dict[Id, ImageAnnotations | None] = {}
        for index, info in enumerate(_list(document, "images", path)):
            where = f"images[{index}]"
            if not isinstance(info, dict) or "id" not in info or not info.get("file_name"):
                raise AnnotationError(path, f"{where} needs an 'id' and a 'file_name'")
            file_name = info["file_name"]
            if not isinstance(file_name, str):
                raise AnnotationError(path, f"{where}: 'file_name' must be a string, not {short(file_name)}")
            image, expected = finder.by_path(file_name, source=path)
            entries[_id(info["id"], path, f"{where} id")] = builder.image(
                image, expected, path, stated_size=_stated_size(info, path, where))
        crowds = 0
        for index, item in enumerate(_list(document, "annotations", path)):
            if not isinstance(item, dict):
                raise AnnotationError(path, f"annotations[{index}] is not an object")
            ref = f"annotation {_reference(item.get('id'), index)}"
            image_id = _id(item.get("image_id"), path, f"{ref} image_id")
            category_id = _id(item.get("category_id"), path, f"{ref} category_id")
            if image_id not in entries:
                raise AnnotationError(path, f"{ref}: image_id {image_id!r} is not in 'images'")
            if category_id not in categories:
                raise AnnotationError(path, f"{ref}: unknown category_id {category_id!r}")
            if item.get("iscrowd") and not self.include_crowd:
                crowds += 1
                continue
            entry = entries[image_id]
            if entry is None:  # its image is missing and skipped
                continue
            name = categories[category_id]
            for annotation in self._objects(item, name, path, ref, builder, entry.size):
                builder.add(entry, annotation, path, context=ref)
        if crowds:
            builder.warn(path, None, f"{crowds} crowd annotation(s) (iscrowd=1) left out: each marks a region "
                                     "of many objects, not one object")
        return builder.result()

    def _objects(self, item: dict, name: str, path: Path, ref: str, builder: DatabaseBuilder,
                 size: tuple[int, int] | None) -> list[Annotation]:
        segmentation = item.get("segmentation")
        if self.use_segmentation and isinstance(segmentation, list) and segmentation:
            return [Polygon(name, _polygon_points(part, path, f"{ref} segmentation[{i}]"))
                    for i, part in enumerate(segmentation)]
        if self.use_segmentation and isinstance(segmentation, dict):
            mask = _rle_mask(segmentation, size, path, ref)
            polygons = [Polygon(name, tuple(points)) for points in rle.mask_polygons(mask)]
            if polygons:
                return polygons
            builder.warn(path, None, f"{ref}: RLE mask too small for an outline; its bbox is used")
        return [_box(item, name, path, ref)]

    def to_dict(self) -> dict[str, Any]:
        return {"format": "coco", "annotation_file": str(self.annotation_file), "images": str(self.images),
                "masks": path_text(self.masks), "skip_missing_images": self.skip_missing_images,
                "use_segmentation": self.use_segmentation, "include_crowd": self.include_crowd}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CocoDatabase:
        return cls(data["annotation_file"], data["images"], data.get("masks"),
                   data.get("skip_missing_images", False), data.get("use_segmentation", True),
                   data.get("include_crowd", False))


def _load(path: Path) -> dict:
    """The document, read with the JSON limits; a syntax error becomes an AnnotationError with its line."""
    try:
        document = read_json(path)
    except JsonFileError as exc:
        cause = exc.__context__  # read_json raises from None: the parser's own error is kept as the context
        if isinstance(cause, json.JSONDecodeError):
            raise AnnotationError(path, f"malformed JSON: {cause.msg} (column {cause.colno})", cause.lineno) from None
        raise AnnotationError(path, str(exc).removeprefix(f"{path}: ")) from None
    if not isinstance(document, dict):
        raise AnnotationError(path, "not a COCO file: the top level is not a JSON object")
    kind = _unsupported_kind(document)
    if kind:
        raise AnnotationError(path, f"only MS COCO instances files are supported; this looks like {kind}")
    return document


def _unsupported_kind(document: dict) -> str | None:
    annotations = document.get("annotations")
    first = annotations[0] if isinstance(annotations, list) and annotations else {}
    first = first if isinstance(first, dict) else {}
    categories = document.get("categories")
    if "caption" in first:
        return "a captions file (annotations hold 'caption' text)"
    if "keypoints" in first or (isinstance(categories, list) and any(
            isinstance(c, dict) and "keypoints" in c for c in categories)):
        return "a person-keypoints file (annotations hold 'keypoints')"
    if "segments_info" in first:
        return "a panoptic segmentation file (annotations hold 'segments_info')"
    if "categories" not in document:
        return "a file without 'categories' (instances files list their categories)"
    return None


def _list(document: dict, key: str, path: Path) -> list:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise AnnotationError(path, f"'{key}' is not a list")
    return value


def _categories(document: dict, path: Path) -> dict[Id, str]:
    found: dict[Id, str] = {}
    for index, item in enumerate(_list(document, "categories", path)):
        name = item.get("name", "") if isinstance(item, dict) else ""
        if not isinstance(item, dict) or "id" not in item or not isinstance(name, str | int) or not str(name).strip():
            raise AnnotationError(path, f"categories[{index}] needs an 'id' and a 'name' (a string)")
        found[_id(item["id"], path, f"categories[{index}] id")] = str(name).strip()
    return found


def _id(value: Any, path: Path, role: str) -> Id:
    """An id as written (an integer or a string); anything else (a list, a float, true) is an error."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AnnotationError(path, f"{role}: {short(value)} is not an integer or string id")
    return value


def _reference(value: Any, index: int) -> str:
    """How messages name an annotation: its id when it has a usable one, else its index in the list."""
    usable = isinstance(value, int | str) and not isinstance(value, bool) and len(str(value)) <= 40
    return str(value) if usable else f"#{index}"


def _stated_size(info: dict, path: Path, where: str) -> tuple[int, int] | None:
    """``(width, height)`` as the image entry states it; None when either is absent."""
    if info.get("width") is None or info.get("height") is None:
        return None
    width = number(info["width"], path, None, f"{where} width")
    height = number(info["height"], path, None, f"{where} height")
    return int(width), int(height)


def _rle_mask(segmentation: dict, size: tuple[int, int] | None, path: Path, ref: str) -> np.ndarray:
    """Decode an RLE segmentation after checking its ``size`` against the image's (and the pixel limit)."""
    declared = segmentation.get("size")
    if size is not None and isinstance(declared, list) and len(declared) == 2 and declared != [size[1], size[0]]:
        raise AnnotationError(path, f"{ref}: RLE size {short(declared)} (height, width) is not the image's "
                                    f"size [{size[1]}, {size[0]}]")
    try:
        return rle.decode(segmentation, f"{path}: {ref} RLE segmentation")
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(path, f"{ref}: unreadable RLE segmentation ({exc})") from None


def _box(item: dict, name: str, path: Path, ref: str) -> Box:
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise AnnotationError(path, f"{ref}: 'bbox' must be [x, y, width, height], not {bbox!r}")
    x, y, w, h = (number(v, path, None, f"{ref} bbox {role}")
                  for v, role in zip(bbox, ("x", "y", "width", "height"), strict=True))
    return Box(name, x, y, x + w, y + h)


def _polygon_points(part: Any, path: Path, ref: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(part, list) or len(part) % 2:
        raise AnnotationError(path, f"{ref}: a polygon must be an even-length list [x1, y1, x2, y2, ...]")
    values = [number(v, path, None, f"{ref} coordinate") for v in part]
    return tuple(zip(values[0::2], values[1::2], strict=True))


def coco_document(images: Sequence[ImageAnnotations], categories: Sequence[str],
                  image_root: PathLike | None = None) -> dict[str, Any]:
    """A COCO instances document for ``images``; categories get ids 1, 2, ... in the order given.

    ``file_name`` is the image path relative to ``image_root`` (the file name alone without it). Boxes
    have an empty ``segmentation``; polygons are written as polygon segmentations. COCO has no rotated
    box, so a rotated box is written as its 4-corner polygon with the enclosing bbox, and reads back as a
    Polygon. Whole-image labels, scores and pseudo flags have no place in the format and are left out.
    Object categories missing from ``categories`` are appended.
    """
    names = list(dict.fromkeys(categories))
    for entry in images:
        names += [a.category for a in entry.objects if a.category not in names]
        names = list(dict.fromkeys(names))
    ids = {name: index for index, name in enumerate(names, start=1)}
    root = Path(image_root) if image_root is not None else None
    image_items, annotation_items = [], []
    for image_id, entry in enumerate(images, start=1):
        image = Path(entry.image)
        width, height = entry.size if entry.size else image_size(image)
        file_name = image.relative_to(root).as_posix() if root and image.is_relative_to(root) else image.name
        image_items.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for annotation in entry.objects:
            x1, y1, x2, y2 = annotation.bounds()
            item: dict[str, Any] = {"id": len(annotation_items) + 1, "image_id": image_id,
                                    "category_id": ids[annotation.category], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                    "iscrowd": 0}
            if isinstance(annotation, Box):
                item["segmentation"], item["area"] = [], (x2 - x1) * (y2 - y1)
            else:
                corners = annotation.corners()
                item["segmentation"] = [[float(v) for v in corners.reshape(-1)]]
                item["area"] = (annotation.width * annotation.height if isinstance(annotation, RotatedBox)
                                else polygon_area(corners))
            annotation_items.append(item)
    return {"info": {"description": "exported by astrocyte-lab"}, "licenses": [], "images": image_items,
            "annotations": annotation_items,
            "categories": [{"id": ids[name], "name": name, "supercategory": ""} for name in names]}


def write_coco(path: PathLike, images: Sequence[ImageAnnotations], categories: Sequence[str],
               image_root: PathLike | None = None) -> Path:
    """Write :func:`coco_document` to ``path`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_document(images, categories, image_root)), encoding="utf-8")
    return path

