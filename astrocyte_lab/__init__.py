"""astrocyte-lab: train machine-vision models (anomaly, classification, detection, segmentation) in JupyterLab."""

from __future__ import annotations

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.sources import Location, NamedSet, segmentation_set
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError

__version__ = "0.1.0"

__all__ = ["AstrocyteError", "Dataset", "GenerationOptions", "Location", "NamedSet", "Workspace", "__version__",
           "segmentation_set"]
