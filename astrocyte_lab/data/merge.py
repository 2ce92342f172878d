"""Merge one dataset's images into another of the same module and image size."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from astrocyte_lab.errors import IncompatibleDatasetsError

if TYPE_CHECKING:
    from astrocyte_lab.data.dataset import Dataset


def merge_into(target: Dataset, source: Dataset) -> None:
    """Append ``source``'s images to ``target`` (unsaved until ``target.save()``).

    Pixel batches are linked (or copied across file systems), never re-encoded; category indices are
    remapped by name, and a segmentation pixel value must mean the same category in both datasets.
    """
    if source.module != target.module:
        raise IncompatibleDatasetsError(f"cannot merge {source.module} dataset {source.name!r} into "
                                        f"{target.module} dataset {target.name!r}")
    a, b = target.geometry, source.geometry
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels):
        raise IncompatibleDatasetsError(
            f"only datasets of equal image size merge: {target.name!r} is {a.width} x {a.height} x {a.channels}, "
            f"{source.name!r} is {b.width} x {b.height} x {b.channels}")
    if a.dtype != b.dtype:
        raise IncompatibleDatasetsError(f"{target.name!r} holds {a.dtype} pixels, {source.name!r} {b.dtype}")
    if source.dirty:
        raise IncompatibleDatasetsError(f"dataset {source.name!r} has unsaved changes: save or reload it first")
    names = target.categories
    for name in source.categories:
        if name not in names:
            names.append(name)
    remap = np.array([names.index(n) for n in source.categories] + [-1], dtype=np.int16)  # [-1] keeps -1
    lut = _merged_lut(target, source, names)
    rows = source._table.copy(deep=True)  # noqa: SLF001 - merge is part of the dataset's own layer
    per_image = [n for n, v in rows.data_vars.items() if "image" in v.dims]
    rows = rows[per_image]
    for column in ("ground_truth", "prediction"):
        rows[column].values[:] = remap[rows[column].values]
    first = int(target._table.attrs["next_image_id"])  # noqa: SLF001
    rows = rows.assign_coords(image=np.arange(first, first + len(source), dtype=np.int64))
    _link_batches(source, target)
    table = target._table  # noqa: SLF001
    table.attrs["next_image_id"] = first + len(source)
    table.attrs["categories"] = json.dumps(names)
    table.attrs["mask_lut"] = json.dumps({str(k): v for k, v in lut.items()})
    table.attrs["bit_depth"] = max(target.bit_depth, source.bit_depth)
    from astrocyte_lab.data.dataset import _unique_names, _with_rows

    taken = set(np.asarray(table["name"].values, dtype=object).tolist())
    rows["name"] = ("image", np.array(_unique_names(
        [Path(str(s)) for s in np.asarray(rows["source"].values, dtype=object)], taken), dtype=object))
    target._table = _with_rows(table, xr.Dataset(rows.data_vars, coords=rows.coords))  # noqa: SLF001
    for offset, old_id in enumerate(source.ids.tolist()):
        if source._objects.get(old_id):  # noqa: SLF001 - names already agree: categories merged by name
            target._objects[first + offset] = list(source._objects[old_id])  # noqa: SLF001
        if source._predicted.get(old_id):  # noqa: SLF001
            target._predicted[first + offset] = list(source._predicted[old_id])  # noqa: SLF001
    target._dirty = True  # noqa: SLF001


def _merged_lut(target: Dataset, source: Dataset, names: list[str]) -> dict[int, int]:
    lut = target._mask_lut()  # noqa: SLF001
    for value, index in source._mask_lut().items():  # noqa: SLF001
        name = source.categories[index]
        if value in lut and names[lut[value]] != name:
            raise IncompatibleDatasetsError(
                f"mask pixel value {value} is {names[lut[value]]!r} in {target.name!r} but {name!r} in "
                f"{source.name!r}: rename the categories so they agree before merging")
        lut[value] = names.index(name)
    return lut


def _link_batches(source: Dataset, target: Dataset) -> None:
    from astrocyte_lab.data.store import batches_of

    for kind, batch in batches_of(source._table):  # noqa: SLF001
        src = source._store.batch_path(kind, batch)  # noqa: SLF001
        dst = target._store.batch_path(kind, batch)  # noqa: SLF001
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # batches are immutable, so sharing the file is safe
    except OSError:
        shutil.copy2(src, dst)
