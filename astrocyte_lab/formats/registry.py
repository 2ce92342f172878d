"""The table of database formats, and rebuilding a database from the dict a dataset recipe saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.formats.coco import CocoDatabase
from astrocyte_lab.formats.common import DatabaseConfigError, short
from astrocyte_lab.formats.kitti import KittiDatabase
from astrocyte_lab.formats.text import TextDatabase, TextFormat
from astrocyte_lab.formats.voc import VocDatabase
from astrocyte_lab.formats.yolo import YoloDatabase

Database = VocDatabase | CocoDatabase | KittiDatabase | YoloDatabase | TextDatabase

DATABASE_FORMATS: dict[str, type[Database]] = {
    "voc": VocDatabase,
    "coco": CocoDatabase,
    "kitti": KittiDatabase,
    "yolo": YoloDatabase,
    "text": TextDatabase,
}
"""Format name (the ``"format"`` key of ``to_dict()``) -> database class."""


def database_from_dict(data: dict[str, Any]) -> Database:
    """The database a ``to_dict()`` result describes; DatabaseConfigError for an unknown or incomplete one."""
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise DatabaseConfigError(f"a database description is a mapping of options, not {short(data)}")
    name = data.get("format")
    if not isinstance(name, str) or name not in DATABASE_FORMATS:
        raise DatabaseConfigError(f"unknown database format {short(name)}; known formats: "
                                  f"{', '.join(DATABASE_FORMATS)}")
    options = {key: value for key, value in data.items() if key != "format"}
    try:
        return DATABASE_FORMATS[name].from_dict(options)
    except KeyError as exc:
        raise DatabaseConfigError(f"{name} database description lacks {exc.args[0]!r}") from None


def build_database(format: str, annotations: Path, images: Path, masks: Path | None = None,
                   names: Path | None = None, columns: str = "", separator: str = "tab", per_image: bool = True,
                   class_by: str = "name", index_file: Path | None = None, index_base: int = 0,
                   target: str = "box", box_format: str = "xyxy", skip_header: int = 0, pairs: Path | None = None,
                   image_stem_suffix: str = "", skip_missing_images: bool = False):
    """The database reader the options describe."""

    if format == "voc":
        return VocDatabase(annotations, images, masks, skip_missing_images)
    if format == "coco":
        return CocoDatabase(annotations, images, masks, skip_missing_images)
    if format == "kitti":
        return KittiDatabase(annotations, images, skip_missing_images)
    if format == "yolo":
        if names is None:
            raise AstrocyteError("a YOLO database needs --names (the class-names file)")
        return YoloDatabase(annotations, images, names, skip_missing_images)
    if format == "text":
        if not columns:
            raise AstrocyteError("a text database needs --columns, e.g. class,x1,y1,x2,y2")
        config = TextFormat(
            path=annotations, image_folder=images, columns=[c for c in columns.split(",") if c], per_image=per_image,
            separator=separator, class_by=class_by, index_file=index_file, index_base=index_base,  # type: ignore
            target=target, box_format=box_format, skip_header_lines=skip_header, pairs=pairs,  # type: ignore
            image_stem_suffix=image_stem_suffix, masks=masks, skip_missing_images=skip_missing_images)
        config.validate()
        return TextDatabase(config)
    raise AstrocyteError(f"unknown database format {format!r}: choose voc, coco, kitti, yolo or text")
