"""Views of detections: ground truth, pseudo labels and predictions drawn over an image (tutorials, panels).

Decoding and NMS live in the torch-free runtime (:mod:`astrocyte_lab.runtime.detection`), shared by testing
and deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from astrocyte_lab.data.annotations import Annotation, RotatedBox

TRUTH = (40, 200, 40)
PSEUDO = (255, 105, 180)  # the manual shows pseudo labels in pink
PREDICTED = (230, 40, 40)


def _rgb(image: np.ndarray) -> np.ndarray:
    base = image if image.ndim == 3 else image[:, :, None]
    if base.dtype != np.uint8:
        base = (base.astype(np.float64) / max(float(base.max()), 1.0) * 255).astype(np.uint8)
    return np.repeat(base, 3, axis=2) if base.shape[2] == 1 else np.ascontiguousarray(base[:, :, :3])


def draw_objects(image: np.ndarray, objects: Sequence[Annotation], colour: tuple[int, int, int] | None = None,
                 labels: bool = True, thickness: int = 1) -> np.ndarray:
    """An RGB copy of ``image`` with the annotations drawn (ground truth green, pseudo pink unless ``colour``)."""
    canvas = _rgb(image).copy()
    for a in objects:
        tint = colour or (PSEUDO if a.pseudo else TRUTH)
        points = np.round(a.corners()).astype(np.int32)
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], True, tint, thickness, cv2.LINE_AA)
        if labels:
            text = a.category if a.score is None else f"{a.category} {a.score:.2f}"
            x, y = int(points[:, 0].min()), int(points[:, 1].min())
            cv2.putText(canvas, text, (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, tint, 1, cv2.LINE_AA)
    return canvas


def compare(image: np.ndarray, truth: Sequence[Annotation], predicted: Sequence[Annotation]) -> np.ndarray:
    """Ground truth (green) and predictions (red, with scores) on one RGB image."""
    return draw_objects(draw_objects(image, truth, TRUTH, labels=False), predicted, PREDICTED)


def is_rotated(objects: Sequence[Annotation]) -> bool:
    return any(isinstance(a, RotatedBox) for a in objects)
