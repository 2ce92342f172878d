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

    def load(self, what: str) -> Callable[..., Any]:
        target = getattr(self, what)
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


MODULES: dict[str, ModuleEntry] = {
    "classification": ModuleEntry(
        "astrocyte_lab.modules.classification.config:ClassificationConfig",
        "astrocyte_lab.modules.classification.trainer:train_job",
        "astrocyte_lab.evaluation.classification:evaluate_classifier",
        "astrocyte_lab.modules.classification.export:export_package"),
    "segmentation": ModuleEntry(
        "astrocyte_lab.modules.segmentation.config:SegmentationConfig",
        "astrocyte_lab.modules.segmentation.trainer:train_job",
        "astrocyte_lab.evaluation.segmentation:evaluate_segmenter",
        "astrocyte_lab.modules.segmentation.export:export_package"),
}


def entry(module: str) -> ModuleEntry:
    if module not in MODULES:
        raise AstrocyteError(f"training {module} models is not available yet; available: {sorted(MODULES)}")
    return MODULES[module]
