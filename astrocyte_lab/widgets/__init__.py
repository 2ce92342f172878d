"""Notebook user interface: the App and its panels (ipywidgets, ipycanvas, bqplot) over the engine.

Imported lazily, so ``import astrocyte_lab.widgets`` stays cheap until a panel is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "App": "astrocyte_lab.widgets.app",
    "AppState": "astrocyte_lab.widgets.state",
    "DatasetPanel": "astrocyte_lab.widgets.dataset_panel",
    "TrainingPanel": "astrocyte_lab.widgets.training_panel",
    "ModelsPanel": "astrocyte_lab.widgets.models_panel",
    "InferencePanel": "astrocyte_lab.widgets.inference_panel",
    "LivePlot": "astrocyte_lab.widgets.live_plot",
    "ConfusionMatrixView": "astrocyte_lab.widgets.results",
    "RocView": "astrocyte_lab.widgets.results",
    "AnnotationCanvas": "astrocyte_lab.widgets.canvas",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'astrocyte_lab.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
