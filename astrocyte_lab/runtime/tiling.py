"""Cut a large image into overlapping tiles and stitch per-tile results back together (numpy only).

Used by the runtime predictor for tiled segmentation packages and by the training side's evaluation, so both
see exactly the same tiles. The rule (also in the runtime README):

* **Origins** along an axis of ``length`` pixels for tiles of ``tile`` pixels: the first tile starts at 0,
  the next ones every ``step = tile - round(tile * overlap)`` pixels (``round`` rounds halves up; the step is
  at least 1), until a tile reaches the end. The last tile may run past the end of the image; it is not
  shifted back. A length up to one tile gives one tile at 0. :func:`tile_grid` combines both axes, row by
  row (``y`` outer, ``x`` inner).
* **Padding**: the part of a tile beyond the image is filled with the mean of the tile's own in-image pixels,
  per channel (:func:`extract_tile`). The runtime pads the *normalised* image (ROI-ignored pixels already
  set to 0), so the fill is the mean of the normalised values the network sees in that tile. Without an ROI
  mask this equals padding before normalisation (normalisation is a per-channel affine map, which commutes
  with the mean) up to float rounding; with one, the ignored pixels count in the mean as the mean colour.
* **Stitching**: overlapping tiles are averaged with the weights of :func:`blend_weights`, a separable window
  that is 1 in the tile's middle and falls off smoothly (a raised-cosine ramp) across the overlap band at
  each edge, but never reaches 0. In the regular part of the grid the ramps of neighbouring tiles add up to
  exactly 1, so a weighted average is a cross-fade; a pixel covered by one tile only takes that tile's value.
  :func:`stitch` divides by the summed weights, so the result is a true weighted mean everywhere.

For a per-pixel model (no spatial context) a stitched prediction equals the untiled one up to float rounding;
that is the property the tests check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _check_overlap(overlap: float) -> float:
    value = float(overlap)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    return value


def _check_positive(value: int, name: str) -> int:
    number = int(value)
    if number <= 0 or number != value:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return number


def overlap_pixels(tile: int, overlap: float) -> int:
    """Pixels two neighbouring tiles share along an axis: ``tile - tile_step(tile, overlap)``."""
    return _check_positive(tile, "tile size") - tile_step(tile, overlap)


def tile_step(tile: int, overlap: float) -> int:
    """Distance between neighbouring tile origins: ``tile - round(tile * overlap)`` (halves up), at least 1."""
    tile = _check_positive(tile, "tile size")
    shared = math.floor(tile * _check_overlap(overlap) + 0.5)
    return max(1, tile - shared)


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of the tiles along one axis of ``length`` pixels (see the module docstring).

    >>> tile_origins(10, 4, 0.0)
    [0, 4, 8]
    >>> tile_origins(10, 4, 0.5)
    [0, 2, 4, 6]
    >>> tile_origins(3, 4, 0.25)
    [0]
    """
    length = _check_positive(length, "length")
    step = tile_step(tile, overlap)
    origins = [0]
    while origins[-1] + tile < length:
        origins.append(origins[-1] + step)
    return origins


def tile_grid(width: int, height: int, tile_w: int, tile_h: int, overlap: float) -> list[tuple[int, int]]:
    """``(x, y)`` origins of the tiles covering a ``width`` x ``height`` image, row-major (``y`` outer)."""
    xs = tile_origins(width, tile_w, overlap)
    ys = tile_origins(height, tile_h, overlap)
    return [(x, y) for y in ys for x in xs]


def extract_tile(image: np.ndarray, x: int, y: int, tile_w: int, tile_h: int) -> np.ndarray:
    """The ``(tile_h, tile_w, C)`` tile of an ``(H, W, C)`` image whose top-left corner is ``(x, y)``.

    Parts beyond the image are filled with the mean of the tile's in-image pixels, per channel. A 2-D
    ``(H, W)`` image gives a 2-D tile. The tile keeps the image's dtype (float input expected); it is
    always a new array. ``x`` and ``y`` must lie inside the image.
    """
    array = np.asarray(image)
    flat = array.ndim == 2
    if flat:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {np.shape(image)}")
    tile_w, tile_h = _check_positive(tile_w, "tile width"), _check_positive(tile_h, "tile height")
    height, width = array.shape[:2]
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"tile origin ({x}, {y}) is outside the {width}x{height} image")
    inside = array[y:y + tile_h, x:x + tile_w]
    if inside.shape[:2] == (tile_h, tile_w):
        tile = inside.copy()
    else:
        fill = inside.mean(axis=(0, 1), dtype=np.float64).astype(array.dtype)
        tile = np.empty((tile_h, tile_w, array.shape[2]), dtype=array.dtype)
        tile[...] = fill
        tile[:inside.shape[0], :inside.shape[1]] = inside
    return tile[:, :, 0] if flat else tile


def _ramp(tile: int, band: int) -> np.ndarray:
    """1-D window: raised-cosine ramp over ``band`` pixels at both ends, 1 in between, never 0."""
    if band <= 0:
        return np.ones(tile, dtype=np.float64)
    index = np.arange(tile, dtype=np.float64)
    edge = np.minimum(index, tile - 1 - index) + 0.5  # distance of the pixel centre from the nearer end
    fraction = np.minimum(edge / band, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * fraction)


def blend_weights(tile_w: int, tile_h: int, overlap: float) -> np.ndarray:
    """``(tile_h, tile_w)`` float32 stitching weights, strictly positive, 1 in the middle of the tile.

    Along each axis the weight rises from the tile's edge to 1 over the overlap band (``tile -
    tile_step(tile, overlap)`` pixels) as ``0.5 - 0.5 * cos(pi * d / band)``, ``d`` being the distance of
    the pixel centre from the edge; the 2-D window is the product of both axes. With ``overlap == 0`` it is
    all ones (plain tiling, no blending).
    """
    row = _ramp(_check_positive(tile_w, "tile width"), overlap_pixels(tile_w, overlap))
    column = _ramp(_check_positive(tile_h, "tile height"), overlap_pixels(tile_h, overlap))
    weights = (column[:, None] * row[None, :]).astype(np.float32)
    return np.maximum(weights, np.finfo(np.float32).tiny)


def stitch(tiles_probs: Sequence[np.ndarray], origins: Sequence[tuple[int, int]], width: int, height: int,
           weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of overlapping ``(K, th, tw)`` tiles placed at ``origins``: a ``(K, height, width)`` array.

    ``origins`` are the ``(x, y)`` tile corners (as from :func:`tile_grid`); parts of tiles beyond the image
    are dropped. ``weights`` is a ``(th, tw)`` window (:func:`blend_weights`; None means equal weights).
    Every pixel must be covered by at least one tile. The result is float32.
    """
    width, height = _check_positive(width, "width"), _check_positive(height, "height")
    if len(tiles_probs) != len(origins):
        raise ValueError(f"{len(tiles_probs)} tiles but {len(origins)} origins")
    if not tiles_probs:
        raise ValueError("no tiles to stitch")
    first = np.asarray(tiles_probs[0])
    if first.ndim != 3:
        raise ValueError(f"tiles must be (K, th, tw) arrays, got shape {first.shape}")
    classes, tile_h, tile_w = first.shape
    window = np.ones((tile_h, tile_w), np.float32) if weights is None else np.asarray(weights, np.float32)
    if window.shape != (tile_h, tile_w):
        raise ValueError(f"weights are {window.shape} but the tiles are {(tile_h, tile_w)}")
    total = np.zeros((classes, height, width), dtype=np.float32)
    weight_sum = np.zeros((height, width), dtype=np.float32)
    for tile, (x, y) in zip(tiles_probs, origins, strict=True):
        tile = np.asarray(tile)
        if tile.shape != first.shape:
            raise ValueError(f"all tiles must have shape {first.shape}, got {tile.shape}")
        x, y = int(x), int(y)
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"tile origin ({x}, {y}) is outside the {width}x{height} image")
        h, w = min(tile_h, height - y), min(tile_w, width - x)
        part = window[:h, :w]
        total[:, y:y + h, x:x + w] += tile[:, :h, :w] * part
        weight_sum[y:y + h, x:x + w] += part
    if not np.all(weight_sum > 0):
        raise ValueError("the tiles do not cover the whole image")
    total /= weight_sum
    return total
