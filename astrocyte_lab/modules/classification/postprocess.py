"""Scores to labels, shared by testing and the runtime: softmax, and the continual prototype head."""

from __future__ import annotations

import numpy as np

UNDEFINED = "Undefined"
DEFAULT_TEMPERATURE = 10.0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def normalise_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prototypes_from(embeddings: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean of L2-normalised embeddings, and the sample count per class."""
    unit = normalise_rows(embeddings.astype(np.float32))
    protos = np.zeros((classes, unit.shape[1]), np.float32)
    counts = np.zeros(classes, np.int64)
    for k in range(classes):
        members = unit[labels == k]
        counts[k] = len(members)
        if len(members):
            protos[k] = members.mean(axis=0)
    return protos, counts


def similarities(embeddings: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine similarity of each embedding to each class prototype, ``(N, K)``."""
    return normalise_rows(embeddings.astype(np.float32)) @ normalise_rows(prototypes).T


def undefined_threshold(sims: np.ndarray, labels: np.ndarray, margin: float) -> float:
    """Similarity below which an image belongs to no known class.

    "Far from every class" is calibrated on the known classes themselves: an image less similar to its
    nearest prototype than training images usually are to a *different* known class (5th percentile) is
    Undefined. That leaves room for classes learned later from a few samples, whose prototypes are rougher
    than those of the trained classes. The value never exceeds the own-class 5th percentile less ``margin``;
    with one class only, that rule alone applies.
    """
    if not sims.size:
        return 0.5
    rows = np.arange(len(labels))
    own = sims[rows, labels]
    ceiling = float(max(0.0, np.percentile(own, 5) - margin))
    if sims.shape[1] < 2:
        return ceiling
    others = sims.copy()
    others[rows, labels] = -np.inf
    return float(max(0.0, min(ceiling, np.percentile(others.max(axis=1), 5))))
