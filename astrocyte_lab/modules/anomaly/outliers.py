"""Synthetic anomalies made from normal images: outlier exposure (image level) and the defect segmenter.

:func:`synthetic_anomaly` (outlier exposure of the image-level model) has two kinds; both act on a float
image ``(H, W, C)`` in [0, 1] and change one random rectangle:

* ``noise``: the rectangle gets strong Gaussian noise around its own mean (texture destroyed);
* ``cutpaste``: a rectangle cut from elsewhere in the same image, flipped, brightness-shifted and pasted in
  (texture present but out of place, as in CutPaste, Li et al. 2021).

:func:`synthetic_defect` (training data of the pixel-level defect segmenter, ``segmenter.py``) alters a
random region of any shape and returns its mask as well.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
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


# ------------------------------------------------------------------------------------------------------------
# Pixel-level synthetic defects: a random region of a normal image altered, with its mask (defect segmenter).

REGIONS: tuple[str, ...] = ("blob", "band", "ellipse")
ALTERATIONS: tuple[str, ...] = ("gain", "swap", "blur", "sharpen")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise: a ``cells x cells`` random grid upsampled bicubically to the image size."""
    return cv2.resize(rng.standard_normal((cells, cells)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)


def random_region(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> np.ndarray:
    """``(H, W)`` bool region of one random shape: a smooth-noise blob, a band between two wavy parallel lines
    at any angle, or an ellipse; covering roughly 1 % to 40 % of the image."""
    kind = kind or str(rng.choice(REGIONS))
    if kind == "blob":
        noise = _smooth_noise(rng, height, width, int(rng.integers(2, 7)))
        return noise > np.quantile(noise, 1.0 - rng.uniform(0.05, 0.4))
    if kind == "band":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0.0, np.pi)
        along = (xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle)
        along += _smooth_noise(rng, height, width, 4) * rng.uniform(0.0, 0.03) * max(height, width)
        span = abs(height * np.sin(angle)) + abs(width * np.cos(angle))
        thickness = rng.uniform(0.1, 0.5) * span
        start = rng.uniform(-span / 2 - thickness / 2, span / 2 - thickness / 2)
        return (along > start) & (along < start + thickness)
    if kind == "ellipse":
        region = np.zeros((height, width), np.uint8)
        side = min(height, width)
        axes = (int(rng.integers(max(2, side // 40), max(3, side // 4))),
                int(rng.integers(max(2, side // 40), max(3, side // 4))))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.ellipse(region, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return region > 0
    raise ValueError(f"unknown region {kind!r}; choose from {REGIONS}")


Other = np.ndarray | Callable[[], np.ndarray]  # another normal image, or a function that reads it when needed


def altered(image: np.ndarray, other: Other, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """``image`` (float ``(H, W, C)`` in [0, 1]) changed all over in one way: gain and offset, another normal
    image's content (``other``, same shape, or a function returning it), blur, or sharpened texture."""
    kind = kind or str(rng.choice(ALTERATIONS))
    if kind == "gain":
        return np.clip(image * rng.uniform(0.6, 1.6) + rng.uniform(-0.2, 0.2), 0.0, 1.0)
    if kind == "swap":
        return other() if callable(other) else other
    sigma = rng.uniform(1.0, 3.0)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma).reshape(image.shape)
    if kind == "blur":
        return blurred
    if kind == "sharpen":
        return np.clip(image + rng.uniform(1.0, 3.0) * (image - blurred), 0.0, 1.0)
    raise ValueError(f"unknown alteration {kind!r}; choose from {ALTERATIONS}")


def synthetic_defect(image: np.ndarray, other: Other, rng: np.random.Generator, *, region: str | None = None,
                     alteration: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A normal float image (``(H, W)`` or ``(H, W, C)`` in [0, 1]) with one synthetic defect, and the defect's
    ``(H, W)`` mask.

    A random region (:func:`random_region`) takes one or two alterations (:func:`altered`; ``other`` is
    another normal image for the content swap, read only if a swap is drawn when it is a function), blended in
    with an edge softened by 0 to 3 pixels. Generic on purpose: shading steps, foreign texture, lost or
    exaggerated texture, in shapes from spots to bands. ``region`` and ``alteration`` (the first one) fix those
    draws, so a set of defects can cover every combination evenly (:func:`balanced_kinds`).
    """
    flat = np.ndim(image) == 2
    image = np.asarray(image, dtype=np.float32)[..., None] if flat else np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    source, found = other, []

    def matching_other() -> np.ndarray:  # read (once) and shaped like ``image``
        if not found:
            pixels = np.asarray(source() if callable(source) else source, dtype=np.float32)
            pixels = pixels[..., None] if pixels.ndim == 2 else pixels
            if pixels.shape != image.shape:
                pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA).reshape(image.shape)
            found.append(pixels)
        return found[0]

    shape = random_region(rng, height, width, region)
    if shape.sum() < max(4, height * width // 2000):
        shape = random_region(rng, height, width, "ellipse")
    target = altered(image, matching_other, rng, alteration)
    if rng.random() < 0.5:
        target = altered(target, matching_other, rng)
    weight = shape.astype(np.float32)
    softness = rng.uniform(0.0, 3.0)
    if softness > 0.3:
        weight = cv2.GaussianBlur(weight, (0, 0), softness)
    weight = weight[:, :, None]
    out = np.clip(image * (1.0 - weight) + target * weight, 0.0, 1.0).astype(np.float32)
    return (out[:, :, 0] if flat else out), shape


def balanced_kinds(count: int) -> list[tuple[str, str]]:
    """``count`` (region, first alteration) pairs that cycle through every combination: with a few hundred
    defects, independent draws leave some combinations a tenth rarer than others, and measured on MagneticTile
    such shifts in the mix moved the segmenter's heatmap quality more than its training seed did."""
    pairs = [(region, alteration) for alteration in ALTERATIONS for region in REGIONS]
    return [pairs[i % len(pairs)] for i in range(count)]
