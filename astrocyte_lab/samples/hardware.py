"""``hardware``: object-detection samples of small parts (washers, nuts, nails, screws, crimp terminals).

Three variants share the renderer:

* ``hardware``: ``images/*.jpg`` + ``labels/<stem>.txt`` (tab-separated axis-aligned boxes)
* ``hardware_rotated``: ``images/*.jpg`` + ``Annotations/<stem>.xml`` (Pascal VOC with roLabelImg
  oriented boxes)
* ``hardware_partial``: ``images/*.jpg``, labels only for the first 40 images (self-training)

Each part is drawn supersampled in its own frame, rotated, area-downsampled and placed on a mat without
overlapping the others; its box comes from its own opacity mask (opacity >= 0.5), i.e. from exactly the
pixels it covers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from astrocyte_lab.samples import drawing as dr
from astrocyte_lab.samples import textures as tx
from astrocyte_lab.samples.annotate import box_from_mask
from astrocyte_lab.samples.drawing import Color, Layer
from astrocyte_lab.samples.writers import (
    BOX_NOTE,
    Box,
    rotated_corners,
    write_jpg,
    write_tab_labels,
    write_text_lines,
    write_voc_xml,
)

WIDTH, HEIGHT = 416, 320
SS = 2  # supersampling of the part layers
CLASSES = ("washer", "nut", "nail", "screw", "crimpterminal")
MARGIN = 4  # parts keep this many px from the image border (oriented boxes stay inside the image)
GAP = 3  # and from each other

ZINC: Color = (172, 174, 170)
STEEL: Color = (138, 140, 140)
BRASS: Color = (88, 148, 178)
BLACK_OXIDE: Color = (58, 58, 60)
COPPER: Color = (80, 120, 190)


def _metal(rng: np.random.Generator, choices: tuple[Color, ...], weights: tuple[float, ...]) -> Color:
    return dr.jitter(rng, choices[int(rng.choice(len(choices), p=np.asarray(weights) / sum(weights)))], 8)


def _layer(rng: np.random.Generator, length: float, width: float, light: tuple[float, float]) -> Layer:
    """A supersampled square layer big enough to hold a ``length x width`` part at any rotation."""
    n = int(math.ceil(math.hypot(length, width) * SS)) + 8
    return Layer(rng, n + n % 2, light)


# --------------------------------------------------------------------------------------------- parts


def draw_washer(rng: np.random.Generator, light: tuple[float, float]) -> Layer:
    """Flat washer: a ring with a turned (anisotropic) sheen and rounded edges."""
    r_out = rng.uniform(14, 23)
    p = _layer(rng, 2 * r_out, 2 * r_out, light)
    m, ro = p.size / 2, r_out * SS
    ri = ro * rng.uniform(0.42, 0.55)
    ring = p.circle(m, m, ro) & ~p.circle(m, m, ri)
    yy, xx = p.grid
    theta = np.arctan2(yy - m, xx - m)
    la = math.atan2(p.light[1], p.light[0])
    sheen = 0.72 + 0.28 * np.cos(2 * (theta - la - math.pi / 2))
    p.paint(ring, _metal(rng, (ZINC, STEEL, BRASS), (3, 2, 1)), p.relief(ring, 5, 1.0) * sheen, grain=5)
    p.specular(ring, (m + ro * 0.55 * p.light[0], m + ro * 0.55 * p.light[1]), (ro * 0.35, ro * 0.35), 30)
    return p


def draw_nut(rng: np.random.Generator, light: tuple[float, float]) -> Layer:
    """Hex nut seen from above: hexagon with chamfered corners, threaded hole."""
    flats = rng.uniform(13, 20)  # half across-flats, output px
    corner = flats / math.cos(math.pi / 6)
    p = _layer(rng, 2 * corner, 2 * corner, light)
    m = p.size / 2
    f, cr = flats * SS, corner * SS
    rot = rng.uniform(0, math.pi / 3)
    hexagon = p.poly(
        [(m + cr * math.cos(rot + k * math.pi / 3), m + cr * math.sin(rot + k * math.pi / 3)) for k in range(6)]
    )
    face = p.circle(m, m, f * 0.98)
    hole_r = f * rng.uniform(0.48, 0.58)
    hole = p.circle(m, m, hole_r)
    color = _metal(rng, (ZINC, STEEL, BRASS, BLACK_OXIDE), (3, 2, 1, 1))
    body = hexagon & ~hole
    p.paint(body, color, p.relief(body, 4, 1.1) * 0.82, grain=6)  # chamfered corners: darker
    top = face & ~hole
    p.paint(top, color, p.relief(top, 3, 0.8), grain=5)
    yy, xx = p.grid
    theta = np.arctan2(yy - m, xx - m)
    rr = np.sqrt((yy - m) ** 2 + (xx - m) ** 2)
    thread = (rr < hole_r * 1.25) & ~hole
    p.col[thread] *= (0.55 + 0.15 * np.cos(theta * 14 + rr * 0.8))[thread][..., None]
    p.punch(hole)
    p.specular(top, (m + f * 0.5 * p.light[0], m + f * 0.5 * p.light[1]), (f * 0.4, f * 0.4), 25)
    return p


def draw_nail(rng: np.random.Generator, light: tuple[float, float]) -> Layer:
    """A nail lying flat: long round shaft, pointed tip, flat head seen edge-on."""
    length, d = rng.uniform(70, 125), rng.uniform(4.0, 6.5)
    head_w = d * rng.uniform(2.4, 3.0)
    p = _layer(rng, length, head_w, light)
    m = p.size / 2
    L, D, H = length * SS, d * SS, head_w * SS
    x0, x1 = m - L / 2, m + L / 2
    tip = D * 2.2
    color = _metal(rng, (STEEL, ZINC, BLACK_OXIDE), (3, 2, 1))
    shaft = p.rrect(x0 + 2, m - D / 2, x1 - tip, m + D / 2, 0) | p.poly(
        [(x1 - tip - 1, m - D / 2), (x1, m), (x1 - tip - 1, m + D / 2)]
    )
    p.paint(shaft, color, p.cylinder("x", m, D / 2), grain=4)
    head = p.rrect(x0, m - H / 2, x0 + max(3.0, D * 0.55), m + H / 2, 2)
    p.paint(head, color, p.cylinder("x", m, H / 2, 0.5) * p.relief(head, 2, 0.8), grain=4)
    p.specular(shaft, (m, m - D * 0.15), (L * 0.45, D * 0.12), 35)
    return p


def draw_screw(rng: np.random.Generator, light: tuple[float, float]) -> Layer:
    """A screw lying flat: pan head, threaded shaft with slanted crests, pointed tip."""
    length, d = rng.uniform(42, 80), rng.uniform(6.5, 10.0)
    head_w = d * rng.uniform(1.8, 2.1)
    p = _layer(rng, length, head_w, light)
    m = p.size / 2
    L, D, H = length * SS, d * SS, head_w * SS
    x0, x1 = m - L / 2, m + L / 2
    head_len = D * rng.uniform(0.55, 0.75)
    pitch = D * rng.uniform(0.32, 0.42)
    color = _metal(rng, (ZINC, BLACK_OXIDE, BRASS, STEEL), (3, 2, 1, 1))
    yy, xx = p.grid
    phase = ((xx + 0.35 * (yy - m)) / pitch) % 1.0
    tri = np.abs(2.0 * phase - 1.0)  # 0 at the thread root, 1 at the crest
    tip = D * 1.6
    hw = D / 2 * (0.82 + 0.18 * ((xx / pitch) % 1.0 > 0.5))  # toothed silhouette
    hw = np.where(xx > x1 - tip, hw * np.clip((x1 - xx) / tip, 0, 1), hw)
    shaft = (xx >= x0 + head_len - 1) & (xx <= x1) & (np.abs(yy - m) <= hw)
    p.paint(shaft, color, p.cylinder("x", m, D / 2) * (0.65 + 0.4 * tri), grain=3)
    head = p.rrect(x0, m - H / 2, x0 + head_len, m + H / 2, head_len * 0.45)
    p.paint(head, color, p.cylinder("x", m, H / 2, 0.45) * p.relief(head, 4, 1.0), grain=4)
    p.specular(head, (x0 + head_len * 0.5, m - H * 0.2), (head_len * 0.3, H * 0.2), 40)
    return p


def draw_crimpterminal(rng: np.random.Generator, light: tuple[float, float]) -> Layer:
    """Insulated crimp terminal: metal ring or fork tongue, barrel in a coloured plastic sleeve."""
    rt = rng.uniform(7.0, 10.0)
    sleeve_len, sleeve_w = rt * rng.uniform(2.4, 3.0), rt * rng.uniform(1.5, 1.8)
    length = 2 * rt + rt * 0.5 + sleeve_len
    p = _layer(rng, length, 2 * rt, light)
    m = p.size / 2
    R, SL, SW = rt * SS, sleeve_len * SS, sleeve_w * SS
    x0 = m - length * SS / 2
    cx = x0 + R
    metal = _metal(rng, (ZINC, COPPER), (3, 1))
    tongue = p.circle(cx, m, R) | p.rrect(cx, m - R * 0.35, cx + R * 1.6, m + R * 0.35, 0)
    fork = rng.random() < 0.4
    if fork:
        tongue |= p.rrect(x0, m - R, cx, m + R, R * 0.3)
        hole = p.rrect(x0 - 2, m - R * 0.3, cx + R * 0.1, m + R * 0.3, R * 0.3) | p.circle(cx, m, R * 0.3)
    else:
        hole = p.circle(cx, m, R * rng.uniform(0.38, 0.48))
    p.paint(tongue & ~hole, metal, p.relief(tongue & ~hole, 3, 1.0), grain=5)
    p.punch(hole)
    sx0 = cx + R * 1.5
    flare = SW * 0.12
    sleeve = p.poly(
        [(sx0, m - SW / 2), (sx0 + SL, m - SW / 2 - flare), (sx0 + SL, m + SW / 2 + flare), (sx0, m + SW / 2)]
    )
    plastic = dr.jitter(rng, [(40, 40, 190), (170, 95, 35), (35, 195, 225)][int(rng.integers(0, 3))], 10)
    p.paint(sleeve, plastic, p.cylinder("x", m, SW / 2 + flare, 0.45), grain=3)
    rim = sleeve & p.rrect(sx0 + SL - SS * 2.5, 0, sx0 + SL + 1, p.size - 1, 0)
    p.col[rim] *= 0.75
    p.specular(sleeve, (sx0 + SL * 0.5, m - SW * 0.22), (SL * 0.4, SW * 0.08), 70)
    return p


DRAWERS: dict[str, Callable[[np.random.Generator, tuple[float, float]], Layer]] = {
    "washer": draw_washer,
    "nut": draw_nut,
    "nail": draw_nail,
    "screw": draw_screw,
    "crimpterminal": draw_crimpterminal,
}


# ---------------------------------------------------------------------------------------- background


def mat(rng: np.random.Generator) -> tx.FloatImage:
    """A work surface: dark conveyor belt, green cutting mat with grid, or grey-blue ESD mat."""
    h, w = HEIGHT, WIDTH
    kind = int(rng.integers(0, 3))
    if kind == 0:  # rubber conveyor belt: fine lengthwise texture
        base = dr.jitter(rng, (62, 64, 66), 8)
        tex = 0.06 * tx.streaks(rng, h, w, 60, 1.0) + 0.05 * tx.fbm(rng, h, w, 24, 3)
    elif kind == 1:  # self-healing cutting mat
        base = dr.jitter(rng, (78, 112, 62), 8)
        tex = 0.04 * tx.fbm(rng, h, w, 16, 3)
    else:  # ESD mat
        base = dr.jitter(rng, (140, 128, 112), 8)
        tex = 0.022 * tx.fbm(rng, h, w, 10, 3) + 0.02 * tx.smooth_noise(rng, h, w, 1.5)
    img = np.broadcast_to(np.asarray(base, np.float32), (h, w, 3)) * (1.0 + tex)[..., None]
    img = np.ascontiguousarray(img, dtype=np.float32)
    if kind == 1:
        step = rng.uniform(28, 36)
        ox, oy = rng.uniform(0, step, 2)
        line = np.zeros((h, w), np.uint8)
        for k in range(int(w / step) + 2):
            x = round(ox + k * step)
            cv2.line(line, (x, 0), (x, h - 1), 1 + (k % 5 == 0), 1)
        for k in range(int(h / step) + 2):
            y = round(oy + k * step)
            cv2.line(line, (0, y), (w - 1, y), 1 + (k % 5 == 0), 1)
        img *= (1.0 + 0.18 * cv2.GaussianBlur(line.astype(np.float32), (0, 0), 0.6))[..., None]
    # scuffs and dust
    for _ in range(int(rng.integers(2, 8))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        cv2.circle(
            img,
            (round(x), round(y)),
            int(rng.integers(1, 3)),
            tuple(float(v) * 1.35 for v in base),
            -1,
            cv2.LINE_AA,
        )
    return img


# -------------------------------------------------------------------------------------------- render


def _paste(
    dst: np.ndarray, src: np.ndarray, ox: int, oy: int, op: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> None:
    """Combine ``src`` into ``dst`` at (ox, oy) with clipping: ``dst_region = op(dst_region, src_region)``."""
    h, w = src.shape[:2]
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + w, dst.shape[1]), min(oy + h, dst.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    dst[y0:y1, x0:x1] = op(dst[y0:y1, x0:x1], src[y0 - oy : y1 - oy, x0 - ox : x1 - ox])


def render(seed: int, index: int, rotated: bool) -> tuple[np.ndarray, list[Box]]:
    """One scene: BGR uint8 image and the boxes of the parts in it."""
    rng = tx.image_rng(seed, index)
    img = mat(rng)
    occupied = np.zeros((HEIGHT, WIDTH), np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GAP + 1, 2 * GAP + 1))
    boxes: list[Box] = []
    n_parts = int(rng.integers(1, 7))
    shadow_dir = (int(rng.integers(2, 5)), int(rng.integers(2, 5)))
    for _ in range(n_parts):
        cls = CLASSES[int(rng.integers(0, len(CLASSES)))]
        angle = rng.uniform(0, 360)
        part = DRAWERS[cls](rng, dr.rotate_vec((-0.6, -0.8), angle))
        col, alpha = dr.transform_layer(part, angle, 1.0, 1 / SS)
        mask = (alpha >= 0.5).astype(np.uint8)
        local = box_from_mask(cls, mask, rotated=True)
        if local is None or local.rotated is None:
            continue
        # Keep both the pixels (MARGIN) and the corners of the oriented box (>= 0) inside the image.
        corners = rotated_corners(*local.rotated)
        lo_x = max(MARGIN - local.x1, math.ceil(-corners[:, 0].min()))
        hi_x = min(WIDTH - MARGIN - local.x2, math.floor(WIDTH - corners[:, 0].max()))
        lo_y = max(MARGIN - local.y1, math.ceil(-corners[:, 1].min()))
        hi_y = min(HEIGHT - MARGIN - local.y2, math.floor(HEIGHT - corners[:, 1].max()))
        if lo_x > hi_x or lo_y > hi_y:
            continue
        grown = cv2.dilate(mask, kernel)
        for _try in range(30):
            ox, oy = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
            region = np.zeros_like(occupied)
            _paste(region, grown, ox, oy, lambda d, s: s)
            if not (region & occupied).any():
                break
        else:
            continue  # no free spot: leave this part out
        full = np.zeros((HEIGHT, WIDTH), np.uint8)
        _paste(full, mask, ox, oy, lambda d, s: s)
        occupied |= full
        sh = dr.shadow(alpha, shadow_dir, 2.5)
        _paste(img, sh, ox, oy, lambda d, s: d * (1.0 - 0.5 * s)[..., None])
        _paste(img, np.dstack([col, alpha]), ox, oy, lambda d, s: d * (1.0 - s[..., 3:]) + s[..., :3])
        box = box_from_mask(cls, full, rotated=rotated)
        if box is not None:
            boxes.append(box)
    img = tx.apply_gain(img, tx.lighting(rng, HEIGHT, WIDTH, 0.18, 0.22) * rng.uniform(0.9, 1.15))
    img = tx.blur(img, rng.uniform(0.5, 0.8))
    return tx.sensor(rng, img, rng.uniform(2.0, 3.0), 0.04), boxes


def _write(dest: Path, seed: int, n_images: int, n_labelled: int, voc: bool) -> None:
    write_text_lines(dest / "classes.txt", CLASSES)
    for i in range(n_images):
        img, boxes = render(seed, i, rotated=voc)
        stem = f"hw_{i:04d}"
        write_jpg(dest / "images" / f"{stem}.jpg", img)
        if i >= n_labelled:
            continue
        if voc:
            write_voc_xml(dest / "Annotations" / f"{stem}.xml", f"{stem}.jpg", (WIDTH, HEIGHT, 3), boxes)
        else:
            write_tab_labels(dest / "labels" / f"{stem}.txt", boxes)


def _info(n_images: int, n_labelled: int, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "image_size": [WIDTH, HEIGHT],
        "channels": 3,
        "classes": list(CLASSES),
        "counts": {"images": n_images, "labelled": n_labelled, "unlabelled": n_images - n_labelled},
        "layout": {
            "images/": "colour JPEG (quality 92), hw_NNNN.jpg",
            "classes.txt": "class names, one a line",
            **labels,
        },
    }


def generate_boxes(dest: Path, scale: int) -> dict[str, Any]:
    """``hardware``: 60 images with tab-separated axis-aligned box labels."""
    n = 60 * scale
    _write(dest, 1303, n, n, voc=False)
    info = _info(n, n, {"labels/": "one <stem>.txt per image: class<TAB>X1<TAB>Y1<TAB>X2<TAB>Y2 per object"})
    return {**info, "box_format": "class\tX1\tY1\tX2\tY2", "box_coordinates": BOX_NOTE}


def generate_rotated(dest: Path, scale: int) -> dict[str, Any]:
    """``hardware_rotated``: 60 images with Pascal VOC / roLabelImg oriented boxes."""
    n = 60 * scale
    _write(dest, 1304, n, n, voc=True)
    info = _info(n, n, {"Annotations/": "one Pascal VOC <stem>.xml per image with <robndbox> and <bndbox>"})
    return {
        **info,
        "robndbox": (
            "cx, cy, w, h in pixel-edge coordinates (pixel i spans [i, i+1)); w is the long side and points "
            "along (cos angle, sin angle) with y down (roLabelImg convention); angle in radians in [0, pi)"
        ),
        "bndbox": "integer xmin, ymin, xmax, ymax enclosing the rotated box, clipped to the image",
    }


def generate_partial(dest: Path, scale: int) -> dict[str, Any]:
    """``hardware_partial``: 100 images, only the first 40 labelled (for self-training)."""
    n, n_lab = 100 * scale, 40 * scale
    _write(dest, 1305, n, n_lab, voc=False)
    info = _info(n, n_lab, {"labels/": f"tab-separated labels for the first {n_lab} images only"})
    return {**info, "box_format": "class\tX1\tY1\tX2\tY2", "box_coordinates": BOX_NOTE}
