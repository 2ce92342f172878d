"""Bring images of differing sizes to the dataset's one size (the manual's "image correction")."""

from __future__ import annotations

from collections import Counter
from typing import Literal

import cv2
import numpy as np

from astrocyte_lab.errors import AstrocyteError

Correction = Literal["exclude", "resize", "resize_keep_aspect", "crop"]
CORRECTIONS: tuple[str, ...] = ("exclude", "resize", "resize_keep_aspect", "crop")
# How :func:`resize` brings an image to the dataset's size, as models record it (``input.dataset_resize``):
# the deployable package repeats it on camera-size images (astrocyte_lab.runtime.preprocess.dataset_image).
SHRINK_METHOD = "area"


def check_correction(method: str, where: str = "correction") -> str:
    if method not in CORRECTIONS:
        raise AstrocyteError(f"{where}: unknown image correction {method!r}; choose from {list(CORRECTIONS)}")
    return method


def majority(values: list) -> object:
    """Most common value; ties go to the one seen first so the choice is stable."""
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def fit_within(size: tuple[int, int], max_size: tuple[int, int] | None) -> tuple[int, int]:
    """Scale ``(w, h)`` down (never up) to fit inside ``max_size``, keeping the aspect ratio."""
    width, height = size
    if max_size is None:
        return size
    max_w, max_h = max_size
    if max_w < 1 or max_h < 1:
        raise AstrocyteError(f"maximum image size must be positive, got {max_w} x {max_h}")
    scale = min(1.0, max_w / width, max_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an ``(H, W[, C])`` array to ``size = (w, h)``; area filter when shrinking.

    Images: ``INTER_AREA`` when both sides shrink, else ``INTER_LINEAR`` (:data:`SHRINK_METHOD` ``"area"``). The
    runtime's ``dataset_image`` repeats exactly this on the full-size pixels, so change both or neither.
    """
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif width < image.shape[1] and height < image.shape[0]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interpolation)
    return out[:, :, None] if image.ndim == 3 and out.ndim == 2 else out


def correct(image: np.ndarray, size: tuple[int, int], method: str, nearest: bool = False) -> np.ndarray:
    """Apply one correction so ``image`` becomes exactly ``size = (w, h)``.

    Padding (from keep-aspect resizing or cropping a smaller image) uses the image's mean so it
    does not look like an edge to a model; masks (``nearest``) pad with 0, the background.
    """
    if method == "resize":
        return resize(image, size, nearest)
    if method == "resize_keep_aspect":
        width, height = size
        scale = min(width / image.shape[1], height / image.shape[0])
        inner = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        return _pad_centre(resize(image, inner, nearest), size, nearest)
    if method == "crop":
        width, height = size
        top = max(0, (image.shape[0] - height) // 2)
        left = max(0, (image.shape[1] - width) // 2)
        return _pad_centre(image[top:top + height, left:left + width], size, nearest)
    raise AstrocyteError(f"cannot apply image correction {method!r}")


def _pad_centre(image: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    width, height = size
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shape = (height, width, *image.shape[2:])
    fill = 0 if nearest else np.mean(image, axis=(0, 1)).astype(image.dtype)
    out = np.empty(shape, dtype=image.dtype)
    out[...] = fill
    top = (height - image.shape[0]) // 2
    left = (width - image.shape[1]) // 2
    out[top:top + image.shape[0], left:left + image.shape[1]] = image
    return out


def correction_transform(source: tuple[int, int], size: tuple[int, int],
                         method: str) -> tuple[float, float, float, float]:
    """``(scale_x, scale_y, offset_x, offset_y)`` mapping source pixel coordinates into the corrected image.

    Mirrors :func:`correct` (``""`` = plain resize) so annotations follow their image exactly.
    """
    (src_w, src_h), (width, height) = source, size
    if method in ("", "resize"):
        return width / src_w, height / src_h, 0.0, 0.0
    if method == "resize_keep_aspect":
        scale = min(width / src_w, height / src_h)
        inner_w, inner_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        return inner_w / src_w, inner_h / src_h, float((width - inner_w) // 2), float((height - inner_h) // 2)
    if method == "crop":
        top, left = max(0, (src_h - height) // 2), max(0, (src_w - width) // 2)
        kept_w, kept_h = min(src_w, width), min(src_h, height)
        return 1.0, 1.0, float((width - kept_w) // 2 - left), float((height - kept_h) // 2 - top)
    raise AstrocyteError(f"cannot apply image correction {method!r}")
