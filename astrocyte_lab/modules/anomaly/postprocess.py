"""Scores to decisions: ROC curve, AUROC / AUPR, the default threshold, pixel AUROC (numpy + scikit-learn).

Scores are anomaly scores (higher = more anomalous); an image is an anomaly when ``score >= threshold``.
The default threshold is the ROC point closest to the top-left corner (FPR 0, TPR 1), as the manual
recommends; any other point of the curve may be picked instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    """Every operating point: ``fpr[i]`` / ``tpr[i]`` when images with ``score >= thresholds[i]`` are anomalies.

    Thresholds decrease along the arrays; the first point (0, 0) has a threshold above every score.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def closest_to_corner(self) -> int:
        """Index of the point nearest (FPR 0, TPR 1); the higher threshold wins a tie."""
        return int(np.argmin(self.fpr ** 2 + (1.0 - self.tpr) ** 2))

    def index_of(self, *, threshold: float | None = None, fpr: float | None = None) -> int:
        """The point of a given threshold (the lowest listed one still >= it) or the best TPR at FPR <= ``fpr``."""
        if threshold is not None:
            above = np.flatnonzero(self.thresholds >= threshold)
            return int(above[-1]) if above.size else 0
        if fpr is not None:
            allowed = np.flatnonzero(self.fpr <= fpr)
            return int(allowed[np.argmax(self.tpr[allowed])])
        raise ValueError("give a threshold or an fpr")

    def to_dict(self) -> dict[str, list[float]]:
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(), "thresholds": self.thresholds.tolist()}


def roc(is_anomaly: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> RocCurve:
    """The ROC curve of image scores against ground truth (both classes must be present)."""
    from sklearn.metrics import roc_curve

    truth, values = _checked(is_anomaly, scores)
    fpr, tpr, thresholds = roc_curve(truth, values, drop_intermediate=False)
    thresholds = thresholds.astype(np.float64)
    top = float(values.max())
    thresholds[0] = np.nextafter(top, np.inf) if np.isinf(thresholds[0]) else thresholds[0]
    return RocCurve(fpr.astype(np.float64), tpr.astype(np.float64), thresholds)


def auroc(is_anomaly: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    truth, values = _checked(is_anomaly, scores)
    return float(roc_auc_score(truth, values))


def aupr(is_anomaly: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the precision-recall curve of the anomaly class (average precision)."""
    from sklearn.metrics import average_precision_score

    truth, values = _checked(is_anomaly, scores)
    return float(average_precision_score(truth, values))


def default_threshold(is_anomaly: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    curve = roc(is_anomaly, scores)
    return float(curve.thresholds[curve.closest_to_corner()])


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float | None:
    """AUROC of anomaly-map values against defect masks over all pixels (None without defect pixels)."""
    from sklearn.metrics import roc_auc_score

    if not masks:
        return None
    truth = np.concatenate([np.asarray(m, bool).reshape(-1) for m in masks])
    values = np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in maps])
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, values))


def _checked(is_anomaly, scores) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(is_anomaly, dtype=bool).reshape(-1)
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if truth.shape != values.shape:
        raise ValueError(f"{truth.size} labels for {values.size} scores")
    if truth.all() or not truth.any():
        raise ValueError("ROC / AUROC / AUPR need both normal and anomalous images")
    return truth, values
