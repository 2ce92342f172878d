"""Text-file databases described column by column, as in the manual's "Using Text Files for Annotations".

A :class:`TextFormat` says where the files are and what each column holds:

* ``path``: one global file for all images, or (``per_image``) a folder of one label file per image,
  found by ``label_suffix``; the image of ``<stem>.txt`` is ``<stem><image_stem_suffix>`` with any image
  suffix in ``image_folder``. Instead of pairing by stem, ``pairs`` names a list file whose lines are
  ``image label`` path pairs (images relative to ``image_folder``, labels relative to ``path``), as
  DeepPCB's ``trainval.txt``; ``image_stem_suffix`` then maps a listed ``x.jpg`` to ``x<suffix>.jpg``.
* ``separator``: tab, comma, semicolon, or space (any run of spaces and tabs is one separator).
* ``columns``: one role per column, from :data:`ROLES`; columns past the last role, and ``unassigned``
  ones, are ignored. A global file needs an ``image`` column (a path relative to ``image_folder``).
* ``class_by``: the ``class`` column holds the name, or an ``index`` into ``index_file`` (one name a line;
  the first name has number ``index_base``). With ``class_by="name"`` an index file only fixes the order
  of the categories.
* ``target``: ``image`` for whole-image labels (only class columns), or ``box`` with ``box_format``:
  ``xywh`` (x y width height), ``tblr`` (top bottom left right), ``xyxy`` (x1 y1 x2 y2), ``cxcywh`` (centre
  x, centre y, width, height). An optional ``angle`` column (``angle_unit``) turns each box into a
  RotatedBox: the box as given, turned about its centre.
* ``coordinates_inclusive``: right/bottom (x2, y2) name the last pixel inside the box, so 1 is added to
  them; by default they are exclusive pixel edges (width = x2 - x1). Widths and heights are unaffected.

Several lines may name the same image: each adds an object to it. Clipping, duplicates, missing
images and absolute or ``..`` paths in the image column or a pairs list (looked for by base name inside
the image or label folder, with a warning) follow :mod:`astrocyte_lab.formats.common`; a line with too
few columns, a non-numeric value, an unknown class index or broken CSV quoting is an error naming file
and line, and a field longer than the ``text_field_chars`` limit a LimitError (with a CSV separator,
Python's csv module refuses fields over 131072 characters first). Options of the wrong type (a string
``skip_header_lines``, ``columns=None``) are a DatabaseConfigError naming the option. :func:`preview`
parses the first rows for a form, reporting each row's problem instead of raising.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from astrocyte_lab.data.annotations import (
    Annotation,
    AnnotationError,
    Box,
    ImageAnnotations,
    ParsedDatabase,
    RotatedBox,
    normalise_angle,
)
from astrocyte_lab.data.limits import check_limit
from astrocyte_lab.errors import LimitError
from astrocyte_lab.formats.common import (
    DatabaseBuilder,
    DatabaseConfigError,
    ImageFinder,
    PathLike,
    as_path,
    config_flag,
    config_int,
    config_path,
    files_with_suffix,
    format_number,
    inside,
    number,
    read_lines,
    read_names,
    require_file,
    require_folder,
    short,
    whole_number,
)

Separator = Literal["tab", "space", "comma", "semicolon"]
SEPARATORS: dict[str, str | None] = {"tab": "\t", "space": None, "comma": ",", "semicolon": ";"}
ROLES: tuple[str, ...] = ("image", "class", "x", "y", "width", "height", "top", "bottom", "left", "right",
                          "x1", "y1", "x2", "y2", "cx", "cy", "angle", "unassigned")
BOX_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "xywh": ("x", "y", "width", "height"),
    "tblr": ("top", "bottom", "left", "right"),
    "xyxy": ("x1", "y1", "x2", "y2"),
    "cxcywh": ("cx", "cy", "width", "height"),
}
COORDINATE_ROLES = frozenset(role for roles in BOX_FORMATS.values() for role in roles) | {"angle"}


@dataclass
class TextFormat:
    """How to read a text database (see the module docstring for every option)."""

    path: Path
    image_folder: Path
    columns: list[str]
    per_image: bool = False
    separator: Separator = "tab"
    class_by: Literal["name", "index"] = "name"
    index_file: Path | None = None
    index_base: int = 0
    target: Literal["image", "box"] = "box"
    box_format: Literal["xywh", "tblr", "xyxy", "cxcywh"] = "xyxy"
    angle_unit: Literal["degrees", "radians"] = "degrees"
    skip_header_lines: int = 0
    coordinates_inclusive: bool = False
    label_suffix: str = ".txt"
    pairs: Path | None = None
    image_stem_suffix: str = ""
    masks: Path | None = None
    skip_missing_images: bool = False

    def __post_init__(self) -> None:
        self.path, self.image_folder = config_path(self.path, "path"), config_path(self.image_folder, "image_folder")
        self.index_file, self.pairs = as_path(self.index_file, "index_file"), as_path(self.pairs, "pairs")
        self.masks = as_path(self.masks, "masks")
        self.columns = [role.strip().lower() for role in _roles(self.columns)]
        self.check_types()

    def check_types(self) -> None:
        """Raise DatabaseConfigError naming the first option whose value has the wrong type."""
        for option in ("per_image", "coordinates_inclusive", "skip_missing_images"):
            config_flag(getattr(self, option), option)
        for option in ("index_base", "skip_header_lines"):
            config_int(getattr(self, option), option)
        for option in ("separator", "class_by", "target", "box_format", "angle_unit", "label_suffix",
                       "image_stem_suffix"):
            if not isinstance(getattr(self, option), str):
                raise DatabaseConfigError(f"option {option!r} must be a string, not {short(getattr(self, option))}")
        _roles(self.columns)

    def validate(self) -> None:
        """Raise DatabaseConfigError when the options have the wrong type, contradict each other or miss something."""
        self.check_types()
        choices = {"separator": (self.separator, tuple(SEPARATORS)), "class_by": (self.class_by, ("name", "index")),
                   "target": (self.target, ("image", "box")), "box_format": (self.box_format, tuple(BOX_FORMATS)),
                   "angle_unit": (self.angle_unit, ("degrees", "radians"))}
        for option, (value, allowed) in choices.items():
            if value not in allowed:
                raise DatabaseConfigError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
        unknown = [role for role in self.columns if role not in ROLES]
        if unknown:
            raise DatabaseConfigError(f"unknown column role(s) {unknown}; roles are {', '.join(ROLES)}")
        assigned = [role for role in self.columns if role != "unassigned"]
        twice = sorted({role for role in assigned if assigned.count(role) > 1})
        if twice:
            raise DatabaseConfigError(f"column role(s) {twice} given to more than one column")
        if "class" not in assigned:
            raise DatabaseConfigError("one column must hold the class")
        if self.per_image and "image" in assigned:
            raise DatabaseConfigError("with one file per image the image comes from the file; leave the image "
                                      "column unassigned")
        if not self.per_image and "image" not in assigned:
            raise DatabaseConfigError("a global database needs a column naming the image file")
        if self.pairs is not None and not self.per_image:
            raise DatabaseConfigError("a pairs list applies to one-file-per-image databases")
        if self.class_by == "index" and self.index_file is None:
            raise DatabaseConfigError("class numbers need an index file of class names")
        if self.skip_header_lines < 0:
            raise DatabaseConfigError("skip_header_lines cannot be negative")
        coordinates = [role for role in assigned if role in COORDINATE_ROLES]
        if self.target == "image":
            if coordinates:
                raise DatabaseConfigError(f"whole-image labels take no coordinate columns, found {coordinates}")
            return
        needed = BOX_FORMATS[self.box_format]
        missing = [role for role in needed if role not in assigned]
        if missing:
            raise DatabaseConfigError(f"box format {self.box_format} needs columns {', '.join(needed)}; "
                                      f"missing: {', '.join(missing)}")
        stray = [role for role in coordinates if role not in needed and role != "angle"]
        if stray:
            raise DatabaseConfigError(f"column role(s) {stray} do not belong to box format {self.box_format}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextFormat:
        if not isinstance(data, dict):
            raise DatabaseConfigError(f"a text format is described by a mapping of options, not {short(data)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise DatabaseConfigError(f"unknown text format option(s) {unknown}")
        missing = [name for name in ("path", "image_folder", "columns") if name not in data]
        if missing:
            raise DatabaseConfigError(f"text format lacks option(s) {missing}")
        return cls(**data)


def _roles(columns: object) -> list[str] | tuple[str, ...]:
    """``columns`` when it is a list of strings; DatabaseConfigError otherwise (None, a string, numbers)."""
    if not isinstance(columns, list | tuple) or not all(isinstance(role, str) for role in columns):
        raise DatabaseConfigError(f"option 'columns' must be a list of column roles, not {short(columns)}")
    return columns


@dataclass
class TextDatabase:
    """A text database read according to a :class:`TextFormat`."""

    config: TextFormat

    def __post_init__(self) -> None:
        if isinstance(self.config, dict):
            self.config = TextFormat.from_dict(self.config)
        if not isinstance(self.config, TextFormat):
            raise DatabaseConfigError(f"a text database needs a TextFormat, not {short(self.config)}")

    def read(self) -> ParsedDatabase:
        config = self.config
        config.validate()
        parser = _RowParser(config)
        builder = DatabaseBuilder(skip_missing_images=config.skip_missing_images, masks=config.masks,
                                  categories=parser.names or ())
        finder = ImageFinder(require_folder(config.image_folder, "image"), warn=builder.warn)
        if not config.per_image:
            for line, cells in _rows(require_file(config.path, "annotation file"), config):
                reference, item = parser.parse(cells, config.path, line)
                image, expected = finder.by_path(reference or "", source=config.path, line=line)
                entry = builder.image(image, expected, config.path, line)
                if entry is not None:
                    _attach(builder, entry, item, config.path, line)
            return builder.result()
        for label_file, image, expected, where in _label_files(config, finder, builder):
            entry = builder.image(image, expected, *where)
            if entry is None:
                continue
            for line, cells in _rows(label_file, config):
                _attach(builder, entry, parser.parse(cells, label_file, line)[1], label_file, line)
        return builder.result()

    def to_dict(self) -> dict[str, Any]:
        return {"format": "text", "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextDatabase:
        return cls(TextFormat.from_dict(data["config"]))


def _attach(builder: DatabaseBuilder, entry: ImageAnnotations, item: Annotation | str, file: Path,
            line: int) -> None:
    if isinstance(item, str):
        builder.add_label(entry, item, file, line)
    else:
        builder.add(entry, item, file, line)


def _label_files(config: TextFormat, finder: ImageFinder,
                 builder: DatabaseBuilder) -> Iterator[tuple[Path, Path | None, Path, tuple[Path, int | None]]]:
    """Yield ``(label file, image or None, expected image path, (source, line))`` for per-image databases."""
    folder = require_folder(config.path, "label")
    if config.pairs is None:
        for label_file in files_with_suffix(folder, config.label_suffix, exclude=(config.index_file,)):
            image, expected = finder.by_stem(label_file.stem + config.image_stem_suffix)
            yield label_file, image, expected, (label_file, None)
        return
    pairs = require_file(config.pairs, "pairs list")
    for line, text in enumerate(read_lines(pairs), start=1):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise AnnotationError(pairs, f"{len(parts)} values; each line pairs an image path and a label path",
                                  line)
        label_file = inside(folder, parts[1], pairs, line, builder.warn, what="label")
        if not label_file.is_file():
            builder.missing(label_file, "label file not found", pairs, line)  # raises, or warns and skips
            continue
        image, expected = finder.by_path(parts[0], config.image_stem_suffix, source=pairs, line=line)
        yield label_file, image, expected, (pairs, line)


def _rows(path: Path, config: TextFormat) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, cells)`` for the non-blank lines after the header."""
    for line, text in enumerate(read_lines(path), start=1):
        if line > config.skip_header_lines and text.strip():
            yield line, split_line(text, config.separator, path, line)


def split_line(text: str, separator: str, file: PathLike = "<text>", line: int | None = None) -> list[str]:
    """Cells of one line; ``space`` splits on runs of whitespace, the others honour CSV quoting.

    ``file`` and ``line`` name the line in errors: broken quoting (AnnotationError), a field longer than
    the ``text_field_chars`` limit (LimitError).
    """
    if not isinstance(separator, str) or separator not in SEPARATORS:
        raise DatabaseConfigError(f"separator must be one of {', '.join(SEPARATORS)}, not {short(separator)}")
    delimiter = SEPARATORS[separator]
    if delimiter is None:
        cells = text.split()
    else:
        try:
            cells = [cell.strip() for cell in next(csv.reader([text], delimiter=delimiter, skipinitialspace=True))]
        except csv.Error as exc:
            raise AnnotationError(file, f"unreadable {separator}-separated line ({exc})", line) from None
    longest = max(map(len, cells), default=0)
    check_limit("text_field_chars", longest, f"{file}:{line}" if line is not None else file,
                "longest field (characters)")
    return cells


class _RowParser:
    """Turns the cells of one line into (image reference, object or whole-image label)."""

    def __init__(self, config: TextFormat) -> None:
        self.config = config
        self.column = {role: index for index, role in enumerate(config.columns) if role != "unassigned"}
        self.needed = max(self.column.values(), default=-1) + 1
        self.names = read_names(require_file(config.index_file, "index file")) if config.index_file else None

    def parse(self, cells: list[str], file: Path, line: int) -> tuple[str | None, Annotation | str]:
        config = self.config
        if len(cells) < self.needed:
            raise AnnotationError(file, f"{len(cells)} column(s); the column roles need at least {self.needed}", line)
        image = cells[self.column["image"]] if "image" in self.column else None
        if image is not None and not image:
            raise AnnotationError(file, "empty image column", line)
        name = self._class(cells[self.column["class"]], file, line)
        if config.target == "image":
            return image, name
        value = {role: number(cells[index], file, line, role) for role, index in self.column.items()
                 if role in COORDINATE_ROLES}
        x1, y1, x2, y2 = _corners(config.box_format, value)
        if config.coordinates_inclusive and config.box_format in ("xyxy", "tblr"):
            x2, y2 = x2 + 1, y2 + 1
        if "angle" not in value:
            return image, Box(name, x1, y1, x2, y2)
        angle = math.degrees(value["angle"]) if config.angle_unit == "radians" else value["angle"]
        return image, RotatedBox(name, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, normalise_angle(angle))

    def _class(self, raw: str, file: Path, line: int) -> str:
        if self.config.class_by == "name":
            if not raw:
                raise AnnotationError(file, "empty class name", line)
            return raw
        assert self.names is not None
        number_ = whole_number(raw, file, line, "class")
        index = number_ - self.config.index_base
        if not 0 <= index < len(self.names):
            last = self.config.index_base + len(self.names) - 1
            raise AnnotationError(file, f"unknown class index {number_} (the index file lists {len(self.names)} "
                                        f"classes, numbered {self.config.index_base} to {last})", line)
        return self.names[index]


def _corners(box_format: str, v: dict[str, float]) -> tuple[float, float, float, float]:
    if box_format == "xywh":
        return v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"]
    if box_format == "tblr":
        return v["left"], v["top"], v["right"], v["bottom"]
    if box_format == "xyxy":
        return v["x1"], v["y1"], v["x2"], v["y2"]
    return v["cx"] - v["width"] / 2, v["cy"] - v["height"] / 2, v["cx"] + v["width"] / 2, v["cy"] + v["height"] / 2


def preview(config: TextFormat, rows: int = 10) -> list[dict[str, Any]]:
    """The first ``rows`` non-blank rows of the first file, parsed under the chosen roles, for a form.

    Each row: ``file``, ``line``, ``cells`` (raw strings), ``values`` (role -> raw string, None when the
    row is too short), ``image`` (the image reference of global files), ``object`` (the parsed
    Box/RotatedBox, or the label for whole-image targets) and ``error`` (why the row or the options do not
    parse, else None). Missing images are not checked here. Raises AnnotationError only when there is no
    file to show.
    """
    config.check_types()
    first = _first_file(config)
    problem: str | None = None
    parser: _RowParser | None = None
    try:
        config.validate()
        parser = _RowParser(config)
    except (DatabaseConfigError, AnnotationError) as exc:
        problem = str(exc)
    separator = config.separator if config.separator in SEPARATORS else "space"
    shown: list[dict[str, Any]] = []
    for line, text in enumerate(read_lines(first), start=1):
        if len(shown) >= rows:
            break
        if line <= config.skip_header_lines or not text.strip():
            continue
        try:
            cells = split_line(text, separator, first, line)
        except (AnnotationError, LimitError) as exc:
            shown.append({"file": str(first), "line": line, "cells": [], "values": {}, "image": None,
                          "object": None, "error": str(exc)})
            continue
        row: dict[str, Any] = {
            "file": str(first), "line": line, "cells": cells,
            "values": {role: cells[i] if i < len(cells) else None
                       for i, role in enumerate(config.columns) if role != "unassigned"},
            "image": None, "object": None, "error": problem,
        }
        if parser is not None:
            try:
                row["image"], row["object"] = parser.parse(cells, first, line)
            except AnnotationError as exc:
                row["error"] = exc.reason
        shown.append(row)
    return shown


def _first_file(config: TextFormat) -> Path:
    if not config.per_image:
        return require_file(config.path, "annotation file")
    folder = require_folder(config.path, "label")
    if config.pairs is not None:
        for text in read_lines(require_file(config.pairs, "pairs list")):
            parts = text.split()
            if len(parts) == 2:
                return require_file(inside(folder, parts[1], config.pairs, None, what="label"), "label file")
        raise AnnotationError(config.pairs, "no 'image label' pair in the list")
    found = files_with_suffix(folder, config.label_suffix, exclude=(config.index_file,))
    if not found:
        raise AnnotationError(folder, f"no label file ending in {config.label_suffix}")
    return found[0]


def write_text(path: PathLike, images: Sequence[ImageAnnotations], image_folder: PathLike,
               per_image: bool = True) -> TextFormat:
    """Write tab-separated ``class X1 Y1 X2 Y2`` lines (X2, Y2 exclusive) and return the format to read them.

    ``per_image``: ``path`` is a folder receiving ``<stem>.txt`` per image (images then must sit in
    ``image_folder`` itself); otherwise ``path`` is one file whose first column is the image path relative
    to ``image_folder`` (absolute when outside it). Rotated boxes and polygons are written as their
    enclosing box and whole-image labels are left out: the layout has columns for neither.
    """
    path, folder = Path(path), Path(image_folder)
    text_by_file: dict[Path, list[str]] = {}
    for entry in images:
        image = Path(entry.image)
        lines = []
        for annotation in entry.objects:
            if not annotation.category or any(c in annotation.category for c in "\t\r\n"):
                raise DatabaseConfigError(f"class names cannot be empty or hold tabs or line breaks: "
                                          f"{annotation.category!r}")
            cells = [annotation.category, *(format_number(v) for v in annotation.bounds())]
            if not per_image:
                cells.insert(0, image.relative_to(folder).as_posix() if image.is_relative_to(folder) else str(image))
            lines.append("\t".join(cells))
        target = path / f"{image.stem}.txt" if per_image else path
        text_by_file.setdefault(target, []).extend(lines)
    columns = ["class", "x1", "y1", "x2", "y2"] if per_image else ["image", "class", "x1", "y1", "x2", "y2"]
    (path if per_image else path.parent).mkdir(parents=True, exist_ok=True)
    if not per_image:
        text_by_file.setdefault(path, [])
    for target, lines in text_by_file.items():
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return TextFormat(path=path, image_folder=folder, columns=columns, per_image=per_image, separator="tab")

