"""``metal``: anomaly-detection sample of brushed metal surfaces, good and with scratches/dents/stains.

Layout: ``good/good_NNN.png``, ``bad/<defect>_NNN.png`` and ``masks/<defect>_NNN.png`` (0 / 255, one mask
per bad image, exactly the pixels the defect altered). Grey 8-bit, 256x256.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from astrocyte_lab.samples import textures as tx
from astrocyte_lab.samples.writers import write_png

SEED = 1101
SIZE = 256
N_GOOD = 60
N_PER_DEFECT = 8
DEFECTS = ("scratch", "dent", "stain")


def surface(rng: np.random.Generator, size: int = SIZE) -> tx.FloatImage:
    """Brushed metal: directional grain, mottling, a soft specular band, uneven light, slight blur."""
    h = w = size
    angle = float(rng.uniform(-6.0, 6.0))
    long = tx.streaks(rng, h, w, rng.uniform(120, 220), 1.0, angle)
    grain = (
        0.8 * long
        + 0.35 * tx.streaks(rng, h, w, rng.uniform(15, 30), 1.0, angle)
        + 0.3 * tx.streaks(rng, h, w, rng.uniform(90, 160), 4.0, angle)
        + 0.6 * np.sign(long) * np.clip(np.abs(long) - 1.8, 0, None)  # a few crisp deep grooves
    )
    img = np.full((h, w), rng.uniform(105, 145), np.float32)
    img += rng.uniform(5.0, 8.0) * grain
    img += rng.uniform(3.0, 6.0) * tx.fbm(rng, h, w, 64, octaves=3)
    # A broad specular band along the grain, as a bar light reflects off brushed metal.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = math.radians(angle)
    d = -(xx - w / 2) * math.sin(t) + (yy - h / 2) * math.cos(t)
    d0, s = rng.uniform(-110, 110), rng.uniform(40, 90)
    img += rng.uniform(12, 35) * np.exp(-((d - d0) ** 2) / (2 * s * s))
    img = tx.apply_gain(img, tx.lighting(rng, h, w, gradient=0.15, vignette=0.18))
    return tx.blur(img, rng.uniform(0.5, 0.8))


def _center(rng: np.random.Generator, margin: int, size: int = SIZE) -> np.ndarray:
    return rng.uniform(margin, size - margin, size=2).astype(np.float32)


def add_scratch(rng: np.random.Generator, img: tx.FloatImage) -> tuple[tx.FloatImage, np.ndarray]:
    """A thin, long, possibly curved bright or dark line whose intensity fades along its length."""
    h, w = img.shape
    c = _center(rng, 40)
    phi = rng.uniform(0, math.pi)
    length = rng.uniform(50, 190)
    u = np.array([math.cos(phi), math.sin(phi)], np.float32)
    n = np.array([-u[1], u[0]], np.float32)
    p1 = c + n * rng.uniform(-0.25, 0.25) * length
    pts = tx.bezier(c - u * length / 2, p1, c + u * length / 2)
    mask, alpha = tx.line_coverage((h, w), pts, int(rng.choice([1, 1, 2, 2, 3])))
    delta = rng.uniform(45, 80) if rng.random() < 0.6 else -rng.uniform(35, 60)
    fade = 0.45 + 0.55 * np.clip(0.5 + 0.35 * tx.smooth_noise(rng, h, w, 30), 0, 1)
    fade *= 0.8 + 0.2 * np.clip(tx.smooth_noise(rng, h, w, 3), -1, 1)  # chatter along the groove
    return img + delta * alpha * fade, mask


def add_dent(rng: np.random.Generator, img: tx.FloatImage) -> tuple[tx.FloatImage, np.ndarray]:
    """A small elliptic depression, shaded by a directional light: a dark side and a highlight."""
    h, w = img.shape
    cx, cy = _center(rng, 28)
    a = rng.uniform(6, 14)
    b = a * rng.uniform(0.65, 1.0)
    th = rng.uniform(0, math.pi)
    ct, st = math.cos(th), math.sin(th)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u, v = dx * ct + dy * st, -dx * st + dy * ct
    r2 = (u / a) ** 2 + (v / b) ** 2
    mask = r2 <= 1.0
    # height = -(1 - r2)^1.5; its gradient gives the surface tilt.
    dh = 1.5 * np.sqrt(np.clip(1.0 - r2, 0, 1))
    dr2x = 2 * u / a**2 * ct - 2 * v / b**2 * st
    dr2y = 2 * u / a**2 * st + 2 * v / b**2 * ct
    gx, gy = dh * dr2x, dh * dr2y
    lphi = rng.uniform(0, 2 * math.pi)
    shade = -(gx * math.cos(lphi) + gy * math.sin(lphi))
    shade = np.where(mask, shade, 0) / (np.abs(shade[mask]).max() + 1e-6)
    delta = (
        rng.uniform(30, 55) * shade
        + rng.uniform(20, 45) * np.clip(shade, 0, None) ** 4
        - rng.uniform(8, 20) * np.clip(1 - r2, 0, 1)
    )
    flat = tx.blur(img, 2.0)  # the dent's floor smears the grain
    out = np.where(mask, 0.5 * img + 0.5 * flat + delta, img)
    return out.astype(np.float32), mask


def add_stain(rng: np.random.Generator, img: tx.FloatImage) -> tuple[tx.FloatImage, np.ndarray]:
    """An irregular dried-liquid blob: darker, mottled, with a darker tide-line at its rim."""
    h, w = img.shape
    cx, cy = _center(rng, 34)
    r = rng.uniform(10, 28)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
    field = 1.0 - dist**2 + 0.35 * tx.fbm(rng, h, w, max(4.0, r / 2), octaves=3)
    mask = field > 0.25
    if mask.sum() < 30:  # pathological noise draw: fall back to the round core
        mask = dist < 0.8
    alpha = tx.inner_alpha(mask, 4.0)
    depth = tx.inner_alpha(mask, 1e-3)  # 1 inside; used to locate the rim
    d = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    rim = np.exp(-(d - 1.0) / 1.5) * depth
    mottle = 0.75 + 0.25 * tx.smooth_noise(rng, h, w, 5)
    strength = rng.uniform(0.18, 0.38)
    dark = strength * (0.7 * alpha * mottle + 0.45 * rim)
    smooth = tx.blend(img, tx.blur(img, 1.5), 0.6 * alpha)
    return (smooth * (1.0 - np.clip(dark, 0, 0.8))).astype(np.float32), mask


DEFECT_FUNCS: dict[str, Callable[[np.random.Generator, tx.FloatImage], tuple[tx.FloatImage, np.ndarray]]] = {
    "scratch": add_scratch,
    "dent": add_dent,
    "stain": add_stain,
}


def render_good(index: int) -> np.ndarray:
    """One defect-free image, a pure function of ``index``."""
    rng = tx.image_rng(SEED, 0, index)
    return tx.sensor(rng, surface(rng), rng.uniform(2.0, 3.2), 0.03)


def render_bad(defect: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One defective image and its 0/255 mask."""
    rng = tx.image_rng(SEED, 1 + DEFECTS.index(defect), index)
    img, mask = DEFECT_FUNCS[defect](rng, surface(rng))
    return tx.sensor(rng, img, rng.uniform(2.0, 3.2), 0.03), np.where(mask, 255, 0).astype(np.uint8)


def generate(dest: Path, scale: int) -> dict[str, Any]:
    """Write the metal sample into ``dest``; return manifest fields."""
    n_good, n_bad = N_GOOD * scale, N_PER_DEFECT * scale
    for i in range(n_good):
        write_png(dest / "good" / f"good_{i:03d}.png", render_good(i))
    for defect in DEFECTS:
        for i in range(n_bad):
            img, mask = render_bad(defect, i)
            write_png(dest / "bad" / f"{defect}_{i:03d}.png", img)
            write_png(dest / "masks" / f"{defect}_{i:03d}.png", mask)
    return {
        "image_size": [SIZE, SIZE],
        "channels": 1,
        "counts": {"good": n_good, **{d: n_bad for d in DEFECTS}},
        "layout": {
            "good/": "defect-free images good_NNN.png",
            "bad/": "defective images <defect>_NNN.png, defect in scratch|dent|stain",
            "masks/": "uint8 PNG per bad image, same file name: 0 background, 255 defect",
        },
        "mask_values": {"0": "background", "255": "defect"},
    }
