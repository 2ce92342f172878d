"""The state-level guard of a read-only App (``App(read_only=True)``, ``astrocyte-lab dashboard --read-only``).

The panels hide every editing control in read-only mode; this module is the second line: the App works on a
:class:`ReadOnlyWorkspace`, whose datasets, dataset stores and model store refuse every write with a
:class:`ReadOnlyError`. A code path that slips past the hidden controls (a test that would write its predictions
back, an anomaly threshold stored with its model, an export aimed into the workspace) therefore raises a clear
error instead of changing a file. Reading (lists, datasets, images, model records and weights) works as usual.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.models import ModelStore
from astrocyte_lab.data.store import DatasetStore
from astrocyte_lab.data.workspace import WORKSPACE_FILE, Workspace
from astrocyte_lab.errors import AstrocyteError


class ReadOnlyError(AstrocyteError):
    """An action that would write to the workspace of a read-only App."""


def refuse(root: Path, action: str) -> NoReturn:
    raise ReadOnlyError(f"{root}: read-only dashboard, cannot {action} (nothing in the workspace is changed)")


def check_outside(root: Path, target: str | os.PathLike[str], action: str) -> Path:
    """``target`` when it lies outside the workspace ``root`` (links resolved); inside it, refuse."""
    path = Path(target).expanduser()
    if path.resolve().is_relative_to(Path(root).resolve()):
        refuse(root, f"{action} into the workspace ({path})")
    return path


class ReadOnlyDatasetStore(DatasetStore):
    """A dataset folder that can be read but never written (no version, batch, lock file or clean-up)."""

    def save_table(self, table) -> str:
        refuse(self.root, "save a new version of the dataset")

    @contextmanager
    def locked(self) -> Iterator[None]:
        refuse(self.root, "save the dataset")
        yield  # pragma: no cover - never reached

    def new_batch(self, kind, count, shape, dtype):
        refuse(self.root, "write images or masks into the dataset")

    def collect_garbage(self, keep_batches=frozenset()) -> None:
        refuse(self.root, "remove old versions of the dataset")


class ReadOnlyModelStore(ModelStore):
    """The ``models/`` folder, read only: records and weights read; save, update, delete, rename, import refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # the parent creates the folder; read-only, a missing one is an empty list

    def names(self) -> list[str]:
        return super().names() if self.root.is_dir() else []

    def save(self, name, record, tensors, roi_mask=None, overwrite=False) -> Path:
        refuse(self.root, f"save model {name!r}")

    def update_record(self, name, /, **fields) -> None:
        refuse(self.root, f"change the record of model {name!r} ({', '.join(fields)})")

    def delete(self, name) -> None:
        refuse(self.root, f"delete model {name!r}")

    def rename(self, old, new) -> None:
        refuse(self.root, f"rename model {old!r}")

    def import_(self, file, name=None) -> str:
        refuse(self.root, f"import a model from {file}")

    def export(self, name, file) -> Path:
        return super().export(name, check_outside(self.root.parent, file, "export a model"))


class ReadOnlyWorkspace(Workspace):
    """A workspace opened without creating or changing anything; the folder must already be a workspace."""

    def __init__(self, path: str | os.PathLike[str]) -> None:  # noqa: D107 - no super().__init__: it writes
        root = Path(path).expanduser()
        if not (root / WORKSPACE_FILE).is_file():
            raise AstrocyteError(f"{root}: no workspace there; a read-only dashboard needs an existing workspace")
        self.path = root

    def dataset_names(self) -> list[str]:
        return super().dataset_names() if (self.path / "datasets").is_dir() else []

    def _store(self, name: str) -> DatasetStore:
        return ReadOnlyDatasetStore(super()._store(name).root)

    @property
    def model_store(self) -> ModelStore:
        return ReadOnlyModelStore(self.path / "models")

    def create_dataset(self, name, module, sets, *args, **kwargs) -> Dataset:
        refuse(self.path, f"create dataset {name!r}")

    def delete_dataset(self, name) -> None:
        refuse(self.path, f"delete dataset {name!r}")

    def rename_dataset(self, old, new) -> None:
        refuse(self.path, f"rename dataset {old!r}")

    def import_dataset(self, file, name=None) -> Dataset:
        refuse(self.path, f"import a dataset from {file}")

    def merge_datasets(self, target, sources) -> Dataset:
        refuse(self.path, f"merge into dataset {target!r}")

    def export_dataset(self, name, file) -> Path:
        return super().export_dataset(name, check_outside(self.path, file, "export a dataset"))

    def backup(self, file) -> Path:
        return super().backup(check_outside(self.path, file, "write a backup"))

    @classmethod
    def restore(cls, file, path=None, overwrite=False) -> NoReturn:
        refuse(Path(path or "workspace"), f"restore a backup from {file}")
