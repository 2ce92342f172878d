"""Classification metrics from label lists: confusion matrix, per-class precision / recall / F1, accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(truth: list[str], predicted: list[str], rows: list[str], columns: list[str]) -> np.ndarray:
    """Counts with ground truth ``rows`` x predicted ``columns`` (labels outside them are not counted)."""
    matrix = np.zeros((len(rows), len(columns)), np.int64)
    row_index = {name: i for i, name in enumerate(rows)}
    col_index = {name: i for i, name in enumerate(columns)}
    for t, p in zip(truth, predicted, strict=True):
        if t in row_index and p in col_index:
            matrix[row_index[t], col_index[p]] += 1
    return matrix


def per_class(truth: list[str], predicted: list[str], classes: list[str]) -> dict[str, ClassMetrics]:
    out = {}
    truth_a, pred_a = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    for name in classes:
        tp = int(np.sum((truth_a == name) & (pred_a == name)))
        fp = int(np.sum((truth_a != name) & (pred_a == name)))
        fn = int(np.sum((truth_a == name) & (pred_a != name)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = ClassMetrics(precision, recall, f1, int(np.sum(truth_a == name)))
    return out


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)])) if truth else 0.0


def macro_f1(metrics: dict[str, ClassMetrics]) -> float:
    present = [m.f1 for m in metrics.values() if m.support > 0]
    return float(np.mean(present)) if present else 0.0
