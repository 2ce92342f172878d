"""Export a stored segmentation model as a deployable ``.astromodel`` package."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import torch

from astrocyte_lab import __version__
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.modules.segmentation.model import SegmentationExport
from astrocyte_lab.modules.segmentation.trainer import load_network
from astrocyte_lab.runtime.package import write_package
from astrocyte_lab.training.onnx_export import export_onnx


def export_package(workspace: Workspace, model_name: str, destination: str | Path) -> Path:
    """ONNX graph with one ``probabilities`` output (softmax inside) plus the input, ROI and tiling contract."""
    net, record, spec = load_network(workspace, model_name)
    example = torch.zeros(1, spec.channels, spec.height, spec.width)
    graph = export_onnx(SegmentationExport(net).eval(), example, input_name="image", output_names=["probabilities"])
    metadata = {
        "format": "astromodel", "module": "segmentation", "name": model_name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "producer": f"astrocyte-lab {__version__}",
        "architecture": record["architecture"], "categories": list(record["categories"]),
        "input": spec.meta_input(), "roi": spec.meta_roi(), "outputs": {"probabilities": "probabilities"},
        "thresholds": {}, "continual": None, "metrics": record.get("metrics", {}),
        "segmentation": record["segmentation"],
    }
    return write_package(Path(destination), graph, metadata, roi_mask=spec.roi_mask)
