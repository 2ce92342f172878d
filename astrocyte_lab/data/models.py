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

import numpy as np

from astrocyte_lab.data.jsonfile import load_json, read_json
from astrocyte_lab.data.limits import check_image_pixels
from astrocyte_lab.data.safe_archive import (
    MANIFEST_BYTES,
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
        from safetensors.numpy import load_file

        return load_file(str(self.folder(name) / "weights.safetensors"))

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
                check_members(tar, file)
                record = read_manifest(tar, "model.json", file)
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
    """Refuse a weights file that is missing, not safetensors, or holds tensors that do not load or are not finite.

    The header is checked first (declared shapes and offsets against the file size), then each tensor is loaded
    one at a time, so garbage weights fail at import and not at first use.
    """
    if not path.is_file():
        raise AstrocyteError(f"{source}: missing (no weights inside the export)")
    header, size = _safetensors_header(path, source)
    for key, entry in header.items():
        if key != "__metadata__":
            _check_entry(key, entry, size, source)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as weights:
            for key in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = weights.get_tensor(key)
                if tensor.dtype.kind in "fc" and not np.isfinite(tensor).all():
                    raise AstrocyteError(f"{source}: tensor {key!r} holds NaN or infinite values")
    except (SafetensorError, ValueError, TypeError) as exc:
        raise AstrocyteError(f"{source}: tensors do not load ({exc})") from None


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


_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _safetensors_header(path: Path, source: str) -> tuple[dict, int]:
    """The parsed JSON header of a safetensors file and the size of its data section."""
    total = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length <= 0 or length > min(total - 8, MANIFEST_BYTES):
            raise AstrocyteError(f"{source}: not a safetensors file (header length {length} for {total} bytes)")
        header = load_json(handle.read(length), f"{source} (header)")
    if not isinstance(header, dict):
        raise AstrocyteError(f"{source}: not a safetensors file (header is not a JSON object)")
    return header, total - 8 - length


def _check_entry(key: str, entry: object, data_size: int, source: str) -> None:
    """One tensor's header entry: known dtype, non-negative shape, offsets inside the data matching the shape."""
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPE_BYTES:
        raise AstrocyteError(f"{source}: tensor {key!r} has no valid dtype")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise AstrocyteError(f"{source}: tensor {key!r} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise AstrocyteError(f"{source}: tensor {key!r} has invalid data offsets {offsets!r}")
    if math.prod(shape) * _DTYPE_BYTES[entry["dtype"]] != offsets[1] - offsets[0]:
        raise AstrocyteError(f"{source}: tensor {key!r} of shape {shape} does not match its "
                             f"{offsets[1] - offsets[0]} bytes")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in model.json")
