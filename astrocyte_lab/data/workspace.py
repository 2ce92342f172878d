"""The workspace: the folder holding every dataset (and later, models) of a user."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from astrocyte_lab.data import archive
from astrocyte_lab.data.dataset import DEFAULT_TRAIN_RATIO, Dataset, DatasetInfo
from astrocyte_lab.data.generate import GenerationOptions, ProgressCallback
from astrocyte_lab.data.jsonfile import read_json
from astrocyte_lab.data.models import ModelInfo, ModelStore
from astrocyte_lab.data.safe_archive import format_version
from astrocyte_lab.data.sources import NamedSet
from astrocyte_lab.data.store import FORMAT_VERSION, DatasetStore
from astrocyte_lab.errors import (
    AstrocyteError,
    DatasetNotFoundError,
    FormatVersionError,
    InvalidNameError,
    NameConflictError,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")
WORKSPACE_FILE = "workspace.json"


def default_home() -> Path:
    """``$ASTROCYTE_HOME`` or ``~/astrocyte-workspace``."""
    return Path(os.environ.get("ASTROCYTE_HOME") or Path.home() / "astrocyte-workspace").expanduser()


def check_name(name: str) -> str:
    """Dataset names become folder names: letters, digits, space, ``_ . -``; no path tricks."""
    if not isinstance(name, str) or not _NAME.match(name) or name.strip() != name or name.endswith("."):
        raise InvalidNameError(
            f"invalid dataset name {name!r}: use 1-100 letters, digits, spaces, '_', '.' or '-', "
            "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class BrokenItem:
    """A dataset or model of the workspace that cannot be read, and why."""

    kind: Literal["dataset", "model"]
    name: str
    reason: str


def _reason(exc: Exception) -> str:
    """A project error's message; another exception's type and message (it is a damaged file, not a bug here)."""
    return str(exc) if isinstance(exc, AstrocyteError) else f"{type(exc).__name__}: {exc}"


class Workspace:
    """Opens (creating if needed) a workspace folder; ``Workspace()`` uses :func:`default_home`."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_home()
        archive.recover_restore(self.path)  # an interrupted restore is finished or rolled back, never lost
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / WORKSPACE_FILE
        if marker.exists():
            record = read_json(marker)
            if not isinstance(record, dict):
                raise AstrocyteError(f"{marker}: expected a JSON object, found {type(record).__name__}")
            found = format_version(record, marker)
            if found > FORMAT_VERSION:
                raise FormatVersionError(f"{marker}: workspace written by a newer astrocyte-lab (format {found})")
        else:
            marker.write_text(json.dumps({"format_version": FORMAT_VERSION}) + "\n")
        (self.path / "datasets").mkdir(exist_ok=True)
        (self.path / "models").mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"<Workspace {str(self.path)!r}: {len(self.dataset_names())} datasets>"

    # -- datasets ------------------------------------------------------------------------------------
    def _store(self, name: str) -> DatasetStore:
        return DatasetStore(self.path / "datasets" / check_name(name))

    def dataset_names(self) -> list[str]:
        root = self.path / "datasets"
        return sorted(p.name for p in root.iterdir() if (p / "HEAD").is_file() and not p.name.startswith("."))

    def datasets(self) -> list[DatasetInfo]:
        """Name, module, image dimensions, image count, updated time and description of each readable dataset.

        A dataset that cannot be read (damaged, newer format) is left out; :meth:`broken` says why.
        """
        return self.dataset_listing()[0]

    def dataset_listing(self) -> tuple[list[DatasetInfo], list[BrokenItem]]:
        """The readable datasets and the unreadable ones (with why), from one scan (each table is read once)."""
        infos, broken = [], []
        for name in self.dataset_names():
            try:
                infos.append(Dataset(self._store(name)).info())
            except Exception as exc:  # noqa: BLE001 - one damaged dataset must not break the listing
                broken.append(BrokenItem("dataset", name, _reason(exc)))
        return infos, broken

    def dataset(self, name: str) -> Dataset:
        """Open a dataset at its last saved version."""
        store = self._store(name)
        if not store.exists():
            raise DatasetNotFoundError(f"no dataset {name!r} in {self.path} (have: {self.dataset_names()})")
        return Dataset(store)

    def create_dataset(self, name: str, module: str, sets: Sequence[NamedSet], description: str = "",
                       options: GenerationOptions | None = None, train_ratio: float = DEFAULT_TRAIN_RATIO,
                       seed: int | None = None, on_progress: ProgressCallback | None = None) -> Dataset:
        """Generate a dataset from named sets and save it; ``dataset.last_report`` lists what was left out."""
        store = self._store(name)
        if store.root.exists():
            raise NameConflictError(f"a dataset named {name!r} already exists in {self.path}")
        store.root.mkdir(parents=True)
        try:
            return Dataset.create(store, module, sets, description, options, train_ratio, seed, on_progress)
        except BaseException:
            shutil.rmtree(store.root, ignore_errors=True)
            raise

    def delete_dataset(self, name: str) -> None:
        store = self._store(name)
        if not store.root.exists():
            raise DatasetNotFoundError(f"no dataset {name!r} in {self.path}")
        trash = store.root.with_name(f".{name}.{uuid.uuid4().hex[:8]}.deleted")
        store.root.rename(trash)  # one atomic step; the slow delete happens after
        shutil.rmtree(trash, ignore_errors=True)

    def rename_dataset(self, old: str, new: str) -> None:
        source, target = self._store(old), self._store(new)
        if not source.exists():
            raise DatasetNotFoundError(f"no dataset {old!r} in {self.path}")
        if target.root.exists():
            raise NameConflictError(f"a dataset named {new!r} already exists")
        source.root.rename(target.root)

    def export_dataset(self, name: str, file: str | os.PathLike[str]) -> Path:
        """Write a dataset's saved version to one ``.astrods`` file for another workspace."""
        store = self._store(name)
        if not store.exists():
            raise DatasetNotFoundError(f"no dataset {name!r} in {self.path}")
        return archive.export_dataset(store, Path(file))

    def import_dataset(self, file: str | os.PathLike[str], name: str | None = None) -> Dataset:
        """Add an exported dataset, under its original name or ``name``."""
        file = Path(file)
        if not file.is_file():
            raise AstrocyteError(f"{file}: no such file")
        name = check_name(name or archive.read_dataset_manifest(file)["name"])
        store = self._store(name)
        if store.root.exists():
            raise NameConflictError(f"a dataset named {name!r} already exists: import it under another name")
        archive.import_dataset(file, store.root)
        return Dataset(store)

    def merge_datasets(self, target: str, sources: Sequence[str]) -> Dataset:
        """Append the images of ``sources`` into ``target`` and save it (the sources stay as they are)."""
        dataset = self.dataset(target)
        for name in sources:
            if name == target:
                raise AstrocyteError(f"cannot merge dataset {name!r} into itself")
            dataset.absorb(self.dataset(name))
        dataset.save()
        return dataset

    # -- trained models -------------------------------------------------------------------------------
    @property
    def model_store(self) -> ModelStore:
        return ModelStore(self.path / "models")

    def models(self) -> list[ModelInfo]:
        """Name, module, input size, categories, creation time, training duration and metrics of each readable
        model; a damaged one is left out and reported by :meth:`broken`."""
        return self.model_listing()[0]

    def model_listing(self) -> tuple[list[ModelInfo], list[BrokenItem]]:
        """The readable models and the unreadable ones (with why), from one scan (each record is read once)."""
        store = self.model_store
        infos, broken = [], []
        for name in store.names():
            try:
                info = store.info(name)
                if not (store.folder(name) / "weights.safetensors").is_file():
                    raise AstrocyteError(f"{store.folder(name)}: no weights.safetensors")
                infos.append(info)
            except Exception as exc:  # noqa: BLE001 - one damaged model must not break the listing
                broken.append(BrokenItem("model", name, _reason(exc)))
        return infos, broken

    def broken(self) -> list[BrokenItem]:
        """The datasets and models that cannot be read, each with the reason (listings leave them out)."""
        return self.dataset_listing()[1] + self.model_listing()[1]

    def delete_model(self, name: str) -> None:
        self.model_store.delete(name)

    def rename_model(self, old: str, new: str) -> None:
        self.model_store.rename(old, new)

    def export_model(self, name: str, file: str | os.PathLike[str]) -> Path:
        """The trained model (weights and record) as one ``.astrotrained`` file for another workspace."""
        return self.model_store.export(name, Path(file))

    def import_model(self, file: str | os.PathLike[str], name: str | None = None) -> str:
        return self.model_store.import_(Path(file), name)

    # -- backup -----------------------------------------------------------------------------------------
    def backup(self, file: str | os.PathLike[str]) -> Path:
        """Save the whole workspace into one tar file (close training jobs first)."""
        return archive.backup_workspace(self.path, Path(file))

    @classmethod
    def restore(cls, file: str | os.PathLike[str], path: str | os.PathLike[str] | None = None,
                overwrite: bool = False) -> Workspace:
        """Recreate a workspace from a backup file."""
        root = Path(path).expanduser() if path is not None else default_home()
        archive.restore_workspace(Path(file), root, overwrite)
        return cls(root)
