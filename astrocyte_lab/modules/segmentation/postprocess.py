"""From class probabilities to masks, metrics and blob measures (shared by testing and tutorials)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ABSENT = -1.0  # IoU of a category absent from both ground truth and prediction


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Pixel confusion matrix ``(K, K)``: rows ground truth, columns prediction (``valid`` masks pixels in)."""
    t, p = truth.reshape(-1).astype(np.int64), predicted.reshape(-1).astype(np.int64)
    keep = (t >= 0) & (t < classes)
    if valid is not None:
        keep &= valid.reshape(-1)
    return np.bincount(t[keep] * classes + p[keep], minlength=classes * classes).reshape(classes, classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU per category; -1 where the category is in neither ground truth nor prediction (0 when it is in the
    ground truth but never predicted)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), ABSENT)


def mean_iou(ious: np.ndarray) -> float:
    present = ious[ious >= 0]
    return float(present.mean()) if present.size else 0.0


def pixel_accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


@dataclass(frozen=True)
class Blob:
    """One connected region of a predicted category, with the measures inspection rules use."""

    category: str
    area: int
    perimeter: float
    elongation: float  # long side / short side of the tightest rotated box (1 = round or square)
    bbox: tuple[int, int, int, int]  # x, y, w, h


def blobs(mask: np.ndarray, categories: list[str], background: int = 0, min_area: int = 1) -> list[Blob]:
    """Connected regions of every non-background category in a class-index mask."""
    found: list[Blob] = []
    for index in np.unique(mask):
        if int(index) == background or int(index) >= len(categories):
            continue
        binary = (mask == index).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            region = np.zeros_like(binary)
            cv2.drawContours(region, [contour], -1, 1, thickness=-1)
            area = int((region & binary).sum())
            if area < min_area:
                continue
            (_, _), (w, h), _ = cv2.minAreaRect(contour)
            long_side, short_side = max(w, h, 1.0), max(min(w, h), 1.0)
            x, y, bw, bh = cv2.boundingRect(contour)
            found.append(Blob(categories[int(index)], area, float(cv2.arcLength(contour, True)),
                              float(long_side / short_side), (x, y, bw, bh)))
    return found


def colour_overlay(image: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None, colours: np.ndarray,
                   background: int = 0, alpha: float = 0.55) -> np.ndarray:
    """RGB view: prediction filled with each category's colour, ground truth drawn as outlines."""
    base = image if image.ndim == 3 else image[:, :, None]
    if base.dtype != np.uint8:
        base = (base.astype(np.float64) / max(float(base.max()), 1.0) * 255).astype(np.uint8)
    rgb = np.repeat(base, 3, axis=2) if base.shape[2] == 1 else base.copy()
    fill = predicted != background
    rgb[fill] = ((1 - alpha) * rgb[fill] + alpha * colours[predicted[fill]]).astype(np.uint8)
    if truth is not None:
        for index in np.unique(truth):
            if int(index) == background:
                continue
            contours, _ = cv2.findContours((truth == index).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(rgb, contours, -1, tuple(int(c) for c in colours[int(index)]), 1)
    return rgb


def palette(classes: int) -> np.ndarray:
    """Distinct colours per category (background black)."""
    base = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]], np.uint8)
    if classes <= len(base):
        return base[:classes]
    rng = np.random.default_rng(0)
    return np.concatenate([base, rng.integers(40, 255, (classes - len(base), 3), dtype=np.uint8)])
