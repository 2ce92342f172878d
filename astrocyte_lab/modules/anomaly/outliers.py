"""Synthetic anomalies made from normal images, for outlier exposure (image-level models).

Both kinds act on a float image ``(H, W, C)`` in [0, 1] and change one random rectangle:

* ``noise``: the rectangle gets strong Gaussian noise around its own mean (texture destroyed);
* ``cutpaste``: a rectangle cut from elsewhere in the same image, flipped, brightness-shifted and pasted in
  (texture present but out of place, as in CutPaste, Li et al. 2021).
"""

from __future__ import annotations

import numpy as np

KINDS: tuple[str, ...] = ("noise", "cutpaste")


def _box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    h = int(rng.integers(max(2, height // 10), max(3, height // 4) + 1))
    w = int(rng.integers(max(2, width // 10), max(3, width // 4) + 1))
    return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


def synthetic_anomaly(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``image`` with one synthetic defect of ``kind`` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic anomaly {kind!r}; choose from {KINDS}")
    out = np.array(image, dtype=np.float32, copy=True)
    height, width = out.shape[:2]
    y, x, h, w = _box(rng, height, width)
    if kind == "noise":
        patch = out[y:y + h, x:x + w]
        out[y:y + h, x:x + w] = patch.mean() + rng.normal(0.0, 0.25, patch.shape).astype(np.float32)
    else:
        sy, sx = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        patch = out[sy:sy + h, sx:sx + w][::-1, ::-1] + np.float32(rng.choice([-1, 1]) * rng.uniform(0.1, 0.3))
        out[y:y + h, x:x + w] = patch
    return np.clip(out, 0.0, 1.0)
