"""Pictures of images and results for display: 8-bit RGB views, thumbnails, boxes, masks, heatmaps.

Shared by the notebook panels (which only encode the arrays as PNG) and by anything else that wants to show
a result; no widget code here.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from astrocyte_lab.data.annotations import Annotation, Polygon
from astrocyte_lab.modules.segmentation.postprocess import palette

PSEUDO_COLOUR = (255, 170, 0)
PREDICTION_COLOUR = (0, 200, 255)


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 view of a grey or RGB, 8- or 16-bit image (16-bit stretched to its range)."""
    array = image if image.ndim == 3 else image[:, :, None]
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array = ((array.astype(np.float32) - low) * scale).clip(0, 255).astype(np.uint8)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else np.ascontiguousarray(array[:, :, :3])


def thumbnail(image: np.ndarray, size: int = 96) -> np.ndarray:
    """A display view whose longer side is ``size`` pixels."""
    rgb = display_rgb(image)
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA)


def category_colours(categories: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """A stable colour per category (the segmentation palette, first colour skipped: it is black)."""
    colours = palette(len(categories) + 1)[1:]
    return {name: tuple(int(c) for c in colours[i]) for i, name in enumerate(categories)}


def draw_objects(rgb: np.ndarray, objects: Sequence[Annotation], colours: dict[str, tuple[int, int, int]],
                 predicted: bool = False, thickness: int = 2) -> np.ndarray:
    """Outline boxes, rotated boxes and polygons on a copy of ``rgb``; pseudo labels and predictions get their
    own colour, predictions carry their score."""
    out = rgb.copy()
    for ann in objects:
        colour = PREDICTION_COLOUR if predicted else PSEUDO_COLOUR if ann.pseudo else colours.get(ann.category,
                                                                                                  (255, 0, 0))
        points = np.round(ann.corners()).astype(np.int32)
        cv2.polylines(out, [points], isClosed=True, color=colour, thickness=thickness, lineType=cv2.LINE_AA)
        text = ann.category if ann.score is None else f"{ann.category} {ann.score:.2f}"
        if not isinstance(ann, Polygon) or predicted:
            x, y = int(points[:, 0].min()), int(points[:, 1].min())
            cv2.putText(out, text, (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def overlay_mask(rgb: np.ndarray, predicted: np.ndarray | None, truth: np.ndarray | None, categories: Sequence[str],
                 background: int = 0, alpha: float = 0.5) -> np.ndarray:
    """Prediction filled with category colours, ground truth as outlines (segmentation or anomaly masks)."""
    colours = palette(max(len(categories), 2))
    out = rgb.copy()
    if predicted is not None:
        pred = predicted.astype(np.intp)
        fill = pred != background
        out[fill] = ((1 - alpha) * out[fill] + alpha * colours[pred[fill]]).astype(np.uint8)
    if truth is not None:
        for index in np.unique(truth.astype(np.intp)):
            if int(index) == background:
                continue
            binary = (truth.astype(np.intp) == index).astype(np.uint8)
            contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            colour = tuple(int(c) for c in colours[int(index)]) if int(index) < len(colours) else (255, 0, 0)
            cv2.drawContours(out, contours, -1, colour, 1)
    return out


def overlay_heatmap(rgb: np.ndarray, heatmap: np.ndarray, low: float | None = None, high: float | None = None,
                    alpha: float = 0.45) -> np.ndarray:
    """A heatmap (any float range, resized to the image) blended over ``rgb`` with the JET colour map;
    values below ``low`` are left uncoloured."""
    heat = cv2.resize(heatmap.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    lo = float(heat.min()) if low is None else float(low)
    hi = float(heat.max()) if high is None else float(high)
    scaled = np.clip((heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat), 0, 1)
    coloured = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    shown = heat >= lo
    out = rgb.copy()
    out[shown] = ((1 - alpha) * out[shown] + alpha * coloured[shown]).astype(np.uint8)
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB (or grey) uint8 array."""
    array = rgb if rgb.ndim == 2 else rgb[:, :, ::-1]
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("the image could not be encoded as PNG")
    return data.tobytes()
