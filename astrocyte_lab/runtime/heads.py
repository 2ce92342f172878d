"""Module-specific post-processing ("heads") for the torch-free predictor, one explicit table.

A head turns the raw ONNX outputs of a module's package into that module's results. Classification is
handled by :class:`~astrocyte_lab.runtime.predictor.Predictor` itself; every other module names a class here,
imported only when a package of that module is loaded.

A head class is built as ``Head(metadata, roi_mask, run, where)`` where ``run`` maps a preprocessed
``(N, C, H, W)`` float32 batch to the model's outputs keyed by ONNX output name, and provides:

``tiled`` (bool)
    True when each image is cut into tiles, so :meth:`Predictor.predict_batch` hands it one image at a time
    and ``batch_size`` then counts tiles.
``predict(images, batch_size) -> list``
    One result per ``(H, W)`` / ``(H, W, C)`` array; each result has a writable ``ms`` attribute.
``tunable`` and ``settings`` (optional)
    Names of run-time options (thresholds, overlap, ...) kept in the package's ``metadata[module]`` section,
    and the settings object holding their current values.

The head's module may also define ``validate_metadata(metadata, where)``, raising
:class:`~astrocyte_lab.runtime.errors.PackageError` for a module section that cannot be used; the package
reader calls it after the common checks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

RunOutputs = Callable[[np.ndarray], dict[str, np.ndarray]]

HEADS: dict[str, str] = {
    "anomaly": "astrocyte_lab.runtime.anomaly:AnomalyHead",
    "detection": "astrocyte_lab.runtime.detection:DetectionHead",
    "segmentation": "astrocyte_lab.runtime.segmentation:SegmentationHead",
}


class Head(Protocol):
    tiled: bool

    def predict(self, images: list[np.ndarray], batch_size: int) -> list[Any]: ...


class PackageHead:
    """What every head keeps from its package: settings, categories, input description, ROI and the model call.

    Subclasses name their ``settings_class`` (anything with ``from_metadata(metadata)`` and a ``tile`` field,
    None when the package is not tiled) and give ``run`` whatever their post-processing expects.
    """

    settings_class: Any
    tunable: tuple[str, ...] = ()  # settings a user may change at run time (Predictor.configure)

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None, run: Callable[[np.ndarray], Any],
                 where: str = "package") -> None:
        self.where = where
        self.settings = self.settings_class.from_metadata(metadata)
        self.categories = list(metadata["categories"])
        self.meta_input = dict(metadata["input"])
        self.roi = dict(metadata.get("roi") or {})
        self.roi_mask = roi_mask
        self._run = run

    @property
    def tiled(self) -> bool:
        return self.settings.tile is not None


def _resolve(module: str) -> tuple[Any, str] | None:
    target = HEADS.get(module)
    if target is None:
        return None
    path, _, name = target.partition(":")
    try:
        return importlib.import_module(path), name
    except ModuleNotFoundError as exc:
        if exc.name != path:
            raise
        from astrocyte_lab.runtime.errors import PackageError

        raise PackageError(f"this astrocyte-lab cannot run {module} packages ({path} is missing)") from exc


def make_head(module: str, metadata: Mapping[str, Any], roi_mask: np.ndarray | None, run: RunOutputs,
              where: str) -> Head | None:
    """The head for ``module``'s packages, or None when the predictor interprets the outputs itself."""
    resolved = _resolve(module)
    if resolved is None:
        return None
    python_module, name = resolved
    return getattr(python_module, name)(metadata, roi_mask, run, where)


def validate_module_metadata(module: str, metadata: Mapping[str, Any], where: str) -> None:
    """Run the head module's own metadata checks, when it has any."""
    resolved = _resolve(module)
    if resolved is None:
        return
    check = getattr(resolved[0], "validate_metadata", None)
    if check is not None:
        check(metadata, where)
