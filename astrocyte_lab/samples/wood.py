"""``wood``: object detection of tiny knots on large wood-board images (a tiling use case).

Layout: ``images/*.jpg`` (colour JPEG 1536x1024), ``labels/<stem>.txt`` with tab-separated boxes
(same format as ``hardware``) and ``classes.txt`` (dead_knot, live_knot). Knots are 10-30 px across,
tiny relative to the image, so a detector must work on tiles.

The grain is a warped "growth ring" coordinate: rings are iso-lines of ``y + warp(x, y)``, and each
knot pushes the iso-lines around itself, as real grain flows around a branch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from astrocyte_lab.samples import textures as tx
from astrocyte_lab.samples.annotate import box_from_mask
from astrocyte_lab.samples.writers import BOX_NOTE, Box, write_jpg, write_tab_labels, write_text_lines

SEED = 4404
WIDTH, HEIGHT = 1536, 1024
N_IMAGES = 12
CLASSES = ("dead_knot", "live_knot")
MARGIN = 24


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _upsampled_noise(rng: np.random.Generator, cell: float, factor: int = 8) -> np.ndarray:
    """Low-frequency noise computed at 1/``factor`` resolution and upsampled (cheap for big images)."""
    small = tx.smooth_noise(rng, HEIGHT // factor, WIDTH // factor, cell / factor)
    return cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


def _knot_layout(rng: np.random.Generator) -> list[tuple[str, float, float, float, float, float]]:
    """Non-overlapping knots: (class, cx, cy, semi-axis along grain, across grain, tilt in radians)."""
    knots: list[tuple[str, float, float, float, float, float]] = []
    for _ in range(int(rng.integers(2, 7))):
        for _try in range(50):
            r = rng.uniform(5.0, 15.0)
            cx, cy = rng.uniform(MARGIN + r, WIDTH - MARGIN - r), rng.uniform(MARGIN + r, HEIGHT - MARGIN - r)
            if all(math.hypot(cx - k[1], cy - k[2]) > 5 * (r + k[3]) for k in knots):
                a = r * rng.uniform(1.0, 1.35)  # knots are a little stretched along the grain
                knots.append((CLASSES[int(rng.random() < 0.5)], cx, cy, a, r, rng.uniform(-0.2, 0.2)))
                break
    return knots


def board(rng: np.random.Generator, knots: list[tuple[str, float, float, float, float, float]]) -> tx.FloatImage:
    """Flat-sawn board: warped growth rings, fibre streaks, pores, colour variation (BGR float)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    tilt = math.tan(math.radians(rng.uniform(-4, 4)))
    g = (
        yy
        + tilt * xx
        + rng.uniform(30, 70) * _upsampled_noise(rng, 500)
        + rng.uniform(6, 14) * _upsampled_noise(rng, 140)
    )
    # A slow "cathedral" curvature: the board was cut at a slant through the rings.
    g += rng.uniform(-0.00015, 0.00015) * (xx - rng.uniform(0, WIDTH)) ** 2
    for _cls, cx, cy, a, b, _t in knots:
        sx, sy = 5.0 * a, 3.5 * b
        x0, x1 = max(0, int(cx - 3 * sx)), min(WIDTH, int(cx + 3 * sx) + 1)
        y0, y1 = max(0, int(cy - 3 * sy)), min(HEIGHT, int(cy + 3 * sy) + 1)
        dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        near = np.exp(-((dx / sx) ** 2) - (dy / sy) ** 2)
        g[y0:y1, x0:x1] -= 1.6 * b * np.tanh(dy / b) * near  # iso-lines bulge around the knot
    spacing = rng.uniform(16, 34) * (1.0 + 0.25 * _upsampled_noise(rng, 600))
    g += 0.5 * tx.smooth_noise(rng, HEIGHT, WIDTH, 14)  # ragged ring edges
    ring_pos = g / spacing
    f = ring_pos % 1.0
    ring = np.floor(ring_pos)
    offset = rng.uniform(0, 1000)
    strength = 0.5 + 0.5 * ((np.sin(ring * 12.9898 + offset) * 43758.5453) % 1.0)  # each ring differs
    late = _smoothstep(0.55, 0.9, f) * (1.0 - _smoothstep(0.93, 1.0, f)) * strength  # dark latewood band
    fibres = tx.streaks(rng, HEIGHT, WIDTH, rng.uniform(60, 140), 1.0, math.degrees(math.atan(tilt)))
    pores = np.clip(tx.streaks(rng, HEIGHT, WIDTH, 6, 1.0) - 2.2, 0, None)
    light = np.asarray([112, 165, 208], np.float32) * rng.uniform(0.9, 1.05) + rng.uniform(-6, 6, 3).astype(np.float32)
    dark = light * np.asarray([0.6, 0.68, 0.76], np.float32)
    tone = 1.0 + 0.07 * _upsampled_noise(rng, 350)
    mix = np.clip(0.85 * late + 0.04 * fibres, 0, 1)
    img = light * (1 - mix)[..., None] + dark * mix[..., None]
    img *= (tone - 0.04 * fibres - 0.12 * pores)[..., None]
    return img


def draw_knot(
    rng: np.random.Generator, img: tx.FloatImage, knot: tuple[str, float, float, float, float, float]
) -> np.ndarray:
    """Paint one knot in place; return its mask (opacity >= 0.5) for the box."""
    cls, cx, cy, a, b, tilt = knot
    r_box = int(math.ceil(max(a, b) * 1.4)) + 3
    x0, y0 = int(cx) - r_box, int(cy) - r_box
    x1, y1 = x0 + 2 * r_box + 1, y0 + 2 * r_box + 1
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = dx * math.cos(tilt) + dy * math.sin(tilt)
    v = -dx * math.sin(tilt) + dy * math.cos(tilt)
    wob = 1.0 + 0.08 * tx.smooth_noise(rng, y1 - y0, x1 - x0, max(2.0, b / 2))
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) * wob  # 1 on the knot outline
    patch = img[y0:y1, x0:x1]
    if cls == "dead_knot":
        alpha = 1.0 - _smoothstep(0.92, 1.05, rho)
        core = np.asarray([40, 62, 92], np.float32) * rng.uniform(0.8, 1.1)
        rings = 0.9 + 0.1 * np.sin(rho * rng.uniform(10, 16))
        col = core * rings[..., None]
        rim = _smoothstep(0.6, 0.8, rho) * (1.0 - _smoothstep(0.95, 1.05, rho))
        col = col * (1.0 - 0.55 * rim)[..., None]  # bark ring: near black
        theta = np.arctan2(v, u)
        for _ in range(int(rng.integers(1, 4))):  # radial checks (drying cracks)
            t0 = rng.uniform(-math.pi, math.pi)
            crack = np.exp(-(((theta - t0 + math.pi) % (2 * math.pi) - math.pi) ** 2) / 0.01) * (rho < 0.75)
            col = col * (1.0 - 0.6 * crack)[..., None]
    else:
        alpha = 1.0 - _smoothstep(0.75, 1.2, rho)  # blends into the surrounding grain
        tint = np.asarray([48, 88, 140], np.float32) * rng.uniform(0.85, 1.05)
        rings = 0.85 + 0.15 * np.sin(rho * rng.uniform(12, 20) + rng.uniform(0, 6))
        col = tint * rings[..., None] * (0.9 + 0.1 * rho)[..., None]
        col = 0.25 * patch + 0.75 * col  # live knots keep some of the grain colour
    img[y0:y1, x0:x1] = patch * (1 - alpha[..., None]) + col * alpha[..., None]
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y0:y1, x0:x1] = alpha >= 0.5
    return mask


def render(index: int) -> tuple[np.ndarray, list[Box]]:
    """One board image (BGR uint8) and its knot boxes."""
    rng = tx.image_rng(SEED, index)
    knots = _knot_layout(rng)
    img = board(rng, knots)
    boxes = []
    for knot in knots:
        box = box_from_mask(knot[0], draw_knot(rng, img, knot))
        if box is not None:
            boxes.append(box)
    img = tx.apply_gain(img, tx.lighting(rng, HEIGHT, WIDTH, 0.2, 0.25) * rng.uniform(0.92, 1.08))
    img = tx.blur(img, rng.uniform(0.6, 0.9))
    return tx.sensor(rng, img, rng.uniform(2.0, 3.0), 0.03), boxes


def write_boards(dest: Path, indices: Iterable[int]) -> None:
    """Write boards ``indices`` (each one is always the same image) with their labels and ``classes.txt``.

    The sample is boards ``0 .. 12 * scale - 1``; later indices are boards no sample model has seen, which
    makes a held-out test set (``benchmarks/detection_tiling.py``).
    """
    write_text_lines(dest / "classes.txt", CLASSES)
    for i in indices:
        img, boxes = render(i)
        write_jpg(dest / "images" / f"board_{i:03d}.jpg", img)
        write_tab_labels(dest / "labels" / f"board_{i:03d}.txt", boxes)


def generate(dest: Path, scale: int) -> dict[str, Any]:
    """Write the wood sample into ``dest``; return manifest fields."""
    n = N_IMAGES * scale
    write_boards(dest, range(n))
    return {
        "image_size": [WIDTH, HEIGHT],
        "channels": 3,
        "classes": list(CLASSES),
        "counts": {"images": n},
        "layout": {
            "images/": "colour JPEG (quality 92) board_NNN.jpg, 1536x1024",
            "labels/": "one <stem>.txt per image: class<TAB>X1<TAB>Y1<TAB>X2<TAB>Y2 per knot",
            "classes.txt": "class names, one a line",
        },
        "box_format": "class\tX1\tY1\tX2\tY2",
        "box_coordinates": BOX_NOTE,
        "object_size_px": [10, 30],
    }
