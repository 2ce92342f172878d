"""The exportable detection network (an Ultralytics YOLO model) and how a stored one is rebuilt."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.modules.detection import yolo
from astrocyte_lab.training.data import InputSpec
from astrocyte_lab.training.runner import stored_model, torch_state


class DetectionExport(nn.Module):
    """``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 4 + K [+ 1], A)`` decoded boxes, class scores (and angle)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.net(image)
        return out[0] if isinstance(out, tuple | list) else out


def network_from_record(record: dict, tensors: dict[str, np.ndarray]) -> nn.Module:
    section = record["detection"]
    net = yolo.build_model(section["yaml"], len(record["categories"]), bool(section["rotated"]))
    net.load_state_dict(torch_state(tensors))
    net.names = dict(enumerate(record["categories"]))
    return net.float().eval()


def load_network(workspace: Workspace, model_name: str) -> tuple[nn.Module, dict, InputSpec]:
    """A stored detection model as a PyTorch module (eval mode), its record and its input spec."""
    record, spec, tensors = stored_model(workspace, model_name, "detection")
    return network_from_record(record, tensors), record, spec


def torch_runner(net: nn.Module, device: torch.device | str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """``(N, 3, H, W)`` float32 batch -> the ``predictions`` array, with PyTorch (what the package reproduces)."""
    exported = DetectionExport(net).to(device).eval()

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        return exported(torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(device)).float().cpu().numpy()

    return run


def detector_metadata(record: dict, spec: InputSpec, **thresholds: object) -> dict:
    """The package metadata's runtime part for a stored model (the evaluation's Detector uses the same)."""
    section = record["detection"]
    detection = {"rotated": bool(section["rotated"]), "confidence": float(section["confidence"]),
                 "overlap": float(section["overlap"]), "max_detections": int(section["max_detections"]),
                 "class_agnostic": bool(section["class_agnostic"]), "tiling": section.get("tiling")}
    detection.update({k: v for k, v in thresholds.items() if v is not None})
    return {"module": "detection", "categories": list(record["categories"]), "input": spec.meta_input(),
            "roi": spec.meta_roi(), "outputs": {"predictions": "predictions"}, "detection": detection}
