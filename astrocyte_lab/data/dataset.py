"""A dataset in the workspace: its per-image table, categories, masks and ROI, edited then saved.

Every edit changes an in-memory copy; :meth:`Dataset.save` makes it the new on-disk version in one
atomic step and :meth:`Dataset.reload` throws it away. Pixels are never rewritten by an edit.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from astrocyte_lab.data import categories as cats
from astrocyte_lab.data.annotations import Annotation, Box, Polygon, RotatedBox, clip, transform
from astrocyte_lab.data.generate import (
    Generated,
    GenerationOptions,
    GenerationReport,
    ImageGeometry,
    ProgressCallback,
    generate,
)
from astrocyte_lab.data.jsonfile import load_json
from astrocyte_lab.data.objects import (
    PREDICTED,
    mask_from_polygons,
    objects_from_table,
    polygons_from_mask,
    with_objects,
)
from astrocyte_lab.data.sources import DatasetSet, SourceImage, discover
from astrocyte_lab.data.store import DamagedDatasetError, DatasetStore, storage_error
from astrocyte_lab.errors import AstrocyteError, ConcurrentEditError, LimitError

SPLITS: tuple[str, ...] = ("auto", "train", "validation")
DEFAULT_TRAIN_RATIO = 0.8
Selector = int | str | Iterable[int | str] | np.ndarray


@dataclass(frozen=True)
class DatasetInfo:
    """One row of the workspace's dataset list."""

    name: str
    module: str
    width: int
    height: int
    channels: int
    images: int
    categories: tuple[str, ...]
    updated: str
    description: str

    @property
    def dimensions(self) -> str:
        return f"{self.width} x {self.height} x {self.channels}"


#: Table attributes every saved version has (``create`` has written all of them since the first release), with the
#: type each must parse to; list and dict ones are stored as JSON text.
REQUIRED_ATTRIBUTES: dict[str, type] = {"module": str, "width": int, "height": int, "channels": int,
                                        "next_image_id": int, "categories": list, "mask_lut": dict, "recipe": dict}
_LUT_VALUE = re.compile(r"[0-9]{1,9}")


def _check_attributes(table: xr.Dataset) -> None:
    """Raise ValueError when a required attribute is missing or of the wrong type (JSON ones are parsed, bounded
    and strict, so a crafted table cannot recurse or exhaust memory here)."""
    parsed = {key: _attribute(table, key, kind) for key, kind in REQUIRED_ATTRIBUTES.items()}
    if not all(isinstance(c, str) for c in parsed["categories"]):
        raise ValueError("attribute 'categories' must be a list of names")
    if not all(_LUT_VALUE.fullmatch(k) and isinstance(v, int) and not isinstance(v, bool)
               for k, v in parsed["mask_lut"].items()):
        raise ValueError("attribute 'mask_lut' must map mask values (digits) to category numbers")
    if not isinstance(parsed["recipe"].get("sets"), list):
        raise ValueError("attribute 'recipe' must hold a list of 'sets'")


def _attribute(table: xr.Dataset, key: str, kind: type) -> object:
    """The attribute ``key``, parsed from JSON for list and dict kinds; ValueError unless it is a ``kind``."""
    if key not in table.attrs:
        raise ValueError(f"attribute {key!r} is missing")
    value = table.attrs[key]
    if kind in (list, dict):  # readers json.loads these: anything but JSON text would fail there
        if not isinstance(value, str):
            raise ValueError(f"attribute {key!r} is {type(value).__name__}, expected JSON text")
        value = load_json(value, f"attribute {key!r}")  # JsonFileError is a ValueError
    elif kind is int and isinstance(value, np.integer):
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"attribute {key!r} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class Dataset:
    """Images of one module kind with their labels; open it with ``Workspace.dataset(name)``."""

    def __init__(self, store: DatasetStore) -> None:
        self._store = store
        self._table: xr.Dataset
        self._pending_masks: dict[int, np.ndarray] = {}
        self._pending_predicted_masks: dict[int, np.ndarray] = {}
        self._objects: dict[int, list[Annotation]] = {}
        self._predicted: dict[int, list[Annotation]] = {}
        self._version: str | None = None  # the saved version this session's edits start from
        self._dirty = False
        self.last_report: GenerationReport | None = None
        self._batches: dict[tuple[str, str], object] = {}
        self.reload()

    # -- creation ------------------------------------------------------------------------------
    @classmethod
    def create(cls, store: DatasetStore, module: str, sets: Sequence[DatasetSet], description: str = "",
               options: GenerationOptions | None = None, train_ratio: float = DEFAULT_TRAIN_RATIO,
               seed: int | None = None, on_progress: ProgressCallback | None = None) -> Dataset:
        """Generate a new dataset from ``sets`` into ``store`` and save it as its first version."""
        cats.check_module(module)
        _check_ratio(train_ratio)
        options = options or GenerationOptions()
        sources, skipped = discover(list(sets))
        categories = cats.categories_from_sources(module, _labels(sources), [])
        if module == "segmentation" and any(s.objects for s in sources) and "background" not in categories:
            categories.insert(0, "background")  # polygons are painted onto a background category
        generated = generate(store, sources, options, binary_masks=module != "segmentation",
                             on_progress=on_progress)
        generated.report.skipped[:0] = skipped
        attrs = {
            "module": module, "description": description, "created": _now(), "updated": _now(),
            "width": generated.geometry.width, "height": generated.geometry.height,
            "channels": generated.geometry.channels, "dtype": generated.geometry.dtype,
            "bit_depth": generated.bit_depth, "categories": json.dumps(categories),
            "mask_lut": json.dumps({}), "train_ratio": train_ratio, "shuffle_seed": -1,
            "next_image_id": 0, "roi_invert": False,
            "recipe": json.dumps({"sets": [s.to_dict() for s in sets], "options": options.to_dict()}),
        }
        table = xr.Dataset(attrs=attrs)
        table = _with_rows(table, _rows(generated, table))
        _resolve_mask_categories(table, generated)
        dataset = cls.__new__(cls)
        dataset._store, dataset._table = store, table
        dataset._pending_masks, dataset._objects = {}, {}
        dataset._pending_predicted_masks, dataset._predicted = {}, {}
        dataset._dirty, dataset._batches, dataset._version = True, {}, None
        dataset._ingest_objects(generated, first_id=0)
        dataset._record_report(generated.report)
        dataset.shuffle(train_ratio, seed)
        dataset.save()
        return dataset

    # -- read ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._store.root.name

    @property
    def module(self) -> str:
        return str(self._table.attrs["module"])

    @property
    def categories(self) -> list[str]:
        return list(json.loads(self._table.attrs["categories"]))

    @property
    def geometry(self) -> ImageGeometry:
        a = self._table.attrs
        return ImageGeometry(int(a["width"]), int(a["height"]), int(a["channels"]), str(a["dtype"]))

    @property
    def description(self) -> str:
        return str(self._table.attrs.get("description", ""))

    @description.setter
    def description(self, text: str) -> None:
        self._table.attrs["description"] = str(text)
        self._dirty = True

    @property
    def bit_depth(self) -> int:
        return int(self._table.attrs["bit_depth"])

    @property
    def dirty(self) -> bool:
        """True when there are edits that :meth:`save` would write."""
        return self._dirty

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self._table["image"].values, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._table.sizes.get("image", 0))

    def __repr__(self) -> str:
        g = self.geometry
        mark = " (unsaved changes)" if self._dirty else ""
        return (f"<Dataset {self.name!r} {self.module}: {len(self)} images {g.width}x{g.height}x{g.channels}, "
                f"categories {self.categories}{mark}>")

    def info(self) -> DatasetInfo:
        g = self.geometry
        return DatasetInfo(self.name, self.module, g.width, g.height, g.channels, len(self),
                           tuple(self.categories), str(self._table.attrs.get("updated", "")), self.description)

    @property
    def table(self) -> pd.DataFrame:
        """The per-image table with category names, indexed by image id (a copy; edit via methods)."""
        names = self.categories
        frame = pd.DataFrame({
            "name": _strings(self._table["name"]),
            "source": _strings(self._table["source"]),
            "named_set": _strings(self._table["named_set"]),
            "ground_truth": [_category_name(names, int(i)) for i in self._table["ground_truth"].values],
            "prediction": [_category_name(names, int(i)) for i in self._table["prediction"].values],
            "score": self._table["score"].values,
            "set": _strings(self._table["split"]),
            "assigned": _strings(self._table["assigned"]),
            "source_width": self._table["source_width"].values,
            "source_height": self._table["source_height"].values,
            "correction": _strings(self._table["correction"]),
            "has_mask": (_strings(self._table["mask_batch"]) != "") | np.isin(self.ids, list(self._pending_masks)),
            "n_ground_truth": [sum(not a.pseudo for a in self._objects.get(int(i), ())) for i in self.ids],
            "n_pseudo": [sum(a.pseudo for a in self._objects.get(int(i), ())) for i in self.ids],
            "n_prediction": [len(self._predicted.get(int(i), ())) for i in self.ids],
            "has_predicted_mask": (_strings(self._table["pred_mask_batch"]) != "")
            | np.isin(self.ids, list(self._pending_predicted_masks)),
        }, index=pd.Index(self.ids, name="image_id"))
        return frame

    def to_csv(self, path: str | Path) -> Path:
        """Write the image table (name, ground truth, prediction, set, assigned, ...) to a CSV file."""
        path = Path(path)
        self.table.to_csv(path)
        return path

    def image(self, selector: int | str) -> np.ndarray:
        """Pixels of one image as ``(H, W, C)`` (uint8 or uint16, RGB or grey)."""
        row = self._position(selector)
        batch = str(self._table["pixel_batch"].values[row])
        slot = int(self._table["pixel_slot"].values[row])
        return np.asarray(self._open("pixels", batch)[slot])

    def mask(self, selector: int | str) -> np.ndarray | None:
        """The image's mask: category indices (segmentation) or a bool defect map (anomaly); None if none."""
        return self._read_mask(selector, self._pending_masks, "mask")

    def predicted_mask(self, selector: int | str) -> np.ndarray | None:
        """The mask a model predicted for the image in its last test (same encoding as :meth:`mask`)."""
        return self._read_mask(selector, self._pending_predicted_masks, "pred_mask")

    def _read_mask(self, selector: int | str, pending: dict[int, np.ndarray], column: str) -> np.ndarray | None:
        row = self._position(selector)
        image_id = int(self.ids[row])
        if image_id in pending:
            return pending[image_id].copy()
        batch = str(self._table[f"{column}_batch"].values[row])
        if not batch:
            return None
        raw = np.asarray(self._open("masks", batch)[int(self._table[f"{column}_slot"].values[row])])
        if self.module != "segmentation":
            return raw > 0
        lut = np.zeros(int(raw.max()) + 1, dtype=np.uint8)
        for value, index in self._mask_lut().items():
            if value < lut.size:
                lut[value] = index
        return lut[raw]

    def objects(self, selector: int | str, pseudo: bool | None = None) -> list[Annotation]:
        """Annotations of one image; ``pseudo=False`` keeps ground truth only, ``True`` pseudo labels only."""
        image_id = int(self.ids[self._position(selector)])
        found = self._objects.get(image_id, [])
        return [a for a in found if pseudo is None or a.pseudo == pseudo]

    def set_objects(self, selector: int | str, objects: Sequence[Annotation]) -> None:
        """Replace one image's annotations (boxes, rotated boxes, polygons), clipped to the image."""
        image_id = int(self.ids[self._position(selector)])
        kept = self._checked_objects(objects)
        if kept:
            self._objects[image_id] = kept
        else:
            self._objects.pop(image_id, None)
        self._dirty = True

    def add_object(self, selector: int | str, annotation: Annotation) -> None:
        self.set_objects(selector, [*self.objects(selector), annotation])

    def predicted_objects(self, selector: int | str) -> list[Annotation]:
        """The objects a model predicted for the image in its last test (with scores)."""
        return list(self._predicted.get(int(self.ids[self._position(selector)]), []))

    def set_predicted_objects(self, selector: int | str, objects: Sequence[Annotation]) -> None:
        """Record a test's predicted objects for one image, kept apart from ground truth and pseudo labels."""
        image_id = int(self.ids[self._position(selector)])
        kept = self._checked_objects(objects)
        if kept:
            self._predicted[image_id] = kept
        else:
            self._predicted.pop(image_id, None)
        self._dirty = True

    def clear_predictions(self) -> None:
        """Forget every test result: predicted labels, scores, objects and masks."""
        self._table["prediction"].values[:] = -1
        self._table["score"].values[:] = np.nan
        self._table["pred_mask_batch"].values[:] = ""
        self._table["pred_mask_slot"].values[:] = -1
        self._pending_predicted_masks = {}
        self._predicted = {}
        self._dirty = True

    def _checked_objects(self, objects: Sequence[Annotation]) -> list[Annotation]:
        g = self.geometry
        kept: list[Annotation] = []
        for ann in objects:
            if not isinstance(ann, Box | RotatedBox | Polygon):
                raise AstrocyteError(f"not an annotation: {ann!r}")
            self._category_index(ann.category)
            clipped = clip(ann, g.width, g.height)
            if clipped is None:
                raise AstrocyteError(f"annotation {ann!r} lies outside the {g.width} x {g.height} image")
            kept.append(clipped)
        return kept

    def mask_polygons(self, selector: int | str) -> list[Polygon]:
        """Segmentation: the outlines of each category's regions in the image's mask."""
        mask = self.mask(selector)
        if mask is None or self.module != "segmentation":
            return []
        return polygons_from_mask(mask, self.categories, background=self._background_index())

    def background_index(self) -> int:
        """Index of the category meaning "nothing" in masks ("background" if present, else mask value 0's)."""
        return self._background_index()

    def _background_index(self) -> int:
        names = self.categories
        if "background" in names:
            return names.index("background")
        zero = self._mask_lut().get(0)
        return zero if zero is not None else 0

    def _ingest_objects(self, generated: Generated, first_id: int) -> None:
        """Bring database annotations into stored-image coordinates; paint segmentation polygons as masks."""
        g = generated.geometry
        report = generated.report
        for offset, (source, tf) in enumerate(zip(generated.sources, generated.transforms(), strict=True)):
            image_id = first_id + offset
            moved: list[Annotation] = []
            for ann in source.objects:
                fitted = clip(transform(ann, *tf), g.width, g.height)
                if fitted is None:
                    report.skipped.append((str(source.path), f"{type(ann).__name__} {ann.category!r} falls outside "
                                                             "the stored image after correction; dropped"))
                else:
                    moved.append(fitted)
            if not moved:
                continue
            if self.module == "segmentation":
                if source.mask_path is None:
                    polygons = [a for a in moved if isinstance(a, Polygon)]
                    self._pending_masks[image_id] = mask_from_polygons(
                        polygons, (g.width, g.height), self.categories, self._background_index())
            else:
                self._objects[image_id] = moved

    def _open(self, kind: str, batch: str):
        key = (kind, batch)
        if key not in self._batches:
            self._batches[key] = self._store.open_batch(kind, batch)
        return self._batches[key]

    def _mask_lut(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in json.loads(self._table.attrs["mask_lut"]).items()}

    # -- selection -----------------------------------------------------------------------------------
    def _position(self, selector: int | str) -> int:
        positions = self._positions(selector)
        if len(positions) != 1:
            raise AstrocyteError(f"{selector!r} selects {len(positions)} images; select exactly one")
        return int(positions[0])

    def _positions(self, selector: Selector) -> np.ndarray:
        items = [selector] if isinstance(selector, int | str | np.integer) else list(selector)
        ids = self.ids
        names = _strings(self._table["name"])
        positions = []
        for item in items:
            if isinstance(item, str):
                hits = np.flatnonzero(names == item)
                if hits.size == 0:
                    raise AstrocyteError(f"dataset {self.name!r}: no image named {item!r}")
            else:
                hits = np.flatnonzero(ids == int(item))
                if hits.size == 0:
                    raise AstrocyteError(f"dataset {self.name!r}: no image with id {item}")
            positions.extend(hits.tolist())
        return np.asarray(positions, dtype=np.int64)

    def select(self, *, ground_truth: str | None = None, set: str | None = None, assigned: str | None = None,
               named_set: str | None = None, name_contains: str | None = None) -> np.ndarray:
        """Ids of images matching every given filter (ground truth ``""`` means unlabelled).

        ``set`` is the user's choice (auto / train / validation); ``assigned`` the resulting train or
        validation membership after shuffling.
        """
        keep = np.ones(len(self), dtype=bool)
        if ground_truth is not None:
            wanted = -1 if ground_truth == "" else self._category_index(ground_truth)
            keep &= self._table["ground_truth"].values == wanted
        if set is not None:
            keep &= _strings(self._table["split"]) == _check_split(set)
        if assigned is not None:
            keep &= _strings(self._table["assigned"]) == assigned
        if named_set is not None:
            keep &= _strings(self._table["named_set"]) == named_set
        if name_contains:
            keep &= np.char.find(_strings(self._table["name"]).astype(str), name_contains) >= 0
        return self.ids[keep]

    # -- edits ------------------------------------------------------------------------------------------
    def relabel(self, selector: Selector, category: str | None) -> None:
        """Set the ground-truth category of the selected images (``None`` removes the label)."""
        index = -1 if category is None else self._category_index(category)
        positions = self._positions(selector)
        self._table["ground_truth"].values[positions] = index
        self._dirty = True

    def remove(self, selector: Selector) -> None:
        """Remove images from the dataset (their source files are untouched)."""
        positions = self._positions(selector)
        removed = set(self.ids[positions].tolist())
        keep = np.setdiff1d(np.arange(len(self)), positions)
        self._table = self._table.isel(image=keep)
        self._pending_masks = {k: v for k, v in self._pending_masks.items() if k not in removed}
        self._pending_predicted_masks = {k: v for k, v in self._pending_predicted_masks.items() if k not in removed}
        self._objects = {k: v for k, v in self._objects.items() if k not in removed}
        self._predicted = {k: v for k, v in self._predicted.items() if k not in removed}
        self._dirty = True

    def assign_set(self, selector: Selector, split: str) -> None:
        """Put images in the train or validation set explicitly, or back to ``auto``."""
        split = _check_split(split)
        positions = self._positions(selector)
        self._table["split"].values[positions] = split
        if split != "auto":
            self._table["assigned"].values[positions] = split
        self._dirty = True

    def shuffle(self, train_ratio: float | None = None, seed: int | None = None) -> None:
        """Re-draw the train/validation assignment of ``auto`` images (explicit ones keep their set).

        The draw is stratified by ground truth so every category is split by the same ratio.
        """
        ratio = float(self._table.attrs["train_ratio"] if train_ratio is None else train_ratio)
        _check_ratio(ratio)
        if seed is None or seed < 0:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        splits = _strings(self._table["split"])
        labels = self._table["ground_truth"].values
        rng = np.random.default_rng(seed)
        assigned = np.where(splits == "auto", "validation", splits).astype(object)
        groups = [np.flatnonzero((splits == "auto") & (labels == label)) for label in np.unique(labels)]
        quotas = _stratified_quotas([g.size for g in groups], ratio)
        for group, quota in zip(groups, quotas, strict=True):
            assigned[rng.permutation(group)[:quota]] = "train"
        self._table["assigned"] = ("image", assigned)
        self._table.attrs.update(train_ratio=ratio, shuffle_seed=seed)
        self._dirty = True

    def add_category(self, name: str) -> None:
        self._check_editable_categories()
        names = self.categories
        names.append(cats.check_category_name(name, names))
        self._set_categories(names)

    def rename_category(self, old: str, new: str) -> None:
        self._check_editable_categories()
        names = self.categories
        index = self._category_index(old)
        others = [n for i, n in enumerate(names) if i != index]
        names[index] = cats.check_category_name(new, others)
        self._objects = {k: [replace(a, category=names[index]) if a.category == old else a for a in v]
                         for k, v in self._objects.items()}
        self._predicted = {k: [replace(a, category=names[index]) if a.category == old else a for a in v]
                           for k, v in self._predicted.items()}
        self._set_categories(names)

    def delete_category(self, name: str, migrate_to: str | None = None) -> None:
        """Delete a category; its images (and mask pixels) move to ``migrate_to`` or become unlabelled.

        Segmentation pixels always need a category to move to.
        """
        self._check_editable_categories()
        index = self._category_index(name)
        target = None if migrate_to is None else self._category_index(migrate_to)
        if target == index:
            raise AstrocyteError(f"cannot migrate category {name!r} onto itself")
        if self.module == "segmentation" and target is None:
            raise AstrocyteError(f"deleting segmentation category {name!r} needs migrate_to: its pixels "
                                 "must belong to another category (e.g. the background)")

        def remap(values: np.ndarray) -> np.ndarray:
            out = values.copy()
            out[values == index] = -1 if target is None else target
            out[out > index] -= 1
            return out

        for column in ("ground_truth", "prediction"):
            self._table[column].values[:] = remap(self._table[column].values)
        lut = {v: int(remap(np.array([i]))[0]) for v, i in self._mask_lut().items()}
        self._pending_masks = {k: remap(m.astype(np.int16)).astype(np.uint8) for k, m in self._pending_masks.items()}
        self._pending_predicted_masks = {k: remap(m.astype(np.int16)).astype(np.uint8)
                                         for k, m in self._pending_predicted_masks.items()}
        names = self.categories
        self._objects = _migrate_objects(self._objects, name, migrate_to)
        self._predicted = _migrate_objects(self._predicted, name, migrate_to)
        del names[index]
        self._table.attrs["mask_lut"] = json.dumps({str(k): v for k, v in lut.items()})
        self._set_categories(names)

    def set_mask(self, selector: int | str, mask: np.ndarray | None) -> None:
        """Replace an image's mask (category indices, or bool for anomaly); ``None`` removes it."""
        self._write_mask(selector, mask, self._pending_masks, "mask")

    def set_predicted_mask(self, selector: int | str, mask: np.ndarray | None) -> None:
        """Record the mask a model predicted for an image (same encoding as :meth:`set_mask`); ``None`` clears it."""
        self._write_mask(selector, mask, self._pending_predicted_masks, "pred_mask")

    def _write_mask(self, selector: int | str, mask: np.ndarray | None, pending: dict[int, np.ndarray],
                    column: str) -> None:
        row = self._position(selector)
        image_id = int(self.ids[row])
        g = self.geometry
        if mask is None:
            pending.pop(image_id, None)
            self._table[f"{column}_batch"].values[row] = ""
            self._table[f"{column}_slot"].values[row] = -1
            self._dirty = True
            return
        mask = np.asarray(mask)
        if mask.shape != (g.height, g.width):
            raise AstrocyteError(f"mask shape {mask.shape} differs from the image size {(g.height, g.width)}")
        if self.module == "segmentation":
            if mask.size and (mask.min() < 0 or mask.max() >= len(self.categories)):
                raise AstrocyteError(f"mask values must be category indices 0..{len(self.categories) - 1}")
            mask = mask.astype(np.uint8)
        else:
            mask = mask > 0
        pending[image_id] = mask
        self._dirty = True

    def set_predictions(self, selector: Selector, labels: Sequence[str | None], scores: Sequence[float]) -> None:
        """Record a test's predicted category and score per image (labels the dataset lacks stay empty)."""
        positions = self._positions(selector)
        if not len(positions) == len(labels) == len(scores):
            raise AstrocyteError("set_predictions needs one label and one score per selected image")
        names = self.categories
        self._table["prediction"].values[positions] = [names.index(x) if x in names else -1 for x in labels]
        self._table["score"].values[positions] = np.asarray(scores, dtype=np.float32)
        self._dirty = True

    # -- ROI -------------------------------------------------------------------------------------------
    def set_roi(self, masked: np.ndarray, invert: bool = False) -> None:
        """Set the static ROI: ``masked`` is True on pixels to ignore; ``invert`` flips the meaning."""
        masked = np.asarray(masked, dtype=bool)
        g = self.geometry
        if masked.shape != (g.height, g.width):
            raise AstrocyteError(f"ROI mask shape {masked.shape} differs from the image size {(g.height, g.width)}")
        self._table["roi"] = (("y", "x"), masked)
        self._table.attrs["roi_invert"] = bool(invert)
        self._dirty = True

    def invert_roi(self) -> None:
        if "roi" not in self._table:
            raise AstrocyteError(f"dataset {self.name!r} has no ROI mask to invert")
        self._table.attrs["roi_invert"] = not bool(self._table.attrs["roi_invert"])
        self._dirty = True

    def clear_roi(self) -> None:
        if "roi" in self._table:
            self._table = self._table.drop_vars("roi")
            self._dirty = True

    def active_region(self) -> np.ndarray | None:
        """True on pixels the models use (after inversion); None when the dataset has no ROI."""
        if "roi" not in self._table:
            return None
        masked = np.asarray(self._table["roi"].values, dtype=bool)
        return masked if bool(self._table.attrs["roi_invert"]) else ~masked

    def roi_bbox(self) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` of the active region: images are cropped to it before training."""
        active = self.active_region()
        if active is None:
            return None
        ys, xs = np.nonzero(active)
        if xs.size == 0:
            raise AstrocyteError(f"dataset {self.name!r}: the ROI masks out every pixel")
        return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)

    # -- growth ------------------------------------------------------------------------------------------
    def add_images(self, sets: Sequence[DatasetSet], options: GenerationOptions | None = None,
                   on_progress: ProgressCallback | None = None) -> GenerationReport:
        """Append images from ``sets``, fitted to this dataset's size; unsaved until :meth:`save`."""
        options = options or GenerationOptions()
        sources, skipped = discover(list(sets))
        known = set(_strings(self._table["source"]).tolist())
        fresh = [s for s in sources if str(s.path) not in known]
        skipped += [(str(s.path), "already in the dataset") for s in sources if str(s.path) in known]
        if not fresh:
            raise AstrocyteError("every image found is already in the dataset")
        names = cats.categories_from_sources(self.module, _labels(fresh), self.categories)
        if self.module == "segmentation" and any(s.objects for s in fresh) and "background" not in names:
            names.append("background")
        generated = generate(self._store, fresh, options, geometry=self.geometry,
                             binary_masks=self.module != "segmentation", on_progress=on_progress)
        generated.report.skipped[:0] = skipped
        self._table.attrs["categories"] = json.dumps(names)
        first_id = int(self._table.attrs["next_image_id"])
        self._table = _with_rows(self._table, _rows(generated, self._table))
        _resolve_mask_categories(self._table, generated)
        self._ingest_objects(generated, first_id)
        self._table.attrs["bit_depth"] = max(self.bit_depth, generated.bit_depth)
        recipe = json.loads(self._table.attrs["recipe"])
        recipe["sets"] += [s.to_dict() for s in sets]
        self._table.attrs["recipe"] = json.dumps(recipe)
        self.shuffle()
        self._record_report(generated.report)
        return generated.report

    def absorb(self, other: Dataset) -> None:
        """Append every image of ``other`` (same module and image size); categories merge by name."""
        from astrocyte_lab.data.merge import merge_into

        merge_into(self, other)

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, force: bool = False) -> None:
        """Write the edits as a new version; a crash mid-way leaves the previous version intact.

        If another session saved this dataset after this one loaded it, saving would silently undo that
        work, so it raises :class:`ConcurrentEditError` instead; ``force=True`` overwrites anyway.
        """
        with self._store.locked():
            current = self._store.current_version() if self._store.exists() else None
            if not force and current != self._version:
                raise ConcurrentEditError(
                    f"dataset {self.name!r} was saved elsewhere (version {current}) after this session loaded "
                    f"version {self._version}: reload() to get it (your unsaved edits are dropped), or "
                    "save(force=True) to overwrite it")
            self._save_locked()

    def _save_locked(self) -> None:
        table = self._table.copy(deep=True)
        for pending, column in ((self._pending_masks, "mask"), (self._pending_predicted_masks, "pred_mask")):
            if not pending:
                continue
            ids = sorted(pending)
            g = self.geometry
            batch, array = self._store.new_batch("masks", len(ids), (g.height, g.width), np.uint16)
            raw = self._canonical_values()
            table.attrs["mask_lut"] = self._table.attrs["mask_lut"]  # may map a new category's value
            try:
                for slot, image_id in enumerate(ids):  # bool (anomaly) masks index 0/1, not a selection
                    array[slot] = raw[pending[image_id].astype(np.intp)]
            except OSError as exc:
                raise storage_error(exc, self._store.root) from exc
            positions = self._positions(ids)
            table[f"{column}_batch"].values[positions] = batch
            table[f"{column}_slot"].values[positions] = np.arange(len(ids))
        table = with_objects(table, self._objects, self.categories)
        table = with_objects(table, self._predicted, self.categories, PREDICTED)
        table.attrs["updated"] = _now()
        self._version = self._store.save_table(table)
        self._table = table
        self._pending_masks = {}
        self._pending_predicted_masks = {}
        self._dirty = False
        self._store.collect_garbage()

    def _canonical_values(self) -> np.ndarray:
        """Raw pixel value stored for each category index (segmentation) or 0/1 (anomaly)."""
        if self.module != "segmentation":
            return np.array([0, 1], dtype=np.uint16)
        lut = self._mask_lut()
        raw = np.zeros(max(len(self.categories), 1), dtype=np.uint16)
        used = set(lut)
        for index in range(len(self.categories)):
            values = sorted(v for v, i in lut.items() if i == index)
            if values:
                raw[index] = values[0]
            else:  # a category added by the user: give it the next free raw value
                value = max(used, default=-1) + 1
                used.add(value)
                lut[value] = index
                raw[index] = value
        self._table.attrs["mask_lut"] = json.dumps({str(k): v for k, v in lut.items()})
        return raw

    def reload(self) -> None:
        """Discard unsaved edits and read the last saved version."""
        self._version = self._store.current_version()
        table = self._store.load_table(self._version)
        try:  # damaged attributes or object columns: name the dataset, never a raw KeyError / JSON error
            _check_attributes(table)
            self._table = _with_prediction_columns(table)
            self._objects = objects_from_table(self._table, self.categories)
            self._predicted = objects_from_table(self._table, self.categories, PREDICTED)
            saved = self._table.attrs.get("generation_report")
            self.last_report = (GenerationReport.from_dict(load_json(saved, "attribute 'generation_report'"))
                                if saved else None)
        except (KeyError, ValueError, TypeError, AttributeError, RecursionError, LimitError) as exc:
            raise DamagedDatasetError(f"dataset {self.name!r}, version {self._version}: damaged table "
                                      f"({type(exc).__name__}: {exc})") from exc
        self._pending_masks = {}
        self._pending_predicted_masks = {}
        self._batches = {}
        self._dirty = False

    # -- helpers -----------------------------------------------------------------------------------------
    def _record_report(self, report: GenerationReport) -> None:
        """Keep the latest generation report with the dataset, so it can be read after reopening."""
        self.last_report = report
        self._table.attrs["generation_report"] = json.dumps(report.to_dict())

    def _category_index(self, name: str) -> int:
        names = self.categories
        if name not in names:
            raise AstrocyteError(f"dataset {self.name!r}: no category {name!r} (categories: {names})")
        return names.index(name)

    def _set_categories(self, names: list[str]) -> None:
        self._table.attrs["categories"] = json.dumps(names)
        self._dirty = True

    def _check_editable_categories(self) -> None:
        if self.module == "anomaly":
            raise AstrocyteError("anomaly datasets always use the categories Normal and Anomaly")


def _labels(sources: list[SourceImage]) -> list[str | None]:
    """Every category name the sources mention: image labels and object categories."""
    return [s.category for s in sources] + [a.category for s in sources for a in s.objects]


def _migrate_objects(objects: dict[int, list[Annotation]], name: str,
                     migrate_to: str | None) -> dict[int, list[Annotation]]:
    """Objects of category ``name`` move to ``migrate_to``, or are dropped when it is None."""
    out: dict[int, list[Annotation]] = {}
    for image_id, anns in objects.items():
        kept = [a if a.category != name else replace(a, category=migrate_to) for a in anns
                if a.category != name or migrate_to is not None]
        if kept:
            out[image_id] = kept
    return out


def _rows(generated: Generated, table: xr.Dataset) -> xr.Dataset:
    """The table rows for a generation, numbered after the table's last image id."""
    names_in_table = set(_strings(table["name"]).tolist()) if "name" in table else set()
    categories = json.loads(table.attrs["categories"])
    n = len(generated.sources)
    first = int(table.attrs["next_image_id"])
    table.attrs["next_image_id"] = first + n
    labels = [s.category for s in generated.sources]
    return xr.Dataset(
        {
            "name": ("image", np.array(_unique_names([s.path for s in generated.sources], names_in_table),
                                        dtype=object)),
            "source": ("image", np.array([str(s.path) for s in generated.sources], dtype=object)),
            "named_set": ("image", np.array([s.set_name for s in generated.sources], dtype=object)),
            "ground_truth": ("image", np.array([categories.index(c) if c is not None else -1 for c in labels],
                                               dtype=np.int16)),
            "prediction": ("image", np.full(n, -1, dtype=np.int16)),
            "score": ("image", np.full(n, np.nan, dtype=np.float32)),
            "split": ("image", np.full(n, "auto", dtype=object)),
            "assigned": ("image", np.full(n, "train", dtype=object)),
            "pixel_batch": ("image", np.full(n, generated.pixel_batch, dtype=object)),
            "pixel_slot": ("image", np.asarray(generated.pixel_slots, dtype=np.int32)),
            "mask_batch": ("image", np.array([generated.mask_batch if s >= 0 else "" for s in generated.mask_slots],
                                             dtype=object)),
            "mask_slot": ("image", np.asarray(generated.mask_slots, dtype=np.int32)),
            "pred_mask_batch": ("image", np.full(n, "", dtype=object)),
            "pred_mask_slot": ("image", np.full(n, -1, dtype=np.int32)),
            "source_width": ("image", np.array([w for w, _ in generated.source_sizes], dtype=np.int32)),
            "source_height": ("image", np.array([h for _, h in generated.source_sizes], dtype=np.int32)),
            "correction": ("image", np.array(generated.corrections, dtype=object)),
        },
        coords={"image": np.arange(first, first + n, dtype=np.int64)},
    )


def _with_prediction_columns(table: xr.Dataset) -> xr.Dataset:
    """Tables saved before predicted masks were stored lack their columns: add them empty."""
    if "pred_mask_batch" in table or "image" not in table.dims:
        return table
    n = table.sizes["image"]
    return table.assign(pred_mask_batch=("image", np.full(n, "", dtype=object)),
                        pred_mask_slot=("image", np.full(n, -1, dtype=np.int32)))


def _with_rows(table: xr.Dataset, rows: xr.Dataset) -> xr.Dataset:
    if "image" not in table.dims:
        merged = xr.merge([table, rows], combine_attrs="override", compat="no_conflicts", join="outer")
        merged.attrs = dict(table.attrs)
        return merged
    per_image = [name for name, var in table.data_vars.items() if "image" in var.dims]
    others = table.drop_vars(per_image + ["image"])
    stacked = xr.concat([table[per_image], rows], dim="image", combine_attrs="override")
    merged = xr.merge([others, stacked], combine_attrs="override", join="outer")
    merged.attrs = dict(table.attrs)
    for name in per_image:  # xarray may upcast object columns; keep python strings
        if table[name].dtype.kind in "OUT":
            merged[name] = ("image", np.asarray(merged[name].values, dtype=object))
    return merged


def _resolve_mask_categories(table: xr.Dataset, generated: Generated) -> None:
    """Segmentation: each new raw mask value becomes (or joins) a category."""
    if table.attrs["module"] != "segmentation" or not generated.mask_values:
        return
    lut = {int(k): int(v) for k, v in json.loads(table.attrs["mask_lut"]).items()}
    lut, names = cats.value_lut_with(generated.mask_values, lut, json.loads(table.attrs["categories"]))
    table.attrs["mask_lut"] = json.dumps({str(k): v for k, v in lut.items()})
    table.attrs["categories"] = json.dumps(names)


def _unique_names(paths: list[Path], taken: set[str]) -> list[str]:
    """File names, prefixed with parent folders only where two images would share a name."""
    names: list[str] = []
    used = set(taken)
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.name] = counts.get(path.name, 0) + 1
    for path in paths:
        depth = 0 if counts[path.name] == 1 and path.name not in used else 1
        candidate = "/".join(path.parts[-1 - depth:])
        while candidate in used and depth < len(path.parts) - 1:
            depth += 1
            candidate = "/".join(path.parts[-1 - depth:])
        used.add(candidate)
        names.append(candidate)
    return names


def _strings(variable: xr.DataArray) -> np.ndarray:
    return np.asarray(variable.values, dtype=object)


def _category_name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else ""


def _stratified_quotas(sizes: list[int], ratio: float) -> list[int]:
    """Train counts per group summing to round(ratio * total), spread by largest remainder."""
    exact = [ratio * n for n in sizes]
    quotas = [int(np.floor(x)) for x in exact]
    missing = int(round(ratio * sum(sizes))) - sum(quotas)
    by_remainder = sorted(range(len(sizes)), key=lambda i: exact[i] - quotas[i], reverse=True)
    for i in by_remainder[:max(0, missing)]:
        quotas[i] += 1
    return quotas


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise AstrocyteError(f"set must be one of {list(SPLITS)}, not {split!r}")
    return split


def _check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise AstrocyteError(f"train ratio must be between 0 and 1, not {ratio}")
