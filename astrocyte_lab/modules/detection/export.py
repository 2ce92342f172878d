"""Export a stored detection model as a deployable ``.astromodel`` package (ONNX + metadata)."""

from __future__ import annotations

import copy
import datetime as _dt
import io
import warnings
from pathlib import Path

import torch

from astrocyte_lab import __version__
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.modules.detection.model import DetectionExport, detector_metadata, load_network
from astrocyte_lab.runtime.detection import validate_metadata
from astrocyte_lab.runtime.package import write_package

OPSET = 17


def export_package(workspace: Workspace, model_name: str, destination: str | Path, *,
                   confidence: float | None = None, overlap: float | None = None, max_detections: int | None = None,
                   class_agnostic: bool | None = None) -> Path:
    """ONNX graph with one ``predictions`` output (decoded boxes + class scores [+ angle]; NMS runs in numpy at
    run time) and the thresholds (the model's unless given here), ROI and tiling contract."""
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
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(DetectionExport(fused).eval(), (example,), buffer, input_names=["image"],
                          output_names=["predictions"],
                          dynamic_axes={"image": {0: "batch"}, "predictions": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    return write_package(Path(destination), buffer.getvalue(), metadata, roi_mask=spec.roi_mask)
