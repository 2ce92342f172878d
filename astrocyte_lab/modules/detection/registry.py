"""The detection architectures on offer: one explicit table over Ultralytics YOLOv8 model definitions.

The manual's Nano / Small / Large map onto YOLOv8 n / s / l. Each has a regular (axis-aligned box) and a
rotated (oriented box, "OBB") variant; the network is built from Ultralytics' bundled ``.yaml`` definition,
never from a named ``.pt`` file (those download). Pretrained weights are used only when a local file exists:
``$ASTROCYTE_WEIGHTS/<weights>.safetensors`` (or ``.pt`` / ``.pth`` holding a plain state dict).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectionArchitecture:
    name: str  # nano | small | large
    boxes: str  # yaml for axis-aligned boxes
    rotated: str  # yaml for rotated boxes
    description: str

    def yaml(self, rotated: bool) -> str:
        return self.rotated if rotated else self.boxes

    def weights_name(self, rotated: bool) -> str:
        """Base name of a local pretrained file (``yolov8n`` / ``yolov8n-obb``...)."""
        return self.yaml(rotated).removesuffix(".yaml")


DETECTION_ARCHITECTURES: dict[str, DetectionArchitecture] = {
    "nano": DetectionArchitecture("nano", "yolov8n.yaml", "yolov8n-obb.yaml",
                                  "YOLOv8-n: ~3 M parameters, for CPUs and embedded devices"),
    "small": DetectionArchitecture("small", "yolov8s.yaml", "yolov8s-obb.yaml",
                                   "YOLOv8-s: ~11 M parameters (default)"),
    "large": DetectionArchitecture("large", "yolov8l.yaml", "yolov8l-obb.yaml",
                                   "YOLOv8-l: ~44 M parameters, most accurate, needs a GPU to train"),
}
DEFAULT_DETECTION_ARCHITECTURE = "small"
