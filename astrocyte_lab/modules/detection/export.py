"""Export a stored detection model as a deployable ``.astromodel`` package (ONNX + metadata)."""

from __future__ import annotations

import copy
import datetime as _dt
from pathlib import Path

import numpy as np
import torch

from astrocyte_lab import __version__
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.detection.model import DetectionExport, detector_metadata, load_network
from astrocyte_lab.runtime.detection import validate_metadata
from astrocyte_lab.runtime.package import write_package
from astrocyte_lab.training.data import InputSpec
from astrocyte_lab.training.onnx_export import export_onnx

FLOAT_NODES = ("dfl",)  # the box-distribution convolution stays in float in an int8 package


def export_package(workspace: Workspace, model_name: str, destination: str | Path, *,
                   confidence: float | None = None, overlap: float | None = None, max_detections: int | None = None,
                   class_agnostic: bool | None = None, int8: bool = False, calibration_images: int = 32) -> Path:
    """ONNX graph with one ``predictions`` output (decoded boxes + class scores [+ angle]; NMS runs in numpy at
    run time) and the thresholds (the model's unless given here), ROI and tiling contract.

    ``int8`` quantises the convolutions after export (:mod:`astrocyte_lab.training.quantize`), calibrated on up
    to ``calibration_images`` training images of the model's dataset preprocessed as the package does; the
    package records it under ``quantization``. Test the package itself (``evaluate_detector(...,
    package=path)``) to see what it costs in AP.
    """
    net, record, spec = load_network(workspace, model_name)
    runtime = detector_metadata(record, spec, confidence=confidence, overlap=overlap, max_detections=max_detections,
                                class_agnostic=class_agnostic)
    metadata = {
        "format": "astromodel", "name": model_name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "producer": f"astrocyte-lab {__version__}",
        "architecture": record["architecture"], "thresholds": {}, "continual": None,
        "metrics": record.get("metrics", {}), **runtime,
    }
    validate_metadata(metadata, "export")
    fused = copy.deepcopy(net).fuse(verbose=False) if hasattr(net, "fuse") else net
    example = torch.zeros(1, spec.channels, spec.height, spec.width)
    model = export_onnx(DetectionExport(fused).eval(), example, input_name="image", output_names=["predictions"])
    if int8:
        from astrocyte_lab.training.quantize import quantize_int8

        batches = _calibration_batches(workspace, record, spec, calibration_images)
        model, kept = quantize_int8(model, "image", batches, exclude=FLOAT_NODES)
        metadata["quantization"] = {"type": "int8", "calibration_images": len(batches), "float_nodes": kept}
    return write_package(Path(destination), model, metadata, roi_mask=spec.roi_mask)


def _calibration_batches(workspace: Workspace, record: dict, spec: InputSpec, count: int) -> list[np.ndarray]:
    """Up to ``count`` training images of the model's dataset as the package preprocesses them
    (``spec.to_tensor`` is the runtime's preprocessing with the package's input, ROI crop and mask)."""
    if count < 1:
        raise AstrocyteError(f"calibration_images must be at least 1, got {count}")
    name = record.get("dataset")
    if not name or name not in workspace.dataset_names():
        raise AstrocyteError(f"int8 export calibrates on the model's dataset {name!r}, which is not in the workspace")
    dataset = workspace.dataset(name)
    ids = [int(i) for i in dataset.select(assigned="train")] or [int(i) for i in dataset.ids]
    picked = [ids[int(k)] for k in np.linspace(0, len(ids) - 1, min(count, len(ids))).round().astype(int)]
    return [spec.to_tensor(dataset.image(i))[None] for i in dict.fromkeys(picked)]
