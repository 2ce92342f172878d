"""What the App's panels share: the workspace, the module, the chosen dataset and model.

Panels observe the traits (``dataset_name``, ``model_name``, ``revision``) instead of calling each other,
and every panel edits the same open :class:`~astrocyte_lab.data.dataset.Dataset` object, so an annotation
drawn in one view is the one saved from another.
"""

from __future__ import annotations

import traitlets

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace


class AppState(traitlets.HasTraits):
    dataset_name = traitlets.Unicode(None, allow_none=True)
    model_name = traitlets.Unicode(None, allow_none=True)
    revision = traitlets.Int(0)  # bumped whenever datasets or models are added, removed or renamed

    def __init__(self, workspace: Workspace, module: str, read_only: bool = False) -> None:
        super().__init__()
        self.workspace = workspace
        self.module = module
        self.read_only = read_only
        self._open: dict[str, Dataset] = {}

    def dataset_names(self) -> list[str]:
        """Datasets of this module, by name."""
        return [info.name for info in self.workspace.datasets() if info.module == self.module]

    def model_names(self) -> list[str]:
        return [info.name for info in self.workspace.models() if info.module == self.module]

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
