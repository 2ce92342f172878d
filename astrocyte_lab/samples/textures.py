"""Shared building blocks for the procedural sample images.

Everything here works on ``float32`` images in the 0..255 range (grey ``HxW`` or colour ``HxWx3`` in BGR
order, as cv2 writes them) and draws its randomness only from the ``numpy.random.Generator`` it is
given, so that every sample image is a pure function of its seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FloatImage = np.ndarray
"""``float32`` array, grey ``HxW`` or colour ``HxWx3``, values roughly in 0..255."""


def image_rng(seed: int, *keys: int) -> np.random.Generator:
    """Return an independent generator for one image: same (seed, keys) -> same stream, always."""
    return np.random.default_rng([seed, *keys])


# --------------------------------------------------------------------------------------------- noise


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> FloatImage:
    """Band-limited noise with features about ``cell`` pixels wide, zero mean and unit-ish std.

    A coarse random grid is upsampled with bicubic interpolation (much cheaper than blurring white noise
    with a large kernel) and a random sub-cell offset hides the grid alignment.
    """
    cell = max(float(cell), 1.0)
    gh, gw = int(math.ceil(h / cell)) + 3, int(math.ceil(w / cell)) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, big.shape[0] - h - int(cell))))
    ox = int(rng.integers(0, max(1, big.shape[1] - w - int(cell))))
    out = big[oy : oy + h, ox : ox + w]
    return out / (out.std() + 1e-6)


def fbm(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 4, gain: float = 0.5) -> FloatImage:
    """Fractal (multi-octave) noise: natural-looking mottling from ``cell`` pixels down to fine detail."""
    total = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        total += amp * smooth_noise(rng, h, w, cell)
        amp *= gain
        cell = max(cell / 2.0, 1.0)
    return total / (total.std() + 1e-6)


def streaks(
    rng: np.random.Generator, h: int, w: int, length: float, width: float = 1.0, angle: float = 0.0
) -> FloatImage:
    """Directional noise: thin streaks ``length`` px long running at ``angle`` degrees (0 = along x).

    This is the grain of brushed metal, wood fibres or a conveyor belt: white noise stretched along one
    axis, then rotated. Unit std, zero mean.
    """
    if abs(angle) < 1e-3:
        ph, pw = h, w
    else:
        d = int(math.ceil(math.hypot(h, w))) + 2
        ph, pw = d, d
    small = rng.standard_normal((max(2, int(ph / max(width, 1.0))), max(2, int(pw / max(length, 1.0)))))
    img = cv2.resize(small.astype(np.float32), (pw, ph), interpolation=cv2.INTER_CUBIC)
    if ph != h or pw != w:
        m = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), angle, 1.0)
        m[0, 2] -= (pw - w) / 2.0
        m[1, 2] -= (ph - h) / 2.0
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (img - img.mean()) / (img.std() + 1e-6)


# ------------------------------------------------------------------------------------------ lighting


def lighting(rng: np.random.Generator, h: int, w: int, gradient: float = 0.12, vignette: float = 0.15) -> FloatImage:
    """Multiplicative gain field: a linear illumination ramp in a random direction plus lens vignetting.

    Real inspection images are never evenly lit; multiplying by this field (mean ~1) reproduces that.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn = (xx - w / 2.0) / (max(h, w) / 2.0)
    yn = (yy - h / 2.0) / (max(h, w) / 2.0)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    g = float(rng.uniform(0.4, 1.0)) * gradient
    cx, cy = rng.uniform(-0.25, 0.25, size=2)
    v = float(rng.uniform(0.6, 1.0)) * vignette
    ramp = 1.0 + g * (xn * math.cos(phi) + yn * math.sin(phi))
    vig = 1.0 - v * ((xn - cx) ** 2 + (yn - cy) ** 2)
    return (ramp * vig).astype(np.float32)


def apply_gain(img: FloatImage, gain: FloatImage) -> FloatImage:
    """Multiply a grey or colour image by a single-channel gain field."""
    return img * (gain[..., None] if img.ndim == 3 else gain)


# ------------------------------------------------------------------------------------------- sensor


def blur(img: FloatImage, sigma: float) -> FloatImage:
    """Gaussian blur: optics are never perfectly sharp."""
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def sensor(rng: np.random.Generator, img: FloatImage, read_noise: float = 2.5, shot: float = 0.04) -> np.ndarray:
    """Add camera noise (Gaussian read noise + signal-dependent shot noise) and quantise to ``uint8``.

    Shot noise variance grows with brightness (``shot * value``), as for photon counting.
    """
    x = np.clip(img, 0.0, 255.0)
    sd = np.sqrt(read_noise**2 + shot * x)
    x = x + sd * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- masks and compositing


def inner_alpha(mask: np.ndarray, soft: float) -> FloatImage:
    """Soft opacity that is > 0 exactly on ``mask`` pixels and ramps up to 1 over ``soft`` px inwards.

    Rendering a defect with this opacity softens its edges *without* changing a single pixel outside
    its mask, so the saved mask matches the altered pixels exactly.
    """
    m = (mask > 0).astype(np.uint8)
    if not m.any():
        return np.zeros(mask.shape, np.float32)
    d = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    return np.clip(d / max(soft, 1e-3), 0.0, 1.0).astype(np.float32) * m


def line_coverage(
    shape: tuple[int, int], pts: np.ndarray, thickness: int, threshold: float = 0.3
) -> tuple[np.ndarray, FloatImage]:
    """Anti-aliased polyline: return (mask, alpha) with alpha = coverage restricted to the mask.

    The mask is every pixel the line covers by at least ``threshold``; alpha is zero outside it.
    """
    canvas = np.zeros(shape, np.uint8)
    p = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [p], False, 255, max(1, int(thickness)), lineType=cv2.LINE_AA, shift=4)
    cov = canvas.astype(np.float32) / 255.0
    mask = cov >= threshold
    return mask, np.where(mask, cov, 0.0).astype(np.float32)


def bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 48) -> np.ndarray:
    """Points on a quadratic Bezier curve (gently curved scratches)."""
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    return ((1 - t) ** 2) * p0 + 2 * (1 - t) * t * p1 + (t**2) * p2


def blend(dst: FloatImage, color: FloatImage | np.ndarray | float, alpha: FloatImage) -> FloatImage:
    """Alpha-composite ``color`` (image or constant) over ``dst``; alpha is single channel."""
    a = alpha[..., None] if dst.ndim == 3 else alpha
    return dst * (1.0 - a) + np.asarray(color, np.float32) * a


def warp_layer(
    color: FloatImage, alpha: FloatImage, matrix: np.ndarray, size: tuple[int, int]
) -> tuple[FloatImage, FloatImage]:
    """Apply an affine transform (rotate/scale/move) to an object layer and its opacity."""
    w, h = size
    c = cv2.warpAffine(color, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return c, np.clip(a, 0.0, 1.0)


def rescale(img: FloatImage, factor: float) -> FloatImage:
    """Area-average downscale (or linear upscale) by ``factor``: supersampled drawing -> anti-aliasing."""
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)
