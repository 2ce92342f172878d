"""Which code trains, tests and exports each module: one explicit table, resolved lazily so that using one
module does not import the others' libraries."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from astrocyte_lab.errors import AstrocyteError


@dataclass(frozen=True)
class ModuleEntry:
    config: str  # "package.module:Name"
    train_job: str
    evaluate: str
    export: str
    architectures: str = ""  # "package.module:TABLE", a dict of the architectures offered (UI choices)

    def load(self, what: str) -> Callable[..., Any]:
        target = getattr(self, what)
        module, _, name = target.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            raise AstrocyteError(f"this astrocyte-lab has no {what} for this module yet ({module} is missing)") from exc


MODULES: dict[str, ModuleEntry] = {
    "anomaly": ModuleEntry(
        "astrocyte_lab.modules.anomaly.config:AnomalyConfig",
        "astrocyte_lab.modules.anomaly.trainer:train_job",
        "astrocyte_lab.evaluation.anomaly:evaluate_anomaly",
        "astrocyte_lab.modules.anomaly.export:export_package"),
    "classification": ModuleEntry(
        "astrocyte_lab.modules.classification.config:ClassificationConfig",
        "astrocyte_lab.modules.classification.trainer:train_job",
        "astrocyte_lab.evaluation.classification:evaluate_classifier",
        "astrocyte_lab.modules.classification.export:export_package",
        "astrocyte_lab.modules.classification.registry:ARCHITECTURES"),
    "detection": ModuleEntry(
        "astrocyte_lab.modules.detection.config:DetectionConfig",
        "astrocyte_lab.modules.detection.trainer:train_job",
        "astrocyte_lab.evaluation.detection:evaluate_detector",
        "astrocyte_lab.modules.detection.export:export_package"),
    "segmentation": ModuleEntry(
        "astrocyte_lab.modules.segmentation.config:SegmentationConfig",
        "astrocyte_lab.modules.segmentation.trainer:train_job",
        "astrocyte_lab.evaluation.segmentation:evaluate_segmenter",
        "astrocyte_lab.modules.segmentation.export:export_package",
        "astrocyte_lab.modules.segmentation.registry:SEGMENTATION_ARCHITECTURES"),
}


def architecture_names(module: str) -> list[str]:
    """The architectures ``module`` offers, or an empty list when its table is not registered."""
    module_entry = entry(module)
    if not module_entry.architectures:
        return []
    return list(module_entry.load("architectures"))


def entry(module: str) -> ModuleEntry:
    if module not in MODULES:
        raise AstrocyteError(f"training {module} models is not available yet; available: {sorted(MODULES)}")
    return MODULES[module]
