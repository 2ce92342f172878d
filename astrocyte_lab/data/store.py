"""The on-disk layout of one dataset: immutable pixel batches plus versioned tables behind a HEAD file.

Layout of ``<workspace>/datasets/<name>/``::

    HEAD                     name of the current table version, replaced atomically on save
    versions/v000042.zarr    the per-image table (xarray) of one saved version
    pixels/<batch>.zarr      images written once by a generation, never modified (N, H, W, C)
    masks/<batch>.zarr       masks written once per save that changed masks (N, H, W)

A save writes new batches and a new table first and swaps HEAD last, so a crash at any point leaves
the previous version readable; edits never copy existing pixels.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: saves are still atomic, only the cross-process check is skipped
    fcntl = None  # type: ignore[assignment]

import numpy as np
import xarray as xr
import zarr

from astrocyte_lab.data.limits import check_image_pixels, check_limit
from astrocyte_lab.errors import AstrocyteError, FormatVersionError, StorageError

FORMAT_VERSION = 1
KEEP_UNREFERENCED_SECONDS = 3600.0  # batches younger than this may belong to another open, unsaved session
_COMPRESSOR = None
SHARD_ITEMS = 16  # images per shard file: one file write per block instead of one per image
HEAD_BYTES = 64  # a HEAD file holds one version name
BATCH_KINDS = ("pixels", "masks")
MAX_CHANNELS = 16  # a sanity bound on the channels a stored image declares
_VERSION = re.compile(r"v[0-9]{6,12}")
_BATCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")


class DatasetStore:
    """Reads and writes one dataset folder; knows nothing about categories or editing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- versions -------------------------------------------------------------------------------
    @property
    def head_file(self) -> Path:
        return self.root / "HEAD"

    def exists(self) -> bool:
        return self.head_file.is_file()

    def current_version(self) -> str:
        """The version HEAD names; a missing, damaged or dangling HEAD raises a project error naming the dataset."""
        try:
            raw = _read_small(self.head_file, HEAD_BYTES)
        except FileNotFoundError as exc:
            raise AstrocyteError(f"{self.root}: not a dataset (no HEAD file)") from exc
        except OSError as exc:
            raise DamagedDatasetError(f"dataset {self.root.name}: cannot read {self.head_file} "
                                      f"({exc.strerror or exc})") from None
        try:
            version = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            version = None
        if version is None or not _VERSION.fullmatch(version):
            raise DamagedDatasetError(f"dataset {self.root.name}: damaged HEAD file {self.head_file} "
                                      f"(expected a version name like v000001, found {raw[:40]!r})")
        if not (self.root / "versions" / f"{version}.zarr").is_dir():
            raise AstrocyteError(f"{self.head_file}: points at missing version {version!r}")
        return version

    def load_table(self, version: str | None = None) -> xr.Dataset:
        """The table of ``version`` (default: HEAD's); a damaged one raises an error naming dataset and version."""
        version = version or self.current_version()
        if not _VERSION.fullmatch(version):
            raise AstrocyteError(f"dataset {self.root.name}: invalid version name {version!r}")
        path = self.root / "versions" / f"{version}.zarr"
        try:
            _check_table_size(path, self.root.name, version)
            table = xr.open_zarr(path, consolidated=False).load()
        except AstrocyteError:
            raise
        except Exception as exc:  # zarr/numcodecs/xarray raise many types for damaged metadata or chunks, and a
            # damaged variable-length chunk can declare billions of items (MemoryError; real tables are bounded)
            raise DamagedDatasetError(f"dataset {self.root.name}, version {version}: damaged table at {path} "
                                      f"({type(exc).__name__}: {exc})") from exc
        for variable in table.variables.values():  # e.g. an empty string column reads back as float64:
            variable.encoding = {}  # one version's on-disk dtypes must not steer the next save
        found = table.attrs.get("format_version", 0)
        if isinstance(found, bool) or not isinstance(found, int):
            raise DamagedDatasetError(f"dataset {self.root.name}, version {version}: format_version {found!r} "
                                      "is not an integer")
        if found > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path}: written by a newer astrocyte-lab (dataset format {found}, this version reads "
                f"up to {FORMAT_VERSION}); upgrade astrocyte-lab to open it")
        return table

    def save_table(self, table: xr.Dataset) -> str:
        """Write ``table`` as a new version and make it current; return its name."""
        versions = self.root / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        number = 1 + max((_version_number(p.name) for p in versions.glob("v*.zarr")), default=0)
        name = f"v{number:06d}"
        partial = versions / f".{name}.{uuid.uuid4().hex[:8]}.partial"
        try:
            table.attrs["format_version"] = FORMAT_VERSION
            table.to_zarr(partial, mode="w-", consolidated=False, zarr_format=3)
            partial.rename(versions / f"{name}.zarr")
            partial = versions / f"{name}.zarr"  # from here on, a failure must not leave an orphan version
            _atomic_write_text(self.head_file, name + "\n")
        except OSError as exc:
            if self.head_file.is_file() and self.head_file.read_text().strip() != name:
                shutil.rmtree(partial, ignore_errors=True)
            raise storage_error(exc, self.root) from exc
        return name

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the dataset's save lock (across processes; released by the OS if the holder dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- batches ----------------------------------------------------------------------------------
    def new_batch(self, kind: str, count: int, shape: tuple[int, ...], dtype: np.dtype) -> tuple[str, zarr.Array]:
        """Create an empty image or mask batch of ``count`` items of ``shape``."""
        name = f"b{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path = self.root / kind / f"{name}.zarr"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            array = zarr.create_array(
                path, shape=(count, *shape), chunks=(1, *shape), shards=(min(SHARD_ITEMS, max(count, 1)), *shape),
                dtype=dtype, compressors=_COMPRESSOR, fill_value=0)
        except OSError as exc:
            raise storage_error(exc, self.root) from exc
        return name, array

    def open_batch(self, kind: str, name: str) -> CheckedBatch:
        """A batch for reading; its declared shape is checked here and damaged chunks raise project errors."""
        path = self.batch_path(kind, name)
        if not path.is_dir():
            raise AstrocyteError(f"{path}: batch missing from the dataset store")
        label = f"dataset {self.root.name}, batch {kind}/{name}"
        try:
            array = zarr.open_array(path, mode="r")
        except Exception as exc:  # damaged zarr.json: JSON, codec or shape errors of several types
            raise DamagedDatasetError(f"{label}: damaged batch at {path} ({type(exc).__name__}: {exc})") from exc
        _check_batch_shape(array.shape, label)
        return CheckedBatch(array, label)

    def batch_path(self, kind: str, name: str) -> Path:
        if kind not in BATCH_KINDS or not _BATCH.fullmatch(name):
            raise DamagedDatasetError(f"dataset {self.root.name}: invalid batch name {kind}/{name!r} in its table")
        return self.root / kind / f"{name}.zarr"

    # -- housekeeping -------------------------------------------------------------------------------
    def collect_garbage(self, keep_batches: set[tuple[str, str]] = frozenset()) -> None:
        """Drop old versions (keeping current and previous) and batches no kept version uses."""
        versions = sorted((p for p in (self.root / "versions").glob("v*.zarr")), key=lambda p: p.name)
        current = self.current_version()
        kept = [p for p in versions if p.name <= f"{current}.zarr"][-2:]
        referenced = set(keep_batches)
        for path in kept:
            referenced |= batches_of(xr.open_zarr(path, consolidated=False))
        for path in versions:
            if path not in kept and path.name > f"{current}.zarr":
                continue  # a version newer than HEAD: another process is mid-save
            if path not in kept:
                shutil.rmtree(path, ignore_errors=True)
        now = time.time()
        for partial in (self.root / "versions").glob(".*.partial"):
            if now - partial.stat().st_mtime > KEEP_UNREFERENCED_SECONDS:
                shutil.rmtree(partial, ignore_errors=True)
        for kind in ("pixels", "masks"):
            for path in (self.root / kind).glob("*.zarr"):
                if (kind, path.stem) in referenced:
                    continue
                if now - path.stat().st_mtime > KEEP_UNREFERENCED_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)


class DamagedDatasetError(AstrocyteError):
    """Stored data that cannot be read back: damaged HEAD, table or pixel/mask chunk (the message names which)."""


class CheckedBatch:
    """A read-only zarr batch whose reads raise :class:`DamagedDatasetError` naming the dataset, batch and item."""

    def __init__(self, array: zarr.Array, label: str) -> None:
        self.array = array
        self.label = label

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, key: object) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except (AstrocyteError, MemoryError):
            raise
        except Exception as exc:  # checksum, codec (zstd, blosc) and shard-index errors of several types
            raise DamagedDatasetError(f"{self.label}, item {key!r}: damaged data "
                                      f"({type(exc).__name__}: {exc})") from exc

    def __getattr__(self, name: str) -> object:
        if name == "array" or name.startswith("__"):  # not yet set (unpickling) or a protocol lookup
            raise AttributeError(name)
        return getattr(self.array, name)


def _read_small(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(max_bytes + 1)


def _check_table_size(path: Path, dataset: str, version: str) -> None:
    """Refuse a table whose arrays declare more bytes than the limit, before xarray allocates them."""
    group = zarr.open_group(path, mode="r")
    total = sum(math.prod(array.shape) * max(array.dtype.itemsize, 1) for _, array in group.arrays())
    check_limit("table_bytes", total, f"dataset {dataset}, version {version}", "size of the table in memory (bytes)")


def _check_batch_shape(shape: tuple[int, ...], label: str) -> None:
    """A batch holds ``(N, H, W)`` or ``(N, H, W, C)`` items of a sane image size."""
    if len(shape) not in (3, 4) or (len(shape) == 4 and not 1 <= shape[3] <= MAX_CHANNELS):
        raise DamagedDatasetError(f"{label}: unexpected shape {shape}")
    check_image_pixels(int(shape[2]), int(shape[1]), label)


def batches_of(table: xr.Dataset) -> set[tuple[str, str]]:
    """The (kind, batch) pairs a table refers to."""
    used = {("pixels", str(b)) for b in np.unique(np.asarray(table["pixel_batch"].values, dtype=object))}
    for column in ("mask_batch", "pred_mask_batch"):
        if column in table:
            used |= {("masks", str(b)) for b in np.unique(np.asarray(table[column].values, dtype=object)) if str(b)}
    return used


def _version_number(name: str) -> int:
    try:
        return int(name[1:].split(".")[0])
    except ValueError:
        return 0


def _atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` so readers see either the old or the new content, even after a crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # directory fsync is not possible on every platform
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def storage_error(exc: OSError, root: Path) -> StorageError:
    reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    where = exc.filename or root
    return StorageError(f"saving dataset {root.name} failed at {where}: {reason}; "
                        "the last saved version is unchanged")
