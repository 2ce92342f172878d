"""Annotation databases: readers and writers for Pascal VOC, MS COCO, KITTI, YOLO and configurable text files.

Every reader is a small dataclass with ``read() -> ParsedDatabase`` (the neutral model of
:mod:`astrocyte_lab.data.annotations`) and ``to_dict()``; :func:`database_from_dict` rebuilds one from a
saved recipe. All formats share one policy for bad input (see :mod:`astrocyte_lab.formats.common`).
"""

from astrocyte_lab.formats.coco import CocoDatabase, coco_document, write_coco
from astrocyte_lab.formats.common import DatabaseConfigError, UnsafeImagePathWarning
from astrocyte_lab.formats.kitti import KittiDatabase, write_kitti
from astrocyte_lab.formats.registry import DATABASE_FORMATS, Database, database_from_dict
from astrocyte_lab.formats.text import TextDatabase, TextFormat, preview, write_text
from astrocyte_lab.formats.voc import VocDatabase, write_voc, write_voc_folder
from astrocyte_lab.formats.yolo import YoloDatabase, read_class_names, write_yolo

__all__ = [
    "DATABASE_FORMATS",
    "CocoDatabase",
    "Database",
    "DatabaseConfigError",
    "KittiDatabase",
    "TextDatabase",
    "TextFormat",
    "UnsafeImagePathWarning",
    "VocDatabase",
    "YoloDatabase",
    "coco_document",
    "database_from_dict",
    "preview",
    "read_class_names",
    "write_coco",
    "write_kitti",
    "write_text",
    "write_voc",
    "write_voc_folder",
    "write_yolo",
]
