"""Export a stored anomaly detector as a deployable ``.astromodel`` package (the runtime needs no torch)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import torch

from astrocyte_lab import __version__
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.anomaly.model import AnomalyExport
from astrocyte_lab.modules.anomaly.trainer import load_network
from astrocyte_lab.runtime.package import write_package
from astrocyte_lab.training.onnx_export import export_onnx


def export_package(workspace: Workspace, model_name: str, destination: str | Path, *,
                   threshold: float | None = None, heatmap_ratio: float | None = None) -> Path:
    """ONNX graph (features, memory-bank distances, anomaly map and score) plus the ``anomaly`` section.

    ``threshold`` and ``heatmap_ratio`` default to the model's (the threshold last chosen by testing, or
    the one fitted at training); see :mod:`astrocyte_lab.runtime.anomaly` for their meaning.
    """
    net, record, spec = load_network(workspace, model_name)
    section = dict(record["anomaly"])
    if threshold is not None:
        section["threshold"] = float(threshold)
    if heatmap_ratio is not None:
        if not heatmap_ratio > 0:
            raise AstrocyteError(f"the heatmap ratio must be positive, got {heatmap_ratio}")
        section["heatmap_ratio"] = float(heatmap_ratio)
    outputs = net.output_roles()
    example = torch.zeros(1, spec.channels, spec.height, spec.width)
    graph = export_onnx(AnomalyExport(net).eval(), example, input_name="image", output_names=list(outputs.values()))
    metadata = {
        "format": "astromodel", "module": "anomaly", "name": model_name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "producer": f"astrocyte-lab {__version__}",
        "architecture": record["architecture"], "categories": list(record["categories"]),
        "input": spec.meta_input(), "roi": spec.meta_roi(), "outputs": outputs,
        "thresholds": {"anomaly": section["threshold"], "heatmap_ratio": section["heatmap_ratio"]},
        "continual": None, "metrics": record.get("metrics", {}), "anomaly": section,
    }
    return write_package(Path(destination), graph, metadata, roi_mask=spec.roi_mask)
