"""Drawing objects (components, hardware parts) as shaded colour + opacity layers.

An object is drawn axis-aligned in its own square frame, usually at twice the output resolution, with
"relief" shading (edges rounded and lit from one side), a little surface texture and specular
highlights, so that it reads as a solid, lit object rather than a flat cartoon shape. The layer is
then rotated/scaled and composited onto a background by the dataset module.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from astrocyte_lab.samples import textures as tx

Color = tuple[float, float, float]
"""BGR colour, 0..255."""


def jitter(rng: np.random.Generator, color: Color, amount: float = 12.0) -> Color:
    """A random variation of ``color`` (each channel +- ``amount``)."""
    c = np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3)
    return (float(c[0]), float(c[1]), float(c[2]))


def rotate_vec(v: tuple[float, float], angle_deg: float) -> tuple[float, float]:
    """Express a world-frame direction in the frame of an object that cv2 rotates by ``angle_deg``.

    cv2.getRotationMatrix2D turns counter-clockwise on screen for positive angles; the inverse of that
    rotation brings a world vector into the object's own frame.
    """
    t = math.radians(angle_deg)
    return (v[0] * math.cos(t) - v[1] * math.sin(t), v[0] * math.sin(t) + v[1] * math.cos(t))


class Layer:
    """A square ``size x size`` BGR colour + opacity layer to draw one object into."""

    def __init__(self, rng: np.random.Generator, size: int, light: tuple[float, float] = (-0.6, -0.8)) -> None:
        self.rng = rng
        self.size = size
        self.light = light  # direction *towards* the light, in this layer's frame
        self.col = np.zeros((size, size, 3), np.float32)
        self.alpha = np.zeros((size, size), np.float32)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinate arrays (yy, xx), computed once."""
        if self._grid is None:
            yy, xx = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
            self._grid = (yy, xx)
        return self._grid

    def mask(self) -> np.ndarray:
        """Empty boolean mask of this layer's size, to draw shapes into."""
        return np.zeros((self.size, self.size), bool)

    def relief(self, mask: np.ndarray, width: float, strength: float = 0.9) -> np.ndarray:
        """Brightness factor for a raised region: edges rounded over ``width`` px, lit from ``light``."""
        m = mask.astype(np.uint8)
        height = np.clip(cv2.distanceTransform(m, cv2.DIST_L2, 3) / max(width, 1e-3), 0, 1)
        height = cv2.GaussianBlur(height, (0, 0), 1.0)
        gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        lx, ly = self.light
        slope = -(gx * lx + gy * ly) * width * strength
        return (0.82 + 0.18 * height + slope).astype(np.float32)

    def paint(self, mask: np.ndarray, color: Color, shade: np.ndarray | float = 1.0, grain: float = 6.0) -> None:
        """Fill ``mask`` opaquely with ``color`` times ``shade`` plus a little surface texture."""
        n = self.size
        tex = grain * tx.fbm(self.rng, n, n, max(3.0, n / 40), octaves=2)
        sh = np.broadcast_to(np.asarray(shade, np.float32), (n, n))
        val = np.asarray(color, np.float32) * sh[..., None] + tex[..., None]
        self.col[mask] = val[mask]
        self.alpha[mask] = 1.0

    def specular(self, mask: np.ndarray, center: tuple[float, float], radii: tuple[float, float], gain: float) -> None:
        """Add a soft elliptical highlight inside ``mask``."""
        yy, xx = self.grid
        g = np.exp(-(((xx - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2))
        self.col += (gain * g * mask)[..., None]

    def rrect(self, x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
        """Boolean mask of a rounded rectangle."""
        m = np.zeros((self.size, self.size), np.uint8)
        x0, y0, x1, y1, r = (round(v) for v in (x0, y0, x1, y1, r))
        r = max(0, min(r, (x1 - x0) // 2, (y1 - y0) // 2))
        cv2.rectangle(m, (x0 + r, y0), (x1 - r, y1), 1, -1)
        cv2.rectangle(m, (x0, y0 + r), (x1, y1 - r), 1, -1)
        if r > 0:
            for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
                cv2.circle(m, (cx, cy), r, 1, -1)
        return m.astype(bool)

    def circle(self, cx: float, cy: float, r: float) -> np.ndarray:
        """Boolean disc mask (sub-pixel centre and radius)."""
        m = np.zeros((self.size, self.size), np.uint8)
        cv2.circle(m, (round(cx * 16), round(cy * 16)), max(1, round(r * 16)), 1, -1, lineType=cv2.LINE_8, shift=4)
        return m.astype(bool)

    def poly(self, pts: np.ndarray | list[tuple[float, float]]) -> np.ndarray:
        """Boolean mask of a filled polygon (sub-pixel vertices)."""
        m = np.zeros((self.size, self.size), np.uint8)
        p = np.round(np.asarray(pts, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(m, [p], 1, lineType=cv2.LINE_8, shift=4)
        return m.astype(bool)

    def cylinder(self, axis: str, center: float, radius: float, floor: float = 0.35) -> np.ndarray:
        """Shading of a cylinder lying along ``axis`` ('x' or 'y'): bright ridge, dark rims."""
        yy, xx = self.grid
        d = (yy if axis == "x" else xx) - center
        lx, ly = self.light
        tilt = (ly if axis == "x" else lx) * 0.35  # the ridge moves towards the light
        c = np.cos(np.clip(d / max(radius, 1e-3) + tilt, -1.0, 1.0) * (math.pi / 2))
        return (floor + (1.0 - floor) * np.clip(c, 0, 1) ** 0.7).astype(np.float32)

    def punch(self, mask: np.ndarray) -> None:
        """Make ``mask`` transparent again (holes in washers, nuts, ring terminals)."""
        self.col[mask] = 0.0
        self.alpha[mask] = 0.0


def transform_layer(
    layer: Layer, angle_deg: float, scale: float = 1.0, zoom: float = 1.0
) -> tuple[tx.FloatImage, tx.FloatImage]:
    """Rotate ``layer`` by ``angle_deg`` (counter-clockwise on screen) and ``scale`` about its centre,
    then resample by ``zoom``; returns (premultiplied colour, opacity).

    With a supersampled layer and ``zoom`` < 1 the edges come out anti-aliased: the layer is rotated at
    full resolution and then area-averaged down.
    """
    n = layer.size
    mat = cv2.getRotationMatrix2D((n / 2.0, n / 2.0), angle_deg, scale)
    col, alpha = tx.warp_layer(layer.col, layer.alpha, mat, (n, n))
    if abs(zoom - 1.0) > 1e-6:
        col, alpha = tx.rescale(col, zoom), np.clip(tx.rescale(alpha, zoom), 0, 1)
    return col, alpha


def shadow(alpha: tx.FloatImage, offset: tuple[int, int], sigma: float) -> tx.FloatImage:
    """Soft drop shadow of an opacity layer, shifted by ``offset`` (dx, dy) px."""
    s = cv2.GaussianBlur(alpha, (0, 0), sigma)
    m = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    return cv2.warpAffine(s, m, (alpha.shape[1], alpha.shape[0]), borderMode=cv2.BORDER_CONSTANT)
