"""MS COCO run-length encoded masks: decoding (both count forms), encoding, and masks to polygons.

A COCO RLE mask is ``{"size": [height, width], "counts": ...}``: alternating run lengths of 0s and 1s
(starting with 0s) over the pixels in column-major order. ``counts`` is either a list of integers or the
compact string form: every count, from the fourth on stored as the difference to the count two places
earlier, is cut into 5-bit groups, low bits first; each group becomes one character ``48 + group``, with
bit 0x20 set while more groups follow, and bit 0x10 of the last group carrying the sign.
This is small enough to implement here rather than depend on pycocotools.

Decoding checks what the dict declares before allocating anything: ``size`` must be two whole numbers
within the ``image_pixels`` limit (a 300-byte file must not make us allocate gigabytes), one count holds
at most :data:`MAX_GROUPS` groups, and the counts must add up to exactly ``height x width``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from astrocyte_lab.data.limits import check_limit

MAX_GROUPS = 13
"""5-bit groups in one compact count: 65 bits, more than any mask within the pixel limit needs."""


def decode_counts(text: str) -> list[int]:
    """The run lengths stored in a compact RLE string."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise ValueError("RLE string ends inside a count")
            if shift >= 5 * MAX_GROUPS:
                raise ValueError(f"RLE string holds a count of more than {MAX_GROUPS} characters")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {text[position]!r} cannot appear in an RLE string")
            position += 1
            value |= (group & 0x1F) << shift
            shift += 5
            more = bool(group & 0x20)
            if not more and group & 0x10:
                value -= 1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode_counts(counts: Sequence[int]) -> str:
    """The compact RLE string of a list of run lengths (inverse of :func:`decode_counts`)."""
    out: list[str] = []
    for index, count in enumerate(counts):
        value = int(count) - (int(counts[index - 2]) if index > 2 else 0)
        while True:
            group = value & 0x1F
            value >>= 5
            more = not ((value == 0 and not group & 0x10) or (value == -1 and group & 0x10))
            out.append(chr(48 + (group | (0x20 if more else 0))))
            if not more:
                break
    return "".join(out)


def decode(rle: dict, source: str | Path = "RLE mask") -> np.ndarray:
    """A ``(height, width)`` uint8 0/1 mask from an RLE dict with list or string counts.

    ValueError (or KeyError for a missing key) when the dict is malformed; LimitError naming ``source``
    when its size is above the pixel limit. Both are raised before the mask is allocated.
    """
    height, width = _size(rle["size"])
    check_limit("image_pixels", height * width, source, f"mask size {width} x {height} (pixels)")
    counts = rle["counts"]
    if isinstance(counts, str):
        runs = decode_counts(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = counts
    else:
        raise ValueError("'counts' must be a string or a list of whole numbers")
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise ValueError(f"RLE run lengths add up to {sum(runs)} pixels, not {height}x{width}")
    values = np.zeros(len(runs), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, runs)
    return flat.reshape((height, width), order="F")


def _size(size: object) -> tuple[int, int]:
    """``(height, width)`` from a ``size`` entry: two positive whole numbers."""
    if (not isinstance(size, list | tuple) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"'size' must be [height, width], two positive whole numbers, not {reprlib.repr(size)}")
    return int(size[0]), int(size[1])


def encode(mask: np.ndarray, compact: bool = True) -> dict:
    """The RLE dict of a 2-D mask (non-zero = inside), with string counts when ``compact``."""
    flat = (np.asarray(mask) != 0).astype(np.int8).reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    height, width = mask.shape[:2]
    return {"size": [int(height), int(width)], "counts": encode_counts(runs) if compact else runs}


def mask_polygons(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """Outer outlines of a mask's regions, as polygons through the centres of their boundary pixels.

    Vertices are pixel centres in pixel-edge coordinates (column ``i`` gives ``x = i + 0.5``), so an
    outline lies half a pixel inside the region's outer edge. Outlines with fewer than 3 vertices
    (single pixels, one-pixel lines) are left out: they enclose no area.
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.float64) + 0.5
        if len(points) >= 3 and cv2.contourArea(points.astype(np.float32)) > 0:
            polygons.append([(float(x), float(y)) for x, y in points])
    return polygons
