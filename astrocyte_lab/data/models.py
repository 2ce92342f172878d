"""Trained models kept in the workspace: weights (safetensors, no pickle) plus a JSON record.

Layout of ``<workspace>/models/<name>/``: ``model.json`` (module, architecture, categories, input and
normalisation, ROI crop and mask, hyper parameters, augmentations, metrics, history, timings),
``weights.safetensors`` (network tensors, plus extra arrays such as continual-learning prototypes) and,
when the dataset had one, ``roi_mask.png``. Loading reads tensors only: no code from the file ever runs.
"""

from __future__ import annotations

import json
import math
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from astrocyte_lab.data.jsonfile import load_json, read_json
from astrocyte_lab.data.limits import check_image_pixels, check_limit
from astrocyte_lab.data.safe_archive import (
    Member,
    MissingMemberError,
    check_members,
    format_version,
    open_tar,
    read_manifest,
    safe_extract,
)
from astrocyte_lab.errors import AstrocyteError, DatasetNotFoundError, FormatVersionError, NameConflictError

MODEL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """One row of the trained-models list."""

    name: str
    module: str
    architecture: str
    width: int
    height: int
    channels: int
    categories: tuple[str, ...]
    created: str
    duration_s: float
    description: str
    performance: dict[str, float]


class ModelStore:
    """The ``models/`` folder of a workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "model.json").is_file() and p.name[0] != ".")

    def folder(self, name: str) -> Path:
        from astrocyte_lab.data.workspace import check_name

        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.folder(name) / "model.json").is_file()

    def record(self, name: str) -> dict:
        path = self.folder(name) / "model.json"
        if not path.is_file():
            raise DatasetNotFoundError(f"no trained model {name!r} (have: {self.names()})")
        record = read_json(path)
        if not isinstance(record, dict):
            raise AstrocyteError(f"{path}: expected a JSON object, found {type(record).__name__}")
        if format_version(record, path) > MODEL_FORMAT_VERSION:
            raise FormatVersionError(f"{path}: written by a newer astrocyte-lab")
        return record

    def info(self, name: str) -> ModelInfo:
        r = self.record(name)
        check_record(r, self.folder(name) / "model.json")
        size = r["input"]
        return ModelInfo(name, r["module"], r.get("architecture", ""), size["width"], size["height"],
                         size["channels"], tuple(r["categories"]), r.get("created", ""),
                         float(r.get("duration_s", 0.0)), r.get("description", ""), dict(r.get("metrics", {})))

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        """The model's tensors, read whole (refused above the ``weights_bytes`` limit)."""
        from safetensors.numpy import load_file

        path = self.folder(name) / "weights.safetensors"
        check_limit("weights_bytes", path.stat().st_size, path, "size of the weights file (bytes)")
        return load_file(str(path))

    def roi_mask(self, name: str) -> np.ndarray | None:
        path = self.folder(name) / "roi_mask.png"
        if not path.is_file():
            return None
        from PIL import Image

        return np.asarray(Image.open(path)) > 0

    def save(self, name: str, record: dict, tensors: dict[str, np.ndarray], roi_mask: np.ndarray | None = None,
             overwrite: bool = False) -> Path:
        """Write a model atomically (staging folder, then one rename)."""
        from safetensors.numpy import save_file

        target = self.folder(name)
        if target.exists() and not overwrite:
            raise NameConflictError(f"a trained model named {name!r} already exists")
        staging = self.root / f".{name}.{uuid.uuid4().hex[:8]}.saving"
        staging.mkdir()
        try:
            record = {**record, "format_version": MODEL_FORMAT_VERSION}
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(staging / "weights.safetensors"))
            if roi_mask is not None:
                from PIL import Image

                Image.fromarray(np.where(roi_mask, 255, 0).astype(np.uint8)).save(staging / "roi_mask.png")
            (staging / "model.json").write_text(json.dumps(record, indent=1, default=_json_default))
            if target.exists():
                old = self.root / f".{name}.{uuid.uuid4().hex[:8]}.old"
                target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def update_record(self, name: str, /, **fields: object) -> None:
        path = self.folder(name) / "model.json"
        record = self.record(name)
        record.update(fields)
        tmp = path.with_name(f".model.json.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(record, indent=1, default=_json_default))
        tmp.replace(path)

    def delete(self, name: str) -> None:
        folder = self.folder(name)
        if not folder.exists():
            raise DatasetNotFoundError(f"no trained model {name!r}")
        trash = self.root / f".{name}.{uuid.uuid4().hex[:8]}.deleted"
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, old: str, new: str) -> None:
        if not self.exists(old):
            raise DatasetNotFoundError(f"no trained model {old!r}")
        if self.folder(new).exists():
            raise NameConflictError(f"a trained model named {new!r} already exists")
        self.folder(old).rename(self.folder(new))

    def export(self, name: str, file: Path) -> Path:
        """One ``.astrotrained`` file holding the model folder, for another workspace."""
        folder = self.folder(name)
        self.record(name)
        file = Path(file)
        partial = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            with tarfile.open(partial, "w") as tar:
                for path in sorted(folder.iterdir()):
                    tar.add(path, path.name)
            partial.replace(file)
        finally:
            partial.unlink(missing_ok=True)
        return file

    def import_(self, file: Path, name: str | None = None) -> str:
        """Add a model exported by :meth:`export`, after checking its record and weights; all or nothing."""
        file = Path(file)
        staging = self.root / f".import.{uuid.uuid4().hex[:8]}"
        try:
            with open_tar(file) as tar:
                members = check_members(tar, file)
                record = read_manifest(tar, "model.json", file)
            _check_weights_member(members, file)
            if format_version(record, f"{file}:model.json") > MODEL_FORMAT_VERSION:
                raise FormatVersionError(f"{file}: model written by a newer astrocyte-lab")
            check_record(record, f"{file}:model.json")
            safe_extract(file, staging)
            check_weights(staging / "weights.safetensors", f"{file}:weights.safetensors")
            check_roi_mask(staging / "roi_mask.png", f"{file}:roi_mask.png")
            name = name or record.get("name") or file.stem
            if self.folder(name).exists():
                raise NameConflictError(f"a trained model named {name!r} already exists: import under another name")
            record["name"] = name
            (staging / "model.json").write_text(json.dumps(record, indent=1))
            staging.rename(self.folder(name))
            return name
        except MissingMemberError as exc:
            raise AstrocyteError(f"{file}: not a trained-model export ({exc})") from None
        except OSError as exc:
            raise AstrocyteError(f"{file}: import failed ({exc.strerror or exc})") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_weights_member(members: list[Member], file: Path) -> None:
    """Refuse an export whose weights member is above the ``weights_bytes`` limit, before unpacking anything."""
    for member in members:
        if member.path == "weights.safetensors":
            check_limit("weights_bytes", member.info.size, f"{file}:weights.safetensors",
                        "size of the weights file (bytes)")


def check_record(record: dict, source: str | Path) -> None:
    """Refuse a model record that lacks a required field or has one of the wrong type, naming the field."""
    _field(record, "module", str, source)
    categories = _field(record, "categories", list, source)
    if not categories or not all(isinstance(c, str) for c in categories):
        raise AstrocyteError(f"{source}: 'categories' must be a non-empty list of names")
    size = _field(record, "input", dict, source)
    for key in ("width", "height", "channels"):
        value = _field(size, key, int, source, f"input.{key}")
        if value <= 0:
            raise AstrocyteError(f"{source}: 'input.{key}' must be positive, found {value}")
    check_image_pixels(size["width"], size["height"], source)
    for key, kind in (("architecture", str), ("created", str), ("description", str), ("name", str),
                      ("metrics", dict), ("duration_s", (int, float))):
        if key in record:
            _field(record, key, kind, source)


def _field(record: dict, key: str, kind: type | tuple[type, ...], source: str | Path, label: str | None = None):
    """``record[key]``, which must exist and be of ``kind`` (``bool`` is not accepted as a number)."""
    label = label or key
    if key not in record:
        raise AstrocyteError(f"{source}: required field {label!r} is missing")
    value = record[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise AstrocyteError(f"{source}: field {label!r} must be {expected}, found {type(value).__name__}")
    return value


def check_weights(path: Path, source: str) -> None:
    """Refuse a weights file that is missing, too large, not safetensors, or holds tensors that would not load or
    are not finite.

    The header is checked first (dtypes numpy loads, shapes matching offsets, tensors tiling the data section as
    ``safetensors`` requires), then each floating-point tensor is scanned for NaN/inf in bounded slices, so garbage
    weights fail at import and not at first use, without loading a tensor whole.
    """
    if not path.is_file():
        raise AstrocyteError(f"{source}: missing (no weights inside the export)")
    check_limit("weights_bytes", path.stat().st_size, source, "size of the weights file (bytes)")
    header, size = _safetensors_header(path, source)
    entries = {key: entry for key, entry in header.items() if key != "__metadata__"}
    for key, entry in entries.items():
        _check_entry(key, entry, size, source)
    _check_tiling(entries, size, source)
    with open(path, "rb") as handle:
        for key, entry in entries.items():
            _check_finite(handle, path.stat().st_size - size, key, entry, source)


def check_roi_mask(path: Path, source: str) -> None:
    """Refuse an ROI mask that does not decode or declares an image above the pixel limit (absent is fine)."""
    if not path.is_file():
        return
    from PIL import Image

    try:
        with Image.open(path) as image:
            check_image_pixels(*image.size, source)
            image.load()
    except AstrocyteError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, DecompressionBombError)
        raise AstrocyteError(f"{source}: not a readable image ({type(exc).__name__}: {exc})") from None


#: safetensors dtypes that ``safetensors.numpy`` loads (BF16 and F8 do not), as numpy dtypes (little-endian)
_DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "U16": np.dtype("<u2"),
           "I16": np.dtype("<i2"), "F16": np.dtype("<f2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
           "F32": np.dtype("<f4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
           "C64": np.dtype("<c8")}
#: the most bytes a safetensors header may have (the ``safetensors`` library's own bound)
SAFETENSORS_HEADER_BYTES = 100_000_000
#: bytes of one tensor read at a time when checking that its values are finite
_FINITE_CHUNK = 16 << 20


def _safetensors_header(path: Path, source: str) -> tuple[dict, int]:
    """The parsed JSON header of a safetensors file and the size of its data section."""
    total = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length <= 0 or length > min(total - 8, SAFETENSORS_HEADER_BYTES):
            raise AstrocyteError(f"{source}: not a safetensors file (header length {length} for {total} bytes)")
        header = load_json(handle.read(length), f"{source} (header)")
    if not isinstance(header, dict):
        raise AstrocyteError(f"{source}: not a safetensors file (header is not a JSON object)")
    return header, total - 8 - length


def _check_entry(key: str, entry: object, data_size: int, source: str) -> None:
    """One tensor's header entry: known dtype, non-negative shape, offsets inside the data matching the shape."""
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
        raise AstrocyteError(f"{source}: tensor {key!r} has no valid dtype (one of {', '.join(_DTYPES)})")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise AstrocyteError(f"{source}: tensor {key!r} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise AstrocyteError(f"{source}: tensor {key!r} has invalid data offsets {offsets!r}")
    if math.prod(shape) * _DTYPES[entry["dtype"]].itemsize != offsets[1] - offsets[0]:
        raise AstrocyteError(f"{source}: tensor {key!r} of shape {shape} does not match its "
                             f"{offsets[1] - offsets[0]} bytes")


def _check_tiling(entries: dict[str, dict], data_size: int, source: str) -> None:
    """The tensors cover the data section end to end without gaps or overlaps (``safetensors`` refuses others)."""
    end = 0
    for key, entry in sorted(entries.items(), key=lambda item: tuple(item[1]["data_offsets"])):
        start, stop = entry["data_offsets"]
        if start != end:
            raise AstrocyteError(f"{source}: tensor {key!r} starts at byte {start} of the data, expected {end} "
                                 "(tensors overlap or leave a gap)")
        end = stop
    if end != data_size:
        raise AstrocyteError(f"{source}: the tensors cover {end} of the {data_size} data bytes")


def _check_finite(handle: BinaryIO, data_start: int, key: str, entry: dict, source: str) -> None:
    """Refuse a floating-point tensor holding NaN or infinity, reading it in slices of at most ``_FINITE_CHUNK``."""
    dtype = _DTYPES[entry["dtype"]]
    if dtype.kind not in "fc":
        return
    start, stop = entry["data_offsets"]
    step = max(_FINITE_CHUNK // dtype.itemsize, 1) * dtype.itemsize
    handle.seek(data_start + start)
    for offset in range(start, stop, step):
        data = handle.read(min(step, stop - offset))
        if len(data) != min(step, stop - offset):
            raise AstrocyteError(f"{source}: tensor {key!r} is truncated")
        if not np.isfinite(np.frombuffer(data, dtype)).all():
            raise AstrocyteError(f"{source}: tensor {key!r} holds NaN or infinite values")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in model.json")
