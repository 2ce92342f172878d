"""``scratches``: semantic segmentation of scratches and spots on ground, painted or blasted surfaces.

Layout: ``images/surface_NNN.png`` (grey 8-bit, 256x256) and ``masks/surface_NNN.png`` with pixel
values 0 = background, 1 = scratch, 2 = spot. Every sixth image is defect-free.

The label mask is drawn first; the defects are then rendered *from* the mask (each pixel only with the
look of its own class), so mask and image agree exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from astrocyte_lab.samples import textures as tx
from astrocyte_lab.samples.writers import write_png

SEED = 5505
SIZE = 256
N_IMAGES = 48
FREE_EVERY = 6  # image i is defect-free when i % FREE_EVERY == 0
CLASS_VALUES = {0: "background", 1: "scratch", 2: "spot"}


def surface(rng: np.random.Generator) -> tx.FloatImage:
    """A ground (cross-hatched), painted (orange peel) or blasted (granular) surface."""
    h = w = SIZE
    kind = int(rng.integers(0, 3))
    if kind == 0:
        a = rng.uniform(15, 40)
        tex = 0.7 * tx.streaks(rng, h, w, rng.uniform(25, 60), 1.0, a) + 0.7 * tx.streaks(
            rng, h, w, rng.uniform(25, 60), 1.0, -a + rng.uniform(-8, 8)
        )
        img = rng.uniform(110, 150) + rng.uniform(5, 8) * tex + 5 * tx.fbm(rng, h, w, 64, 3)
    elif kind == 1:
        img = rng.uniform(80, 170) + rng.uniform(2.5, 4.5) * tx.fbm(rng, h, w, rng.uniform(5, 9), 3)
        img = img + 4 * tx.fbm(rng, h, w, 96, 2)
    else:
        img = rng.uniform(100, 140) + rng.uniform(6, 10) * tx.smooth_noise(rng, h, w, 1.2)
        img = img + 3 * tx.smooth_noise(rng, h, w, 3) + 6 * tx.fbm(rng, h, w, 80, 3)
    img = tx.apply_gain(img.astype(np.float32), tx.lighting(rng, h, w, 0.15, 0.15))
    return tx.blur(img, rng.uniform(0.4, 0.7))


def _scratch_path(rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(30, SIZE - 30, 2).astype(np.float32)
    phi, length = rng.uniform(0, math.pi), rng.uniform(40, 200)
    u = np.array([math.cos(phi), math.sin(phi)], np.float32)
    n = np.array([-u[1], u[0]], np.float32)
    return tx.bezier(c - u * length / 2, c + n * rng.uniform(-0.2, 0.2) * length, c + u * length / 2)


def _spot_mask(rng: np.random.Generator) -> np.ndarray:
    r = rng.uniform(2.5, 6.5)
    cx, cy = rng.uniform(12, SIZE - 12, 2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    e = rng.uniform(0.7, 1.0)
    d = np.sqrt((xx - cx) ** 2 + ((yy - cy) / e) ** 2) / r
    d = d * (1.0 + 0.18 * tx.smooth_noise(rng, SIZE, SIZE, max(1.5, r / 2)))
    m = d <= 1.0
    if not m.any():
        m[int(cy), int(cx)] = True
    return m


def render(index: int) -> tuple[np.ndarray, np.ndarray]:
    """One image and its class-value mask."""
    rng = tx.image_rng(SEED, index)
    img = surface(rng)
    label = np.zeros((SIZE, SIZE), np.uint8)
    scratch_alpha = np.zeros((SIZE, SIZE), np.float32)
    spots: list[np.ndarray] = []
    if index % FREE_EVERY:
        mode = int(rng.integers(0, 3))  # 0 scratches, 1 spots, 2 both
        if mode in (0, 2):
            for _ in range(int(rng.integers(1, 4))):
                m, a = tx.line_coverage((SIZE, SIZE), _scratch_path(rng), int(rng.choice([1, 1, 2, 3])))
                label[m] = 1
                scratch_alpha = np.maximum(scratch_alpha, a)
        if mode in (1, 2):
            for _ in range(int(rng.integers(1, 5))):
                m = _spot_mask(rng)
                label[m] = 2
                spots.append(m)
    if (label == 1).any():
        a = scratch_alpha * (label == 1)
        delta = rng.uniform(40, 75) * (1 if rng.random() < 0.5 else -1)
        fade = 0.6 + 0.4 * np.clip(0.5 + 0.4 * tx.smooth_noise(rng, SIZE, SIZE, 20), 0, 1)
        img = img + delta * a * fade
    if spots:
        phi = rng.uniform(0, 2 * math.pi)
        lx, ly = math.cos(phi), math.sin(phi)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        for m in spots:
            own = m & (label == 2)
            if not own.any():
                continue
            ys, xs = np.nonzero(own)
            cy, cx, r = ys.mean(), xs.mean(), max(1.0, math.sqrt(own.sum() / math.pi))
            # a pit: dark floor, one wall catching the light
            wall = ((xx - cx) * lx + (yy - cy) * ly) / r
            depth = tx.inner_alpha(own, max(1.0, r / 2))
            shade = -rng.uniform(35, 65) * (0.4 + 0.6 * depth) + 25 * np.clip(wall, 0, 1)
            img = np.where(own, img + shade, img)
    return tx.sensor(rng, img, rng.uniform(2.0, 3.0), 0.03), label


def generate(dest: Path, scale: int) -> dict[str, Any]:
    """Write the scratches sample into ``dest``; return manifest fields."""
    n = N_IMAGES * scale
    free = 0
    for i in range(n):
        img, label = render(i)
        free += not label.any()
        write_png(dest / "images" / f"surface_{i:03d}.png", img)
        write_png(dest / "masks" / f"surface_{i:03d}.png", label)
    return {
        "image_size": [SIZE, SIZE],
        "channels": 1,
        "classes": [CLASS_VALUES[k] for k in sorted(CLASS_VALUES)],
        "counts": {"images": n, "defect_free": free},
        "mask_values": {str(k): v for k, v in CLASS_VALUES.items()},
        "layout": {
            "images/": "grey PNG surface_NNN.png",
            "masks/": "uint8 PNG, same file name, pixel value = class (0 background, 1 scratch, 2 spot)",
        },
    }
