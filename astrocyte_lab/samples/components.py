"""``components``: classification sample of electronic components photographed on a circuit board.

Layout: one folder per class (``cap_ceramic/``, ``cap_tantalum/``, ``opto/``, ``resistor/``), colour
8-bit PNG 128x128. The variant is in the file name: ``ceramic_NNN``, ``yellow_NNN`` / ``black_NNN``,
``led_NNN`` / ``lens_NNN``, ``blue_NNN`` / ``beige_NNN``.

Parts are drawn twice the output size in their own axis-aligned frame (colour + opacity layers with
relief shading), rotated/scaled/moved onto the board with a soft shadow, then area-downsampled, lit,
blurred and given sensor noise.
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
from astrocyte_lab.samples.drawing import Color, Layer
from astrocyte_lab.samples.writers import write_png

SEED = 2202
OUT = 128
SS = 2  # supersampling factor
C = OUT * SS  # drawing canvas size
N_PER_CLASS = 24
CLASSES = ("cap_ceramic", "cap_tantalum", "opto", "resistor")

# --------------------------------------------------------------------------------------------- parts


def draw_ceramic(p: Layer) -> None:
    """MLCC chip capacitor: beige/brown ceramic body between two metal end caps."""
    rng, m = p.rng, C / 2
    length, width = rng.uniform(96, 118), rng.uniform(48, 62)
    cap = length * rng.uniform(0.17, 0.22)
    x0, x1, y0, y1 = m - length / 2, m + length / 2, m - width / 2, m + width / 2
    body_col = dr.jitter(rng, (95, 140, 175) if rng.random() < 0.6 else (70, 105, 140), 14)
    body = p.rrect(x0 + cap - 2, y0 + 1, x1 - cap + 2, y1 - 1, 3)
    p.paint(body, body_col, p.relief(body, 5), grain=5)
    metal = dr.jitter(rng, (178, 180, 176), 10)
    for a, b in ((x0, x0 + cap), (x1 - cap, x1)):
        end = p.rrect(a, y0, b, y1, 6)
        p.paint(end, metal, p.relief(end, 7, 1.2), grain=7)
        p.specular(end, ((a + b) / 2, y0 + width * 0.3), (cap * 0.35, width * 0.18), 45)


def draw_tantalum(p: Layer, yellow: bool) -> None:
    """Moulded tantalum capacitor: yellow or black body, polarity band at the anode, printed code."""
    rng, m = p.rng, C / 2
    length, width = rng.uniform(100, 120), rng.uniform(60, 74)
    tab = length * 0.12
    x0, x1, y0, y1 = m - length / 2, m + length / 2, m - width / 2, m + width / 2
    tin = dr.jitter(rng, (150, 165, 170), 10)
    for a, b in ((x0, x0 + tab + 6), (x1 - tab - 6, x1)):
        t = p.rrect(a, m - width * 0.32, b, m + width * 0.32, 2)
        p.paint(t, tin, p.relief(t, 4, 1.0), grain=6)
    body = p.rrect(x0 + tab, y0, x1 - tab, y1, 5)
    body_col = dr.jitter(rng, (30, 165, 212), 12) if yellow else dr.jitter(rng, (34, 32, 30), 5)
    shade = p.relief(body, 9, 1.1)
    p.paint(body, body_col, shade, grain=4)
    band_x = x0 + tab + 4
    band = body & p.rrect(band_x, y0, band_x + length * rng.uniform(0.12, 0.17), y1, 0)
    band_col = dr.jitter(rng, (25, 60, 105), 10) if yellow else dr.jitter(rng, (175, 175, 170), 10)
    p.paint(band, band_col, shade, grain=4)
    ink = (30, 55, 95) if yellow else (165, 165, 160)
    code = str(rng.choice(["107", "226", "475", "106", "335", "157"]))
    text = np.zeros((C, C), np.uint8)
    cv2.putText(text, code, (round(m - 14), round(m + 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.75, 1, 2, cv2.LINE_AA)
    text_mask = (text > 0) & body & ~band
    p.paint(text_mask, ink, shade, grain=3)
    p.specular(body, (m - length * 0.1, y0 + width * 0.25), (length * 0.3, width * 0.12), 25 if yellow else 35)


def draw_led(p: Layer) -> None:
    """Through-hole LED seen from above: clear/white dome with flange, die cup inside, two leads."""
    rng, m = p.rng, C / 2
    r = rng.uniform(38, 46)
    lead = dr.jitter(rng, (165, 168, 168), 8)
    for dx in (-r * 0.28, r * 0.28):
        wire = p.rrect(m + dx - 3, m, m + dx + 3, C - 2, 1)
        p.paint(wire, lead, p.relief(wire, 3, 1.3), grain=4)
    flange = p.circle(m, m, r + 5)
    flange[:, round(m + r + 1) :] = False  # the flat side marks the cathode
    clear = dr.jitter(rng, (222, 226, 228) if rng.random() < 0.6 else (200, 230, 235), 8)
    p.paint(flange, tuple(0.8 * v for v in clear), p.relief(flange, 4), grain=4)
    dome = p.circle(m, m, r)
    yy, xx = p.grid
    rr = np.sqrt((xx - m) ** 2 + (yy - m) ** 2) / r
    p.paint(dome, clear, np.clip(1.05 - 0.35 * rr**3, 0, 1), grain=3)
    # Inside the epoxy: the reflector cup (anvil) and the post, seen through the lens.
    cup = p.rrect(m - r * 0.45, m - r * 0.2, m + r * 0.02, m + r * 0.25, 4)
    post = p.rrect(m + r * 0.12, m - r * 0.12, m + r * 0.38, m + r * 0.18, 3)
    p.col[cup] *= 0.55
    p.col[post] *= 0.65
    p.specular(dome, (m - r * 0.35, m - r * 0.4), (r * 0.3, r * 0.18), 55)
    p.specular(dome, (m + r * 0.4, m + r * 0.45), (r * 0.12, r * 0.08), 30)


def draw_lens(p: Layer) -> None:
    """SMD optical sensor / LED: dark square package with a glassy round lens and side pads."""
    rng, m = p.rng, C / 2
    s = rng.uniform(70, 86)
    tin = dr.jitter(rng, (160, 170, 172), 8)
    for sy in (-1, 1):
        for sx in (-0.5, 0.5):
            pad = p.rrect(
                m + sx * s * 0.6 - 6,
                m + sy * s / 2 - 8 * (sy < 0),
                m + sx * s * 0.6 + 6,
                m + sy * s / 2 + 8 * (sy > 0),
                1,
            )
            p.paint(pad, tin, p.relief(pad, 3), grain=5)
    body = p.rrect(m - s / 2, m - s / 2, m + s / 2, m + s / 2, 6)
    p.paint(body, dr.jitter(rng, (42, 40, 40), 6), p.relief(body, 7, 1.2), grain=4)
    lr = s * rng.uniform(0.3, 0.36)
    ring = p.circle(m, m, lr + 4)
    p.paint(ring, (70, 70, 72), p.relief(ring, 3), grain=3)
    lens = p.circle(m, m, lr)
    yy, xx = p.grid
    rr = np.sqrt((xx - m) ** 2 + (yy - m) ** 2) / lr
    tint = dr.jitter(rng, (60, 55, 50) if rng.random() < 0.5 else (45, 50, 80), 8)
    p.paint(lens, tint, 0.7 + 0.6 * rr**2, grain=2)
    p.specular(lens, (m - lr * 0.35, m - lr * 0.35), (lr * 0.35, lr * 0.25), 110)


RESISTOR_BANDS: tuple[Color, ...] = (
    (20, 20, 20),
    (30, 50, 100),
    (40, 40, 190),
    (30, 120, 235),
    (40, 210, 230),
    (60, 150, 40),
    (170, 80, 30),
    (150, 50, 120),
    (128, 128, 128),
    (235, 235, 235),
)
GOLD: Color = (60, 150, 190)


def draw_resistor(p: Layer, blue: bool) -> None:
    """Axial through-hole resistor: dog-bone body (blue or beige), colour bands, wire leads."""
    rng, m = p.rng, C / 2
    length, width = rng.uniform(100, 120), rng.uniform(30, 36)
    yy, _ = p.grid
    cyl = np.clip(np.cos((yy - m) / (width * 0.62) * (math.pi / 2)), 0.15, 1.0) ** 0.6  # round body
    wire = p.rrect(0, m - 3, C - 1, m + 3, 1)
    p.paint(wire, dr.jitter(rng, (170, 172, 170), 8), 0.55 + 0.5 * cyl, grain=4)
    x0, x1 = m - length / 2, m + length / 2
    body = p.rrect(x0 + 12, m - width / 2, x1 - 12, m + width / 2, 6)
    end_w = width * 1.22
    body |= p.rrect(x0, m - end_w / 2, x0 + length * 0.24, m + end_w / 2, end_w * 0.45)
    body |= p.rrect(x1 - length * 0.24, m - end_w / 2, x1, m + end_w / 2, end_w * 0.45)
    body_col = dr.jitter(rng, (175, 125, 60), 12) if blue else dr.jitter(rng, (135, 180, 205), 10)
    shade = cyl * 0.9 + 0.15
    p.paint(body, body_col, shade, grain=5)
    n_bands = 5 if blue else 4
    xs = np.linspace(x0 + length * 0.2, x1 - length * 0.32, n_bands - 1).tolist() + [x1 - length * 0.16]
    bw = length * 0.055
    for i, bx in enumerate(xs):
        col = GOLD if i == n_bands - 1 else RESISTOR_BANDS[int(rng.integers(0, 10))]
        band = body & p.rrect(bx - bw / 2, 0, bx + bw / 2, C - 1, 0)
        p.paint(band, dr.jitter(rng, col, 6), shade, grain=3)
    p.specular(body, (m, m - width * 0.22), (length * 0.5, width * 0.07), 45)


DRAWERS: dict[str, tuple[tuple[str, Callable[[Layer], None]], ...]] = {
    "cap_ceramic": (("ceramic", draw_ceramic),),
    "cap_tantalum": (
        ("yellow", lambda p: draw_tantalum(p, True)),
        ("black", lambda p: draw_tantalum(p, False)),
    ),
    "opto": (("led", draw_led), ("lens", draw_lens)),
    "resistor": (("blue", lambda p: draw_resistor(p, True)), ("beige", lambda p: draw_resistor(p, False))),
}


# ---------------------------------------------------------------------------------------- background


def board(rng: np.random.Generator) -> tx.FloatImage:
    """Green solder-mask board at drawing resolution: glass weave, copper traces, vias, silkscreen."""
    base = np.asarray(dr.jitter(rng, (52, 88, 42), 10), np.float32)
    img = np.broadcast_to(base, (C, C, 3)).copy()
    img *= (1.0 + 0.06 * tx.fbm(rng, C, C, 40, octaves=4))[..., None]
    yy, xx = np.mgrid[0:C, 0:C].astype(np.float32)
    weave = np.sin(xx * 2 * math.pi / 9) * np.sin(yy * 2 * math.pi / 9)
    img *= (1.0 + 0.025 * weave)[..., None]
    traces = np.zeros((C, C), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        x, y = rng.uniform(0, C, 2)
        pts = [(x, y)]
        for _ in range(3):
            d = rng.choice([0, 45, 90, 135, 180, 225, 270, 315])
            step = rng.uniform(30, 140)
            x, y = x + step * math.cos(math.radians(d)), y + step * math.sin(math.radians(d))
            pts.append((x, y))
        cv2.polylines(traces, [np.round(np.array(pts)).astype(np.int32)], False, 1, int(rng.integers(5, 12)))
    tr = cv2.GaussianBlur(traces.astype(np.float32), (0, 0), 1.2)
    img *= (1.0 + 0.22 * tr)[..., None]
    for _ in range(int(rng.integers(0, 4))):
        vx, vy = rng.uniform(10, C - 10, 2)
        cv2.circle(img, (round(vx), round(vy)), 9, (150, 165, 170), -1, cv2.LINE_AA)
        cv2.circle(img, (round(vx), round(vy)), 4, (25, 30, 25), -1, cv2.LINE_AA)
    if rng.random() < 0.7:  # silkscreen outline of the part's footprint
        s = rng.uniform(150, 190)
        cv2.rectangle(
            img,
            (round(C / 2 - s / 2), round(C / 2 - s / 2.6)),
            (round(C / 2 + s / 2), round(C / 2 + s / 2.6)),
            (215, 220, 220),
            3,
            cv2.LINE_AA,
        )
    return img


# ------------------------------------------------------------------------------------------- render


def render(cls: str, index: int) -> tuple[str, np.ndarray]:
    """One component image; returns (file stem, BGR uint8 image)."""
    rng = tx.image_rng(SEED, CLASSES.index(cls), index)
    variants = DRAWERS[cls]
    variant, draw = variants[index % len(variants)]
    angle = rng.uniform(-15, 15) + (90 if rng.random() < 0.3 else 0) + (180 if rng.random() < 0.5 else 0)
    light = dr.rotate_vec((-0.6, -0.8), angle)
    img = board(rng)
    part = Layer(rng, C, light)
    draw(part)
    mat = cv2.getRotationMatrix2D((C / 2, C / 2), angle, rng.uniform(0.9, 1.1))
    mat[:, 2] += rng.uniform(-8, 8, 2) * SS
    col, alpha = tx.warp_layer(part.col, part.alpha, mat, (C, C))
    shadow = cv2.GaussianBlur(alpha, (0, 0), 5.0)
    shadow = np.roll(shadow, (6, 4), axis=(0, 1))
    img *= (1.0 - 0.45 * shadow)[..., None]
    img = img * (1 - alpha[..., None]) + col
    img = tx.rescale(img, 1 / SS)
    img = tx.apply_gain(img, tx.lighting(rng, OUT, OUT, 0.15, 0.2) * rng.uniform(0.9, 1.1))
    img = tx.blur(img, rng.uniform(0.4, 0.7))
    return f"{variant}_{index:03d}", tx.sensor(rng, img, rng.uniform(1.5, 2.5), 0.03)


def generate(dest: Path, scale: int) -> dict[str, Any]:
    """Write the components sample into ``dest``; return manifest fields."""
    n = N_PER_CLASS * scale
    for cls in CLASSES:
        for i in range(n):
            stem, img = render(cls, i)
            write_png(dest / cls / f"{stem}.png", img)
    return {
        "image_size": [OUT, OUT],
        "channels": 3,
        "classes": list(CLASSES),
        "counts": {cls: n for cls in CLASSES},
        "layout": {
            f"{cls}/": f"{n} colour PNG images of class {cls!r}; variant in the name: "
            + ", ".join(f"{v}_NNN.png" for v, _ in DRAWERS[cls])
            for cls in CLASSES
        },
    }
