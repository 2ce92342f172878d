"""Export a stored classifier as a deployable ``.astromodel`` package (ONNX graph + JSON metadata)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import torch

from astrocyte_lab import __version__
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.modules.classification.model import ExportWrapper
from astrocyte_lab.modules.classification.trainer import load_network
from astrocyte_lab.runtime.package import write_package
from astrocyte_lab.training.onnx_export import export_onnx


def export_package(workspace: Workspace, model_name: str, destination: str | Path) -> Path:
    """Write ``destination`` (``.astromodel``): the network as ONNX with logits and embedding outputs, the
    input contract (size, channels, bit depth, normalisation, ROI crop and mask) and, for continual models,
    the class prototypes and the Undefined threshold."""
    net, record, spec = load_network(workspace, model_name)
    onnx_bytes = to_onnx(ExportWrapper(net).eval(), spec.channels, spec.height, spec.width)
    continual = record.get("continual")
    prototypes = None
    meta_continual = None
    if continual:
        tensors = workspace.model_store.tensors(model_name)
        prototypes = tensors["continual.prototypes"]
        meta_continual = {**continual, "prototypes": "prototypes.npy"}
    metadata = {
        "format": "astromodel", "module": "classification", "name": model_name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "producer": f"astrocyte-lab {__version__}",
        "architecture": record["architecture"], "categories": list(record["categories"]),
        "input": spec.meta_input(), "roi": spec.meta_roi(), "outputs": {"logits": "logits", "embedding": "embedding"},
        "thresholds": {}, "continual": meta_continual, "metrics": record.get("metrics", {}),
    }
    return write_package(Path(destination), onnx_bytes, metadata, roi_mask=spec.roi_mask, prototypes=prototypes)


def to_onnx(module: torch.nn.Module, channels: int, height: int, width: int) -> bytes:
    """Trace ``module`` (one input ``image``, outputs ``logits`` and ``embedding``) into ONNX bytes."""
    return export_onnx(module, torch.zeros(1, channels, height, width), input_name="image",
                       output_names=["logits", "embedding"])
