"""The table of database formats, and rebuilding a database from the dict a dataset recipe saved."""

from __future__ import annotations

from typing import Any

from astrocyte_lab.formats.coco import CocoDatabase
from astrocyte_lab.formats.common import DatabaseConfigError
from astrocyte_lab.formats.kitti import KittiDatabase
from astrocyte_lab.formats.text import TextDatabase
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
    name = data.get("format")
    if name not in DATABASE_FORMATS:
        raise DatabaseConfigError(f"unknown database format {name!r}; known formats: {', '.join(DATABASE_FORMATS)}")
    options = {key: value for key, value in data.items() if key != "format"}
    try:
        return DATABASE_FORMATS[name].from_dict(options)
    except KeyError as exc:
        raise DatabaseConfigError(f"{name} database description lacks {exc.args[0]!r}") from None
