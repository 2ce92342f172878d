"""astrocyte-lab: train machine-vision models (anomaly, classification, detection, segmentation) in JupyterLab.

Names are imported on first use, so ``import astrocyte_lab.runtime`` on a deployment machine does not pull in
the training stack (torch, zarr, xarray, OpenCV).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AstrocyteError": "astrocyte_lab.errors",
    "Dataset": "astrocyte_lab.data.dataset",
    "GenerationOptions": "astrocyte_lab.data.generate",
    "Location": "astrocyte_lab.data.sources",
    "NamedSet": "astrocyte_lab.data.sources",
    "DatabaseSet": "astrocyte_lab.data.sources",
    "segmentation_set": "astrocyte_lab.data.sources",
    "Workspace": "astrocyte_lab.data.workspace",
}

__all__ = ["AstrocyteError", "DatabaseSet", "Dataset", "GenerationOptions", "Location", "NamedSet", "Workspace",
           "__version__", "segmentation_set"]

if TYPE_CHECKING:
    from astrocyte_lab.data.dataset import Dataset
    from astrocyte_lab.data.generate import GenerationOptions
    from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet, segmentation_set
    from astrocyte_lab.data.workspace import Workspace
    from astrocyte_lab.errors import AstrocyteError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'astrocyte_lab' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter_server extension (REST API for the JupyterLab sidebar), loaded from ``astrocyte_lab.server``."""
    return [{"module": "astrocyte_lab.server"}]
