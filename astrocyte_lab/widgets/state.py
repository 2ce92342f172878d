"""What the App's panels share: the workspace, the module, the chosen dataset and model, read-only or not.

Panels observe the traits (``dataset_name``, ``model_name``, ``revision``) instead of calling each other,
and every panel edits the same open :class:`~astrocyte_lab.data.dataset.Dataset` object, so an annotation
drawn in one view is the one saved from another. A read-only state works on a
:class:`~astrocyte_lab.widgets.read_only.ReadOnlyWorkspace`: whatever a panel does, nothing is written to it.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import traitlets

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import BrokenItem, Workspace
from astrocyte_lab.widgets.read_only import ReadOnlyError, ReadOnlyWorkspace, check_outside

Method = TypeVar("Method", bound=Callable[..., Any])
#: keyword arguments of a module's evaluate function that make a test store something, and their read-only value
STORING_OPTIONS = {"write_back": False, "store_threshold": False}


class AppState(traitlets.HasTraits):
    dataset_name = traitlets.Unicode(None, allow_none=True)
    model_name = traitlets.Unicode(None, allow_none=True)
    revision = traitlets.Int(0)  # bumped whenever datasets or models are added, removed or renamed

    def __init__(self, workspace: Workspace, module: str, read_only: bool = False) -> None:
        super().__init__()
        if read_only and not isinstance(workspace, ReadOnlyWorkspace):
            workspace = ReadOnlyWorkspace(workspace.path)
        self.workspace = workspace
        self.module = module
        self.read_only = read_only
        self._open: dict[str, Dataset] = {}

    def dataset_names(self) -> list[str]:
        """Datasets of this module, by name."""
        return [info.name for info in self.workspace.datasets() if info.module == self.module]

    def model_names(self) -> list[str]:
        return [info.name for info in self.workspace.models() if info.module == self.module]

    def broken(self, kind: str) -> list[BrokenItem]:
        """The datasets or models (``kind``) of the workspace that cannot be read, whatever their module."""
        listing = self.workspace.dataset_listing if kind == "dataset" else self.workspace.model_listing
        return listing()[1]

    def dataset(self, name: str | None = None) -> Dataset | None:
        """The open dataset called ``name`` (default: the chosen one), shared by every panel."""
        name = name or self.dataset_name
        if not name:
            return None
        if name not in self._open:
            self._open[name] = self.workspace.dataset(name)
        return self._open[name]

    def forget(self, name: str) -> None:
        """Drop an open dataset (deleted, renamed, or replaced on disk)."""
        self._open.pop(name, None)

    def changed(self) -> None:
        """Tell observers that the lists of datasets or models changed."""
        self.revision += 1

    # -- read-only -------------------------------------------------------------------------------------------
    def require_writable(self, action: str) -> None:
        """Refuse ``action`` (which writes to the workspace) in read-only mode."""
        if self.read_only:
            raise ReadOnlyError(f"{self.workspace.path}: read-only dashboard, cannot {action}")

    def target(self, path: str | os.PathLike[str], action: str) -> Path:
        """A file to write ``path`` for ``action``; read-only mode refuses one inside the workspace."""
        if self.read_only:
            return check_outside(self.workspace.path, path, action)
        return Path(path).expanduser()

    def test_options(self, evaluate: Callable[..., Any]) -> dict[str, bool]:
        """Keyword arguments for a module's ``evaluate``: none normally; read-only, those that keep a test from
        storing its predictions (or a threshold). A test that cannot be kept from writing is refused."""
        if not self.read_only:
            return {}
        accepted = inspect.signature(evaluate).parameters
        if "write_back" not in accepted:
            self.require_writable("test a model: this module's test always stores its predictions")
        return {key: value for key, value in STORING_OPTIONS.items() if key in accepted}


def editing(action: str) -> Callable[[Method], Method]:
    """Mark a panel method that writes (or edits what can be saved): in read-only mode it raises
    :class:`ReadOnlyError` naming ``action`` instead of running. The panel needs a ``state`` attribute."""
    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            self.state.require_writable(action)
            return method(self, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
