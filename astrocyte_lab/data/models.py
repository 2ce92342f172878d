"""Trained models kept in the workspace: weights (safetensors, no pickle) plus a JSON record.

Layout of ``<workspace>/models/<name>/``: ``model.json`` (module, architecture, categories, input and
normalisation, ROI crop and mask, hyper parameters, augmentations, metrics, history, timings),
``weights.safetensors`` (network tensors, plus extra arrays such as continual-learning prototypes) and,
when the dataset had one, ``roi_mask.png``. Loading reads tensors only: no code from the file ever runs.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
        record = json.loads(path.read_text())
        if int(record.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise FormatVersionError(f"{path}: written by a newer astrocyte-lab")
        return record

    def info(self, name: str) -> ModelInfo:
        r = self.record(name)
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
        file = Path(file)
        staging = self.root / f".import.{uuid.uuid4().hex[:8]}"
        try:
            with tarfile.open(file) as tar:
                tar.extractall(staging, filter="data")
            record = json.loads((staging / "model.json").read_text())
            if int(record.get("format_version", 0)) > MODEL_FORMAT_VERSION:
                raise FormatVersionError(f"{file}: model written by a newer astrocyte-lab")
            if not (staging / "weights.safetensors").is_file():
                raise AstrocyteError(f"{file}: no weights.safetensors inside")
            name = name or record.get("name") or file.stem
            if self.folder(name).exists():
                raise NameConflictError(f"a trained model named {name!r} already exists: import under another name")
            record["name"] = name
            (staging / "model.json").write_text(json.dumps(record, indent=1))
            staging.rename(self.folder(name))
            return name
        except (tarfile.TarError, OSError, json.JSONDecodeError, KeyError) as exc:
            raise AstrocyteError(f"{file}: not a trained-model export ({exc})") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in model.json")
