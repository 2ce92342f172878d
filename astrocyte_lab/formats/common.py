"""What every database reader shares: number parsing, image look-up, and one set of rules for bad objects.

All readers hand their objects to :class:`DatabaseBuilder`, so the formats agree on how bad input is met:

* a coordinate that is not a number, and an empty or inverted box (``x2 <= x1`` or ``y2 <= y1``), raise
  :class:`AnnotationError` naming the file and line: the annotation is wrong and only the user can fix it;
* an object partly outside its image is clipped to the image, and one entirely outside is dropped; both
  add a warning naming the file and line. Such objects are usually sloppy labelling at the border, so the
  rest of the database stays usable while the user is told exactly which lines changed (overshoots
  below :data:`EDGE_TOLERANCE` pixels, i.e. rounding, are clamped silently);
* an object identical to one already given for the same image is kept once, with a warning;
* an image the database names that is not on disk raises :class:`AnnotationError` naming the annotation
  file and the path it expected, unless ``skip_missing_images``, which leaves that image out with a
  warning instead;
* an image path that is absolute (``/data/a.png``, ``C:\\data\\a.png``) or climbs out with ``..`` is never
  followed: the image is looked for by its base name directly inside the image folder, with a warning
  naming the annotation file and line (in the database's warnings and as a Python
  :class:`UnsafeImagePathWarning`). Every format resolves image (and listed label) paths this way, so
  an annotation file cannot make the import read a file outside the folders the user chose;
* a rotated box sticking out of its image gets the same warning as a box (it is kept whole: clipping would
  change its shape); one whose centre is outside is dropped;
* bad input of any kind (wrong JSON types, numbers too large, malformed lines, files above the size
  limits of :mod:`astrocyte_lab.data.limits`) raises a project error naming the file (and line or field):
  :class:`AnnotationError`, :class:`DatabaseConfigError` for options, or ``LimitError``.

Readers never write anything, so a failed import leaves no partial dataset behind.
"""

from __future__ import annotations

import math
import os
import reprlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PureWindowsPath

import numpy as np

from astrocyte_lab.data.annotations import (
    Annotation,
    AnnotationError,
    Box,
    ImageAnnotations,
    ParsedDatabase,
    Polygon,
    RotatedBox,
    clip,
)
from astrocyte_lab.data.imageio import is_image_file, probe
from astrocyte_lab.data.limits import check_limit
from astrocyte_lab.errors import AstrocyteError, ImageReadError

EDGE_TOLERANCE = 1e-3
"""Pixels an object may stick out of its image before clipping it is worth a warning."""

PathLike = str | os.PathLike[str]


class DatabaseConfigError(AstrocyteError, ValueError):
    """A database description that cannot work (missing folder option, contradictory column roles)."""


class UnsafeImagePathWarning(UserWarning):
    """An annotation file named an image by an absolute path or one leaving its folder; the base name was used."""


Warn = Callable[[PathLike, int | None, str], None]


def as_path(value: PathLike | None, option: str = "path") -> Path | None:
    return None if value is None else config_path(value, option)


def config_path(value: object, option: str) -> Path:
    """``value`` as a Path; DatabaseConfigError naming ``option`` when it is not a path (None, a number...)."""
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise DatabaseConfigError(f"option {option!r} must be a path, not {short(value)}")
    return Path(value).expanduser()


def config_flag(value: object, option: str) -> bool:
    if not isinstance(value, bool):
        raise DatabaseConfigError(f"option {option!r} must be true or false, not {short(value)}")
    return value


def config_int(value: object, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatabaseConfigError(f"option {option!r} must be a whole number, not {short(value)}")
    return value


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxlong = 3, 6, 4, 60, 40


def short(value: object) -> str:
    """A bounded ``repr`` of ``value`` (long strings, numbers and nested lists abridged), for messages."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer too long for Python to print
        return f"a {type(value).__name__} too long to show"


def path_text(value: Path | None) -> str | None:
    return None if value is None else str(value)


def number(text: object, file: PathLike, line: int | None, role: str) -> float:
    """``text`` as a finite float, or an AnnotationError naming the file, line, role and bad value."""
    if isinstance(text, bool):
        raise AnnotationError(file, f"{role}: {text!r} is not a number", line)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnnotationError(file, f"{role}: {short(text)} is not a number", line) from None
    except OverflowError:
        raise AnnotationError(file, f"{role}: {short(text)} is too large", line) from None
    if not math.isfinite(value):
        raise AnnotationError(file, f"{role}: {short(text)} is not a finite number", line)
    return value


def whole_number(text: object, file: PathLike, line: int | None, role: str) -> int:
    value = number(text, file, line, role)
    if not value.is_integer():
        raise AnnotationError(file, f"{role}: {text!r} is not a whole number", line)
    return int(value)


def format_number(value: float, decimals: int = 6) -> str:
    """Shortest text for a coordinate: integers without a point, others with up to ``decimals`` places."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def read_lines(path: Path) -> list[str]:
    """A text file's lines (UTF-8, a byte-order mark tolerated), or an AnnotationError naming the file."""
    try:
        check_limit("annotation_file_bytes", path.stat().st_size, path, "annotation file size (bytes)")
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise AnnotationError(path, f"cannot read file ({exc.strerror or exc})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    info = probe(Path(path))
    return info.width, info.height


def require_folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise AnnotationError(path, f"{what} folder not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AnnotationError(path, f"{what} not found")
    return path


def files_with_suffix(folder: Path, suffix: str, exclude: Iterable[Path | None] = ()) -> list[Path]:
    """Files directly in ``folder`` ending in ``suffix`` (any case), sorted, minus ``exclude``."""
    skip = {p.resolve() for p in exclude if p is not None}
    suffix = suffix.lower()
    return sorted(p for p in folder.iterdir()
                  if p.name.lower().endswith(suffix) and p.is_file() and p.resolve() not in skip)


def read_names(path: Path) -> list[str]:
    """Class names, one a line (blank lines ignored); an AnnotationError when two lines repeat a name."""
    names: list[str] = []
    for number_, raw in enumerate(read_lines(path), start=1):
        name = raw.strip()
        if not name:
            continue
        if name in names:
            raise AnnotationError(path, f"class name {name!r} listed twice", number_)
        names.append(name)
    if not names:
        raise AnnotationError(path, "no class name in the file")
    return names


def inside(folder: Path, relative: PathLike, source: PathLike, line: int | None = None,
           warn: Warn | None = None, what: str = "image") -> Path:
    """``folder/relative``, kept inside ``folder``: an absolute path or one with ``..`` gives ``folder/<base name>``.

    Backslashes count as folder separators, so Windows-written databases work elsewhere too. A path not
    followed is reported through ``warn`` (the builder's warnings) and as an :class:`UnsafeImagePathWarning`.
    """
    text = str(relative)
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    escapes = text.startswith(("/", "\\")) or PureWindowsPath(text).drive != "" or ".." in parts
    if not escapes:
        return folder.joinpath(*parts)
    name = PureWindowsPath(text).name  # the last part after a slash or backslash, without drive
    name = "" if name in ("..", ".") else name
    message = (f"{what} path {short(text)} is absolute or leaves the {what} folder; not followed: "
               f"looking for {name!r} directly in {folder}")
    warnings.warn(f"{source}:{line}: {message}" if line is not None else f"{source}: {message}",
                  UnsafeImagePathWarning, stacklevel=3)
    if warn is not None:
        warn(source, line, message)
    return folder / name


class ImageFinder:
    """Finds image files below a folder by relative path or by stem, listing each folder at most once.

    Databases often name an image by a path whose suffix differs from the file on disk (``.jpg`` for a
    ``.png``) or by stem only; any supported image suffix is accepted then. Paths are kept inside the folder
    (see :func:`inside`); ``warn`` receives the warning about a path that was not followed.
    """

    def __init__(self, folder: Path, warn: Warn | None = None) -> None:
        self.folder = folder
        self.warn = warn
        self._listings: dict[Path, dict[str, Path]] = {}

    def by_path(self, relative: PathLike, stem_suffix: str = "", source: PathLike | None = None,
                line: int | None = None) -> tuple[Path | None, Path]:
        """The image at ``folder/relative`` (``stem_suffix`` appended to its stem), and the path expected.

        ``source`` and ``line`` (the annotation file and line naming the image) go into the warning about
        an absolute or escaping path.
        """
        expected = inside(self.folder, relative, source if source is not None else self.folder, line, self.warn)
        if expected == self.folder:  # nothing left of the path: no image to look for
            return None, expected
        if stem_suffix:
            expected = expected.with_name(expected.stem + stem_suffix + expected.suffix)
        if expected.is_file():
            return expected, expected
        stem = expected.stem if is_image_file(expected) else expected.name
        return self._listing(expected.parent).get(stem), expected

    def by_stem(self, stem: str) -> tuple[Path | None, Path]:
        """The image named ``stem`` plus any image suffix in the folder itself, and the path expected."""
        return self._listing(self.folder).get(stem), self.folder / f"{stem}.*"

    def _listing(self, directory: Path) -> dict[str, Path]:
        if directory not in self._listings:
            found: dict[str, Path] = {}
            if directory.is_dir():
                for path in sorted(directory.iterdir()):
                    if is_image_file(path) and path.stem not in found and path.is_file():
                        found[path.stem] = path
            self._listings[directory] = found
        return self._listings[directory]


class DatabaseBuilder:
    """Collects images, objects and warnings while a reader walks its files, applying the rules above."""

    def __init__(self, *, skip_missing_images: bool = False, masks: Path | None = None,
                 categories: Sequence[str] = ()) -> None:
        self.skip_missing_images = skip_missing_images
        self.warnings: list[str] = []
        self._entries: dict[Path, ImageAnnotations] = {}
        self._seen: dict[Path, set[Annotation | str]] = {}
        self._missing: set[Path] = set()
        self._categories: dict[str, None] = dict.fromkeys(categories)
        self._masks = ImageFinder(require_folder(masks, "mask")) if masks is not None else None

    def warn(self, file: PathLike, line: int | None, message: str) -> None:
        self.warnings.append(f"{file}:{line}: {message}" if line is not None else f"{file}: {message}")

    def image(self, path: Path | None, expected: Path, source: PathLike, line: int | None = None,
              stated_size: tuple[int, int] | None = None) -> ImageAnnotations | None:
        """The entry for an image (made on first use); None when it is missing and missing images are skipped.

        ``expected`` is the path the database implies, for the message when ``path`` is None.
        """
        if path is None:
            return self.missing(expected, "image not found", source, line)
        if path in self._entries:
            return self._entries[path]
        mask = None
        if self._masks is not None:
            mask, wanted = self._masks.by_stem(path.stem)
            if mask is None:
                return self.missing(wanted, f"no mask file for {path.name}", source, line)
        entry = ImageAnnotations(path, mask=mask, size=self._size(path, stated_size, source, line))
        self._entries[path] = entry
        self._seen[path] = set()
        return entry

    def missing(self, expected: Path, what: str, source: PathLike, line: int | None) -> None:
        """Raise AnnotationError for a missing file, or (``skip_missing_images``) warn once and return None."""
        if not self.skip_missing_images:
            raise AnnotationError(source, f"{what}: expected {expected}", line)
        if expected not in self._missing:
            self._missing.add(expected)
            self.warn(source, line, f"{what}: expected {expected}; image skipped")
        return None

    def _size(self, path: Path, stated: tuple[int, int] | None, source: PathLike,
              line: int | None) -> tuple[int, int] | None:
        stated = stated if stated and stated[0] > 0 and stated[1] > 0 else None
        try:
            info = probe(path)
        except (ImageReadError, OSError):
            return stated  # an unreadable image is reported when the dataset is generated
        actual = (info.width, info.height)
        if stated is not None and stated != actual:
            self.warn(source, line, f"states image size {stated[0]}x{stated[1]} but {path.name} is "
                                    f"{actual[0]}x{actual[1]}; using the image's size")
        return actual

    def category(self, name: str) -> str:
        self._categories.setdefault(name, None)
        return name

    def add(self, entry: ImageAnnotations, annotation: Annotation, source: PathLike, line: int | None = None,
            context: str = "") -> None:
        """Check, clip and de-duplicate one object, then attach it to ``entry``."""
        prefix = f"{context}: " if context else ""
        problem = shape_problem(annotation)
        if problem:
            raise AnnotationError(source, prefix + problem, line)
        if entry.size is not None:
            width, height = entry.size
            kept = clip(annotation, width, height)
            if kept is None:
                where = "has its centre outside" if isinstance(annotation, RotatedBox) else "lies entirely outside"
                self.warn(source, line, f"{prefix}{describe(annotation)} {where} the {width}x{height} image "
                                        f"{entry.image.name}; dropped")
                return
            if overshoot(annotation, width, height) > EDGE_TOLERANCE:
                done = ("kept whole (clipping would change its shape)" if isinstance(annotation, RotatedBox)
                        else "clipped to the image")
                self.warn(source, line, f"{prefix}{describe(annotation)} extends outside the {width}x{height} "
                                        f"image {entry.image.name}; {done}")
            annotation = kept
        seen = self._seen[entry.image]
        if annotation in seen:
            self.warn(source, line, f"{prefix}duplicate of an earlier {describe(annotation)} for "
                                    f"{entry.image.name}; kept once")
            return
        seen.add(annotation)
        entry.objects.append(annotation)
        self.category(annotation.category)

    def add_label(self, entry: ImageAnnotations, label: str, source: PathLike, line: int | None = None) -> None:
        """Attach a whole-image label (a label given twice for the same image is kept once, with a warning)."""
        key = f"label:{label}"
        seen = self._seen[entry.image]
        if key in seen:
            self.warn(source, line, f"duplicate label {label!r} for {entry.image.name}; kept once")
            return
        seen.add(key)
        entry.labels.append(label)
        self.category(label)

    def result(self) -> ParsedDatabase:
        return ParsedDatabase(list(self._entries.values()), list(self._categories), self.warnings)


def shape_problem(annotation: Annotation) -> str | None:
    """Why an object has no area (or non-finite numbers), or None when it is a proper shape."""
    if isinstance(annotation, Box):
        values = annotation.bounds()
    elif isinstance(annotation, RotatedBox):
        values = (annotation.cx, annotation.cy, annotation.width, annotation.height, annotation.angle)
    else:
        values = tuple(v for point in annotation.points for v in point)
    if not all(math.isfinite(v) for v in values):
        return f"{describe(annotation)} has a non-finite coordinate"
    if isinstance(annotation, Box):
        if annotation.x2 <= annotation.x1 or annotation.y2 <= annotation.y1:
            return (f"empty or inverted box for {annotation.category!r} (x1={format_number(annotation.x1)}, "
                    f"y1={format_number(annotation.y1)}, x2={format_number(annotation.x2)}, "
                    f"y2={format_number(annotation.y2)}; x2 must exceed x1 and y2 exceed y1)")
    elif isinstance(annotation, RotatedBox):
        if annotation.width <= 0 or annotation.height <= 0:
            return (f"rotated box for {annotation.category!r} has zero or negative size "
                    f"({format_number(annotation.width)} x {format_number(annotation.height)})")
    else:
        if len(annotation.points) < 3:
            return f"polygon for {annotation.category!r} has {len(annotation.points)} point(s); 3 or more needed"
        if polygon_area(annotation.corners()) <= 0:
            return f"polygon for {annotation.category!r} encloses no area"
    return None


def polygon_area(points: np.ndarray) -> float:
    """Area enclosed by a closed polygon (shoelace formula), whatever its winding."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def overshoot(annotation: Annotation, width: int, height: int) -> float:
    """How far (pixels) an object's bounds reach beyond the image; 0 when inside."""
    x1, y1, x2, y2 = annotation.bounds()
    return max(0.0, -x1, -y1, x2 - width, y2 - height)


def describe(annotation: Annotation) -> str:
    kind = {Box: "box", RotatedBox: "rotated box", Polygon: "polygon"}[type(annotation)]
    return f"{kind} {annotation.category!r}"
