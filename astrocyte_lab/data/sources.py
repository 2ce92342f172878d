"""Where a dataset's images come from: folder locations with filters, grouped into named sets."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from astrocyte_lab.data.annotations import Annotation, ParsedDatabase
from astrocyte_lab.data.imageio import IMAGE_SUFFIXES
from astrocyte_lab.errors import AstrocyteError, EmptySourceError

NameFilter = Literal["none", "prefix", "suffix", "regex"]


@dataclass
class Location:
    """A folder to search for images, with the filters of the manual's "Add location" dialog.

    ``file_types`` limits the suffixes (empty means every supported type). ``name_filter`` compares
    ``pattern`` with the file name (or with the whole path when ``match_full_path``); ``suffix`` is
    checked against the name without its extension. ``category`` labels every image found here;
    ``use_folder_name`` labels each image with its parent folder's name instead.
    """

    path: str | os.PathLike[str]
    include_subfolders: bool = True
    file_types: tuple[str, ...] = ()
    name_filter: NameFilter = "none"
    pattern: str = ""
    match_full_path: bool = False
    category: str | None = None
    use_folder_name: bool = False

    def __post_init__(self) -> None:
        self.path = str(Path(self.path).expanduser())
        self.file_types = tuple(_normalise_suffix(s) for s in self.file_types)
        unknown = [s for s in self.file_types if s not in IMAGE_SUFFIXES]
        if unknown:
            raise AstrocyteError(f"location {self.path}: unsupported file type(s) {unknown}; "
                                 f"choose from {list(IMAGE_SUFFIXES)}")
        if self.name_filter not in ("none", "prefix", "suffix", "regex"):
            raise AstrocyteError(f"location {self.path}: name_filter must be none, prefix, suffix or regex, "
                                 f"not {self.name_filter!r}")
        if self.name_filter == "regex":
            try:
                self._regex = re.compile(self.pattern)
            except re.error as exc:
                raise AstrocyteError(f"location {self.path}: invalid regular expression "
                                     f"{self.pattern!r}: {exc}") from exc

    def files(self, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
        """Files under this location that pass the filters, sorted for a stable order."""
        root = Path(self.path)
        if not root.is_dir():
            raise EmptySourceError(f"location {root}: folder not found")
        wanted = self.file_types or suffixes
        walker = root.rglob("*") if self.include_subfolders else root.glob("*")
        found = [p for p in walker if p.suffix.lower() in wanted and p.is_file() and self._accepts(p)]
        return sorted(found)

    def _accepts(self, path: Path) -> bool:
        if self.name_filter == "none":
            return True
        subject = str(path) if self.match_full_path else path.name
        if self.name_filter == "prefix":
            return subject.startswith(self.pattern)
        if self.name_filter == "suffix":
            stem = subject[: -len(path.suffix)] if path.suffix else subject
            return stem.endswith(self.pattern) or subject.endswith(self.pattern)
        return self._regex.search(subject) is not None

    def category_for(self, path: Path) -> str | None:
        if self.use_folder_name:
            return path.parent.name
        return self.category

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise_suffix(suffix: str) -> str:
    suffix = suffix.lower().strip()
    return suffix if suffix.startswith(".") else f".{suffix}"


@dataclass
class NamedSet:
    """A group of locations whose images join the dataset, optionally with per-image mask files.

    ``masks`` points at a folder of mask images matched to input images by file stem: pixel values
    are categories for segmentation, and non-zero pixels mark defects for anomaly detection.
    """

    name: str
    locations: list[Location] = field(default_factory=list)
    masks: Location | None = None

    def __post_init__(self) -> None:
        self.locations = [loc if isinstance(loc, Location) else Location(**loc) for loc in self.locations]
        if isinstance(self.masks, dict):
            self.masks = Location(**self.masks)
        if not self.name.strip():
            raise AstrocyteError("a named set needs a name")

    def to_dict(self) -> dict:
        return {"name": self.name, "locations": [loc.to_dict() for loc in self.locations],
                "masks": self.masks.to_dict() if self.masks else None}

    @classmethod
    def from_dict(cls, data: dict) -> NamedSet:
        return cls(name=data["name"], locations=data["locations"], masks=data.get("masks"))


def segmentation_set(name: str, images: str | os.PathLike[str], masks: str | os.PathLike[str],
                     include_subfolders: bool = True) -> NamedSet:
    """The manual's segmentation named set: an input-image folder and a pixel-value mask folder."""
    return NamedSet(name, [Location(images, include_subfolders)], Location(masks, include_subfolders))


class AnnotationDatabase(Protocol):
    """An annotation file format reader (see ``astrocyte_lab.formats``)."""

    def read(self) -> ParsedDatabase: ...

    def to_dict(self) -> dict: ...


@dataclass
class DatabaseSet:
    """Images listed by an annotation database (VOC, COCO, KITTI, YOLO, text) with their objects."""

    name: str
    database: AnnotationDatabase

    def to_dict(self) -> dict:
        return {"name": self.name, "database": self.database.to_dict()}


DatasetSet = NamedSet | DatabaseSet


@dataclass(frozen=True)
class SourceImage:
    """One image file found for a dataset, before decoding, with what its set says about it."""

    path: Path
    set_name: str
    category: str | None
    mask_path: Path | None = None
    objects: tuple[Annotation, ...] = ()
    labelled: bool = False  # a database listed it (even with no object): it is annotated, not unlabelled


def discover(sets: list[DatasetSet]) -> tuple[list[SourceImage], list[tuple[str, str]]]:
    """List the images of ``sets`` once each, with their categories, masks and objects.

    Returns the images and a list of ``(file, reason)`` for files left out (listed twice, no mask) or
    database warnings (clipped boxes, duplicates).
    """
    if not sets:
        raise EmptySourceError("no set given: add at least one named set with a location, or a database set")
    seen: dict[Path, SourceImage] = {}
    skipped: list[tuple[str, str]] = []
    for item in sets:
        found = _database_images(item, skipped) if isinstance(item, DatabaseSet) else _named_images(item, skipped)
        for source in found:
            if source.path in seen:
                first = seen[source.path]
                if source.objects and not first.objects:  # a labelled listing wins over an unlabelled one
                    seen[source.path] = source
                skipped.append((str(source.path), f"listed twice (kept once, set {seen[source.path].set_name!r})"))
                continue
            seen[source.path] = source
    return list(seen.values()), skipped


def _named_images(named: NamedSet, skipped: list[tuple[str, str]]) -> list[SourceImage]:
    if not named.locations:
        raise EmptySourceError(f"set {named.name!r}: no location added")
    masks_by_stem = _masks_by_stem(named) if named.masks else {}
    found = []
    for location in named.locations:
        files = location.files()
        if not files:
            raise EmptySourceError(f"set {named.name!r}: no image found in {location.path} "
                                   f"(filters: types={list(location.file_types) or 'all'}, "
                                   f"{location.name_filter} {location.pattern!r})")
        for path in files:
            mask = masks_by_stem.get(path.stem) if named.masks else None
            if named.masks and mask is None:
                skipped.append((str(path), f"no mask with stem {path.stem!r} in {named.masks.path}"))
                continue
            found.append(SourceImage(path.resolve(), named.name, location.category_for(path), mask))
    return found


def _database_images(item: DatabaseSet, skipped: list[tuple[str, str]]) -> list[SourceImage]:
    parsed = item.database.read()
    if not parsed.images:
        raise EmptySourceError(f"database set {item.name!r}: the database lists no image")
    skipped += [("", f"set {item.name!r}: {warning}") for warning in parsed.warnings]
    found = []
    for entry in parsed.images:
        label = entry.labels[0] if len(entry.labels) == 1 else None
        found.append(SourceImage(Path(entry.image).resolve(), item.name, label,
                                 Path(entry.mask).resolve() if entry.mask else None, tuple(entry.objects), True))
    return found


def _masks_by_stem(named: NamedSet) -> dict[str, Path]:
    assert named.masks is not None
    by_stem: dict[str, Path] = {}
    for path in named.masks.files():
        if path.stem in by_stem:
            raise AstrocyteError(f"set {named.name!r}: two mask files share the stem {path.stem!r}: "
                                 f"{by_stem[path.stem]} and {path}")
        by_stem[path.stem] = path.resolve()
    return by_stem
