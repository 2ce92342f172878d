"""The App: four tabs over one workspace and module, as a notebook cell or a Voila dashboard.

>>> from astrocyte_lab.widgets import App
>>> App(module="classification")          # the workspace at $ASTROCYTE_HOME (or ~/astrocyte-workspace)

Each panel is also usable alone (``DatasetPanel(AppState(workspace, module)).widget``).
``read_only=True`` (the ``--read-only`` dashboard) hides every editing control and opens the workspace so that
nothing can write to it: a model is tested without storing its predictions, inference packages are built in a
temporary folder, and an existing workspace is required (none is created).
"""

from __future__ import annotations

import os

import ipywidgets as widgets

from astrocyte_lab.data.categories import MODULES
from astrocyte_lab.data.workspace import Workspace, default_home
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.widgets.dataset_panel import DatasetPanel
from astrocyte_lab.widgets.inference_panel import InferencePanel
from astrocyte_lab.widgets.models_panel import ModelsPanel
from astrocyte_lab.widgets.read_only import ReadOnlyWorkspace
from astrocyte_lab.widgets.state import AppState
from astrocyte_lab.widgets.training_panel import TrainingPanel

TITLES = ("Dataset", "Training", "Trained models", "Inference")
STYLE = """<style>
.astro-table {border-collapse: collapse; font-size: 12px; margin: 4px 0}
.astro-table th, .astro-table td {border: 1px solid #ccc; padding: 2px 6px; text-align: left}
.astro-table th {background: #f3f5f7}
.astro-title {font-size: 18px; font-weight: 600; color: #123; margin: 2px 0 6px 0}
.astro-list select {font-family: var(--jp-code-font-family, monospace); font-size: 12px}
</style>"""


class App:
    """The Dataset, Training, Trained models and Inference tabs of one module."""

    def __init__(self, workspace: Workspace | str | os.PathLike[str] | None = None, module: str = "classification",
                 read_only: bool = False) -> None:
        if module not in MODULES:
            raise AstrocyteError(f"unknown module {module!r}; choose from {', '.join(MODULES)}")
        if not isinstance(workspace, Workspace):
            workspace = ReadOnlyWorkspace(workspace or default_home()) if read_only else Workspace(workspace)
        self.state = AppState(workspace, module, read_only)
        self.dataset = DatasetPanel(self.state)
        self.training = TrainingPanel(self.state)
        self.models = ModelsPanel(self.state)
        self.inference = InferencePanel(self.state)
        self.tabs = widgets.Tab([self.dataset.widget, self.training.widget, self.models.widget,
                                 self.inference.widget], titles=TITLES)
        mode = " &middot; read-only" if read_only else ""
        header = widgets.HTML(f"{STYLE}<div class='astro-title'>astrocyte-lab &middot; {module}{mode}</div>"
                              f"<div style='color:#567;font-size:12px'>workspace {workspace.path}</div>")
        self.widget = widgets.VBox([header, self.tabs])
        self.widget.add_class("astrocyte-app")

    def select_tab(self, title: str) -> None:
        self.tabs.selected_index = TITLES.index(title)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
