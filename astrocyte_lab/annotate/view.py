"""Showing an image for annotation: zoom / pan mapping, 8-bit display pixels, mask and ROI overlays, colours.

Pure numpy / OpenCV, so the canvas widget only ships finished pixels and draw commands.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# distinct category colours (index order); pseudo labels and the selection have their own
PALETTE: tuple[str, ...] = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#42d4f4", "#f032e6", "#bfef45",
                            "#ffe119", "#911eb4", "#469990", "#9a6324", "#800000", "#aaffc3", "#808000",
                            "#000075", "#fabed4")
PSEUDO_COLOUR = "#ff66ff"
SELECTION_COLOUR = "#ffffff"
ROI_TINT = (40, 40, 60)


def category_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)] if index >= 0 else "#888888"


def rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass
class Viewport:
    """Maps image pixels to canvas pixels: ``screen = (image - origin) * zoom``.

    ``origin`` (``x0, y0``) is the image point at the canvas's top-left corner.
    """

    image_width: int
    image_height: int
    width: int
    height: int
    zoom: float = 1.0
    x0: float = 0.0
    y0: float = 0.0
    min_zoom: float = 0.02
    max_zoom: float = 64.0

    def to_image(self, sx: float, sy: float) -> tuple[float, float]:
        return self.x0 + sx / self.zoom, self.y0 + sy / self.zoom

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.zoom, (y - self.y0) * self.zoom

    def points_to_screen(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64).reshape(-1, 2) - (self.x0, self.y0)) * self.zoom

    def fit(self) -> None:
        """Show the whole image, centred."""
        self.zoom = min(self.width / self.image_width, self.height / self.image_height)
        self.x0 = (self.image_width - self.width / self.zoom) / 2
        self.y0 = (self.image_height - self.height / self.zoom) / 2

    def zoom_at(self, factor: float, sx: float | None = None, sy: float | None = None) -> None:
        """Zoom by ``factor`` keeping the image point under canvas ``(sx, sy)`` (default: centre) still."""
        sx = self.width / 2 if sx is None else sx
        sy = self.height / 2 if sy is None else sy
        x, y = self.to_image(sx, sy)
        self.zoom = float(np.clip(self.zoom * factor, self.min_zoom, self.max_zoom))
        self.x0, self.y0 = x - sx / self.zoom, y - sy / self.zoom

    def pan(self, dsx: float, dsy: float) -> None:
        """Move the image by ``(dsx, dsy)`` canvas pixels."""
        self.x0 -= dsx / self.zoom
        self.y0 -= dsy / self.zoom

    def placement(self) -> tuple[float, float, float, float]:
        """Where the whole image lands on the canvas: ``(x, y, width, height)`` in canvas pixels."""
        x, y = self.to_screen(0, 0)
        return x, y, self.image_width * self.zoom, self.image_height * self.zoom

    def render(self, image: np.ndarray) -> np.ndarray:
        """The canvas-sized view of ``image`` (H, W, C uint8); outside the image stays transparent/black."""
        z = self.zoom
        src = image
        scale = 1.0
        if z < 1.0:  # shrink first with area averaging so zoomed-out views do not alias
            scale = z
            src = cv2.resize(image, (max(1, round(image.shape[1] * z)), max(1, round(image.shape[0] * z))),
                             interpolation=cv2.INTER_AREA)
        rel = z / scale
        # OpenCV indexes pixel centres; map centre to centre in the pixel-edge convention
        shift = 0.5 * rel - 0.5
        matrix = np.array([[rel, 0, shift - self.x0 * z], [0, rel, shift - self.y0 * z]], dtype=np.float64)
        out = cv2.warpAffine(src, matrix, (self.width, self.height), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.reshape(self.height, self.width, -1)


def display_pixels(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """8-bit RGB ``(H, W, 3)`` for display: grey is repeated, 16-bit data scaled by its bit depth."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8:
        bits = bit_depth if 8 < bit_depth <= 16 else 16
        top = float(2 ** bits - 1)
        pixels = np.clip(pixels.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def _edges(binary: np.ndarray) -> np.ndarray:
    """Pixels of ``binary`` that touch a pixel outside it (a one-pixel outline)."""
    eroded = cv2.erode(binary.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)
    return binary & ~eroded.astype(bool)


def compose(pixels: np.ndarray, mask: np.ndarray | None = None, predicted: np.ndarray | None = None,
            active: np.ndarray | None = None, background: int = 0, show_truth: bool = True,
            show_predictions: bool = True, alpha: float = 0.4) -> np.ndarray:
    """RGBA display image: masks filled semi-transparent with an outline, predictions outlined, ROI greyed.

    ``mask`` / ``predicted`` hold category indices (``background`` left clear) or bools (anomaly);
    ``active`` is the dataset's active region (pixels outside it are darkened).
    """
    out = pixels.astype(np.float32)
    if show_truth and mask is not None:
        _paint_mask(out, mask, background, alpha, fill=True)
    if show_predictions and predicted is not None:
        _paint_mask(out, predicted, background, alpha, fill=False)
    if active is not None:
        ignored = ~active
        out[ignored] = out[ignored] * 0.3 + np.asarray(ROI_TINT, np.float32) * 0.7
    rgba = np.empty((*pixels.shape[:2], 4), np.uint8)
    rgba[:, :, :3] = np.clip(out, 0, 255).astype(np.uint8)
    rgba[:, :, 3] = 255
    return rgba


def _paint_mask(out: np.ndarray, mask: np.ndarray, background: int, alpha: float, fill: bool) -> None:
    values = [1] if mask.dtype == bool else [int(v) for v in np.unique(mask) if int(v) != background]
    for value in values:
        binary = mask if mask.dtype == bool else mask == value
        colour = np.asarray(rgb(category_colour(0 if mask.dtype == bool else value)), np.float32)
        if fill:
            out[binary] = out[binary] * (1 - alpha) + colour * alpha
            out[_edges(binary)] = colour
        else:  # predictions: a dotted outline in a lighter tint
            edge = _edges(binary)
            ys, xs = np.nonzero(edge)
            keep = ((xs + ys) // 2) % 2 == 0
            out[ys[keep], xs[keep]] = colour * 0.5 + 127.5
