"""Turn an image into the network input described by a package's ``input`` and ``roi`` metadata (numpy only).

Training and deployment both call :func:`preprocess`, so a model sees exactly the same pixels in both places.
For an image ``(H, W)`` or ``(H, W, C)`` the steps are:

0. **dataset size**: when ``input["dataset_resize"] = {"width": w, "height": h, "method": "area"}`` is set and
   the image is not ``w x h``, it is first brought to that size as the dataset's images were when they were
   generated: :func:`resize_area` (exactly OpenCV's ``INTER_AREA``) when both sides shrink, else bilinear,
   rounded to the image's pixel type (:func:`dataset_image`). So a package fed the original camera-size files
   sees the pixels the model was trained and tested on. The ROI crop and mask refer to this size. Packages
   without the key (made before it) skip the step.
1. **crop** to ``roi["crop"] = [x, y, w, h]`` (pixels, from the image's top-left corner). A box that does
   not lie wholly inside the image raises :class:`PreprocessError` (no silent padding: a camera with another
   resolution or a shifted ROI is a set-up mistake worth hearing about).
2. **scale** to float32 in [0, 1]: uint8 / 255, uint16 / (2**bit_depth - 1), both clipped to [0, 1]; float
   input is taken as already scaled and used as is.
3. **channels** to ``input["channels"]``: grey becomes colour by repeating the plane; colour becomes grey by
   ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (RGB order). A fourth (alpha) channel, or the second
   channel of grey + alpha, is dropped.
4. **resize** to ``(input["width"], input["height"])`` with bilinear interpolation identical to OpenCV's
   ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on float32 data: half-pixel centres, edge pixels
   repeated, no antialiasing. Skipped when the size already matches.
5. **normalise** each channel: ``(x - mean) / std``.
6. **mask**: the ROI mask (8-bit, the size of the crop box, or of the step-0 image without a crop; values >= 128
   mean "used") is resized to the input size by nearest neighbour with half-pixel centres (as PIL's
   ``NEAREST`` and ``cv2.INTER_NEAREST_EXACT``); ignored pixels are set to 0 after normalisation, i.e. to
   the mean colour.

Steps 1-3 are per-pixel operations, so their order does not change the result; cropping first only saves
work. The bilinear resize is linear too, so for 8-bit and float images it runs on the raw pixels first and
steps 2-3 follow on the (usually much smaller) resized image: the same numbers up to float rounding (~1e-7),
in a fraction of the time for camera-sized images. 16-bit images keep the written order because their
clipping at ``2**bit_depth - 1`` does not commute with the resize. The result is a C-contiguous
``(C, height, width)`` float32 array.

:func:`preprocess_full` runs the same steps without the resize (4): the normalised, masked crop at the
dataset's resolution (after step 0), channels last ``(H', W', C)``; tiled segmentation cuts its tiles from
it. Both share the helpers for steps 0-3 and 5 and the mask step 6; the resize comes before normalisation
in :func:`preprocess`, as it always has, so its output is unchanged.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from astrocyte_lab.runtime.cpus import usable_cpus
from astrocyte_lab.runtime.errors import PreprocessError
from astrocyte_lab.runtime.limits import image_pixels_problem, limit

LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)  # ITU-R BT.601, RGB order
MASK_THRESHOLD = 128  # ROI mask values at or above this mean "pixel used"


def preprocess(image: np.ndarray, meta_input: Mapping[str, Any], roi: Mapping[str, Any] | None = None,
               roi_mask: np.ndarray | None = None) -> np.ndarray:
    """Return the ``(C, H, W)`` float32 network input for ``image`` (see the module docstring for the steps).

    ``meta_input`` is the package's ``input`` section, ``roi`` its ``roi`` section (only ``crop`` is read)
    and ``roi_mask`` the decoded ROI mask, or None.
    """
    width, height = int(meta_input["width"]), int(meta_input["height"])
    array, mask_shape = _cropped(image, meta_input, roi)
    channels = int(meta_input["channels"])
    if array.dtype == np.uint8:  # resize the raw pixels, then scale and convert the small result
        small = convert_channels(resize_bilinear(array, width, height) / np.float32(255.0), channels)
    elif np.issubdtype(array.dtype, np.floating):
        small = convert_channels(resize_bilinear(array, width, height), channels)
    else:  # uint16: clipping at 2**bit_depth - 1 does not commute with the resize, so scale rows as they are read
        depth = int(meta_input.get("bit_depth", 8))
        small = resize_bilinear(array, width, height,
                                pixels=lambda rows: convert_channels(to_unit_range(rows, depth), channels))
    out = normalise(small, meta_input)
    if roi_mask is not None:
        used = _mask_used(roi_mask, expected=mask_shape, width=width, height=height)
        out *= used[:, :, None]
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


def preprocess_full(image: np.ndarray, meta_input: Mapping[str, Any], roi: Mapping[str, Any] | None = None,
                    roi_mask: np.ndarray | None = None) -> np.ndarray:
    """All of :func:`preprocess` except the resize: an ``(H', W', C)`` float32 array at the crop's resolution.

    Steps 0-3 (dataset size, crop, scale, channels), 5 (normalise) and 6 (ROI mask, used at its own
    resolution, which is the crop's) are the very functions :func:`preprocess` calls. Tiled segmentation cuts
    its tiles from this array (channels last, as the tiles are cut).
    """
    out, mask_shape = _prepared(image, meta_input, roi)
    _normalise_in_place(out, meta_input)
    if roi_mask is not None:
        height, width = out.shape[:2]
        used = _mask_used(roi_mask, expected=mask_shape, width=width, height=height)
        out *= used[:, :, None]
    return np.ascontiguousarray(out, dtype=np.float32)


def _prepared(image: np.ndarray, meta_input: Mapping[str, Any],
              roi: Mapping[str, Any] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Steps 0-3: the cropped image as float32 ``(H', W', C)`` in [0, 1] with the model's channels, and the ROI
    mask's expected ``(height, width)``.

    The result is the only full-size allocation: it is filled by bands of :data:`BAND_ROWS` rows, so a
    16-bit or float64 camera image never has a full-size intermediate copy.
    """
    array, mask_shape = _cropped(image, meta_input, roi)
    depth, channels = int(meta_input.get("bit_depth", 8)), int(meta_input["channels"])
    out = np.empty(array.shape[:2] + (channels,), np.float32)
    for first in range(0, array.shape[0], BAND_ROWS):
        out[first:first + BAND_ROWS] = convert_channels(to_unit_range(array[first:first + BAND_ROWS], depth), channels)
    return out, mask_shape


def _cropped(image: np.ndarray, meta_input: Mapping[str, Any],
             roi: Mapping[str, Any] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Steps 0-1 on the raw pixels: the crop of :func:`dataset_image` and the ROI mask's expected ``(h, w)``
    (the crop box's, or the dataset-sized image's without a crop).

    For float pixels the crop is checked for NaN and infinity (a model fed one answers NaN scores).
    """
    array = dataset_image(image, meta_input)
    mask_shape = (int(array.shape[0]), int(array.shape[1]))
    crop = (roi or {}).get("crop")
    if crop is not None:
        array = crop_image(array, crop)
        mask_shape = (int(crop[3]), int(crop[2]))
    if np.issubdtype(array.dtype, np.floating):
        _check_finite(array)
    return array, mask_shape


def dataset_image(image: np.ndarray, meta_input: Mapping[str, Any]) -> np.ndarray:
    """Step 0: the raw pixels as ``(H, W, C)`` at the size of the images the model was trained on.

    The image is checked first (shape, pixel type, the pixel limit); grey gets a channel axis and an alpha
    plane is dropped. ``input.dataset_resize`` (``{"width", "height", "method": "area"}``) is the size the
    dataset generation brought its images to: an image of another size is brought there the same way,
    :func:`resize_area` (OpenCV's ``INTER_AREA``) when both sides shrink, else bilinearly, rounded to the
    pixel type as the stored images were. Without that key (packages made before it) the image is kept.
    """
    array = _checked(image)
    section = meta_input.get("dataset_resize")
    if not section:
        return array
    width, height = int(section["width"]), int(section["height"])
    if (array.shape[1], array.shape[0]) == (width, height):
        return array
    if width < array.shape[1] and height < array.shape[0]:
        return resize_area(array, width, height)
    return _as_pixel_type(resize_bilinear(array, width, height), array.dtype)


def _checked(image: np.ndarray) -> np.ndarray:
    """``image`` as ``(H, W, C)`` with 1 or 3 channels (alpha dropped), after checking its shape, type and size."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise PreprocessError(f"expected an image of shape (H, W) or (H, W, C), got shape {np.shape(image)}")
    if not 1 <= array.shape[2] <= 4:
        raise PreprocessError(f"cannot use an image with {array.shape[2]} channels (expected 1 to 4)")
    if array.dtype not in (np.uint8, np.uint16) and not np.issubdtype(array.dtype, np.floating):
        raise PreprocessError(f"unsupported pixel type {array.dtype}: expected uint8, uint16 or float in [0, 1]")
    problem = image_pixels_problem(array.shape[1], array.shape[0])
    if problem:
        raise PreprocessError(f"image: {problem}")
    if array.shape[2] in (2, 4):  # grey + alpha, RGBA: the alpha plane is never used
        array = array[:, :, :array.shape[2] - 1]
    return array


def _check_finite(array: np.ndarray) -> None:
    """Refuse float pixels that are NaN or infinite (checked by bands of rows: no full-size temporary)."""
    for first in range(0, array.shape[0], BAND_ROWS):
        band = array[first:first + BAND_ROWS]
        if not np.isfinite(band).all():
            y, x, _ = np.argwhere(~np.isfinite(band))[0]
            raise PreprocessError(f"image pixel (x={x}, y={first + y}) is {band[y, x].tolist()}: NaN and infinite "
                                  "pixel values cannot be predicted")


def _normalisation(image: np.ndarray, meta_input: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The checked per-channel ``mean`` and ``std`` of the package for ``image``'s channels."""
    channels = int(meta_input["channels"])
    mean = _per_channel(meta_input.get("mean", [0.0] * channels), channels, "mean")
    std = _per_channel(meta_input.get("std", [1.0] * channels), channels, "std")
    if np.any(std == 0):
        raise PreprocessError("input std must not contain 0")
    if image.shape[2] != channels:
        raise PreprocessError(f"expected {channels} channels to normalise, got {image.shape[2]}")
    return mean, std


def normalise(image: np.ndarray, meta_input: Mapping[str, Any]) -> np.ndarray:
    """Step 5: ``(x - mean) / std`` per channel of an ``(H, W, C)`` float array; a new float32 array."""
    mean, std = _normalisation(image, meta_input)
    return ((image - mean) / std).astype(np.float32, copy=False)


def _normalise_in_place(image: np.ndarray, meta_input: Mapping[str, Any]) -> None:
    """:func:`normalise` on a float32 ``(H, W, C)`` array the caller owns, without a second full-size array."""
    mean, std = _normalisation(image, meta_input)
    image -= mean
    image /= std


def crop_image(image: np.ndarray, crop: Sequence[int]) -> np.ndarray:
    """Cut ``[x, y, w, h]`` out of an ``(H, W, C)`` array; raise if the box is not wholly inside the image."""
    if len(crop) != 4:
        raise PreprocessError(f"ROI crop must be [x, y, w, h], got {list(crop)}")
    x, y, w, h = (int(v) for v in crop)
    height, width = image.shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise PreprocessError(f"ROI crop [x={x}, y={y}, w={w}, h={h}] does not fit inside the {width}x{height} "
                              "image (the package expects images at least as large as the crop box)")
    return image[y:y + h, x:x + w]


def to_unit_range(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Scale uint8 / uint16 pixels to float32 in [0, 1]; float input is returned as float32 unchanged.

    Integer input makes one float32 copy, scaled and clipped in place.
    """
    if image.dtype == np.uint8:
        top = np.float32(255.0)
    elif image.dtype == np.uint16:
        if not 1 <= bit_depth <= 16:
            raise PreprocessError(f"bit_depth must be between 1 and 16, got {bit_depth}")
        top = np.float32(2 ** bit_depth - 1)
    elif np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    else:
        raise PreprocessError(f"unsupported pixel type {image.dtype}: expected uint8, uint16 or float in [0, 1]")
    out = image.astype(np.float32)
    np.divide(out, top, out=out)
    return np.minimum(out, np.float32(1.0), out=out)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Bring an ``(H, W, C)`` float array to ``channels`` planes (repeat grey, BT.601 luma, drop alpha)."""
    have = image.shape[2]
    if have == 2:  # grey + alpha
        image, have = image[:, :, :1], 1
    elif have == 4:  # RGBA
        image, have = image[:, :, :3], 3
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=2)
    if have == 3 and channels == 1:
        r, g, b = (np.float32(w) for w in LUMA_WEIGHTS)
        return (image[:, :, 0:1] * r + image[:, :, 1:2] * g + image[:, :, 2:3] * b).astype(np.float32)
    raise PreprocessError(f"cannot convert an image with {have} channels to {channels} channels")


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, following OpenCV's INTER_LINEAR arithmetic.

    Positions are computed in float64 (as the OpenCV 5 wheels do; rounding them to float32 would move the
    weights by up to ~1e-4 on large images), the weights are then used in float32.
    """
    scale = 1.0 / (dst / src)  # OpenCV inverts the (double) dst/src ratio
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5
    first = np.floor(pos).astype(np.intp)
    frac = pos - first
    outside = (first < 0) | (first >= src - 1)  # beyond the first/last centre: repeat the edge pixel
    first = np.clip(first, 0, src - 1)
    frac[outside] = 0.0
    second = np.minimum(first + 1, src - 1)
    frac32 = frac.astype(np.float32)
    return first, second, (np.float32(1.0) - frac32).astype(np.float32), frac32


def resize_bilinear(image: np.ndarray, width: int, height: int,
                    pixels: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Resize an ``(H, W, C)`` array like ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on float32 data.

    Any pixel type is accepted; the result is float32 in the input's value range. OpenCV's taps, applied
    along y first (blending whole source rows, which are plain copies) and then along x on the already shorter
    image; OpenCV blends along x first, so the two agree up to float rounding (~1e-7 relative).

    The output is filled in bands of :data:`BAND_ROWS` rows, which keeps each band's temporaries in cache;
    from :data:`PARALLEL_MIN_VALUES` output values on (a camera-sized heatmap) the bands run on a few threads
    (numpy releases the GIL in these loops), about 2.5x faster than one pass over the whole image on 2 cores.

    ``pixels``, when given, maps a block of source rows to float32 ``(rows, W, C')`` (a per-pixel conversion
    such as scaling and channels); it is applied to the rows each band reads, so the result equals resizing
    the converted image without ever converting the whole source at once.
    """
    image = np.asarray(image)
    src_h, src_w = image.shape[:2]
    if width <= 0 or height <= 0:
        raise PreprocessError(f"target size must be positive, got {width}x{height}")
    convert = pixels if pixels is not None else (lambda rows: rows.astype(np.float32, copy=False))
    if (src_w, src_h) == (width, height):
        return convert(image).astype(np.float32, copy=False)
    y0, y1, wy0, wy1 = _linear_taps(src_h, height)
    x0, x1, wx0, wx1 = _linear_taps(src_w, width)
    trailing = image.shape[2:] if pixels is None else convert(image[:1, :1]).shape[2:]
    out = np.empty((height, width) + trailing, np.float32)

    def band(first: int, last: int) -> None:
        rows = convert(np.take(image, y0[first:last], axis=0))
        rows *= wy0[first:last, None, None]
        other = convert(np.take(image, y1[first:last], axis=0))
        other *= wy1[first:last, None, None]
        rows += other
        target = out[first:last]
        np.take(rows, x0, axis=1, out=target)
        target *= wx0[None, :, None]
        other = np.take(rows, x1, axis=1)
        other *= wx1[None, :, None]
        target += other

    _in_bands(band, height, out.size)
    return out


def _in_bands(band: Callable[[int, int], None], height: int, values: int, rows: int | None = None) -> None:
    """Call ``band(first, last)`` for the output rows in bands of ``rows`` (default :data:`BAND_ROWS`); from
    :data:`PARALLEL_MIN_VALUES` values of work on, the bands run on the shared pool's threads."""
    rows = rows or BAND_ROWS
    bands = [(first, min(first + rows, height)) for first in range(0, height, rows)]
    if values >= PARALLEL_MIN_VALUES and len(bands) > 1:
        list(_band_pool().map(lambda edges: band(*edges), bands))  # list(): re-raise a band's error here
    else:
        for first, last in bands:
            band(first, last)


BAND_ROWS = 256  # output rows resized together
PARALLEL_MIN_VALUES = 1 << 20  # output values from which the bands run on several threads
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool_after_fork() -> None:
    """In a forked child the parent's pool threads do not exist (work sent to the copied pool would wait for ever,
    and the lock may have been held at the fork): start afresh."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _band_pool() -> ThreadPoolExecutor:
    """The shared pool for resize bands: one thread per usable CPU, at most 4 (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(4, usable_cpus()), thread_name_prefix="astro-resize")
        return _POOL


# ---------------------------------------------------------------------------------------------- area resize

AREA_EDGE = 1e-3  # OpenCV leaves out a partly covered source pixel whose share of the cell is below this
AREA_BAND_ROWS = 32  # output rows shrunk together: their source rows and float32 scratch stay in cache


def area_factor(src: int, dst: int) -> int:
    """The whole shrink factor when OpenCV's INTER_AREA takes its box-sum path for ``src -> dst``, else 0.

    OpenCV inverts the (double) ``dst / src`` ratio and takes the box-sum path when the result is within
    ``DBL_EPSILON`` of a whole number on both axes.
    """
    scale = 1.0 / (dst / src)
    whole = round(scale)
    return whole if abs(scale - whole) < sys.float_info.epsilon else 0


@functools.lru_cache(maxsize=32)
def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and float32 weights ``(dst, K)`` of OpenCV's INTER_AREA along one axis.

    Output pixel ``d`` covers the source span ``[d * scale, (d + 1) * scale)``: whole pixels inside it weigh
    ``1 / cell``, the partly covered pixels at its ends their covered share (computed in double precision as
    OpenCV does, then rounded to float32). Rows with fewer than ``K`` taps are padded with weight 0 on their
    first pixel, so adding the padding changes nothing. Cached: camera sizes repeat (read-only arrays).
    """
    scale = 1.0 / (dst / src)
    start = np.arange(dst, dtype=np.float64) * scale
    end = start + scale
    cell = np.minimum(scale, src - start)
    last = np.minimum(np.floor(end), src - 1).astype(np.intp)
    first = np.minimum(np.ceil(start).astype(np.intp), last)
    left = (first - start > AREA_EDGE).astype(np.intp)
    right = (end - last > AREA_EDGE).astype(np.intp)
    count = (left + (last - first) + right)[:, None]
    tap = np.arange(int(count.max()))[None, :]
    weight = np.where(tap < left[:, None] + (last - first)[:, None], 1.0 / cell[:, None], 0.0)
    weight = np.where((left[:, None] == 1) & (tap == 0), ((first - start) / cell)[:, None], weight)
    tail = np.minimum(np.minimum(end - last, 1.0), cell) / cell
    weight = np.where((right[:, None] == 1) & (tap == count - 1), tail[:, None], weight)
    index = (first - left)[:, None] + tap
    index = np.where(tap < count, index, index[:, :1])
    index.setflags(write=False)
    weight = weight.astype(np.float32)
    weight.setflags(write=False)
    return index, weight


def _weighted_taps(array: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """``sum_k weight[:, k] * take(array, index[:, k], axis)`` of a 2-D array in float32, tap after tap as OpenCV.

    Two scratch arrays are reused for every tap (fresh large arrays cost a page fault per 4 KiB).
    """
    shape = (-1, 1) if axis == 0 else (1, -1)
    size = list(array.shape)
    size[axis] = index.shape[0]
    gathered = np.empty(size, array.dtype)
    total = np.empty(size, np.float32)
    term = np.empty(size, np.float32)
    np.take(array, index[:, 0], axis=axis, out=gathered)
    np.multiply(gathered, weight[:, 0].reshape(shape), out=total)
    for k in range(1, index.shape[1]):
        np.take(array, index[:, k], axis=axis, out=gathered)
        np.multiply(gathered, weight[:, k].reshape(shape), out=term)
        total += term
    return total


def _interleaved(taps: tuple[np.ndarray, np.ndarray], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal taps for rows seen as ``(rows, W * C)``: each pixel's tap repeated for its ``C`` values."""
    index, weight = taps
    if channels == 1:
        return index, weight
    spread = (index[:, None, :] * channels + np.arange(channels)[None, :, None]).reshape(-1, index.shape[1])
    return spread, np.repeat(weight, channels, axis=0)


def _as_pixel_type(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results back to an integer pixel type (round half to even, as OpenCV, then clip); float stays float32."""
    if not np.issubdtype(dtype, np.integer):
        return values.astype(np.float32, copy=False)
    values = np.rint(values)
    return np.clip(values, 0, np.iinfo(dtype).max, out=values).astype(dtype)


def resize_area(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink an ``(H, W, C)`` array like ``cv2.resize(..., interpolation=cv2.INTER_AREA)``; same pixel type out.

    Each output pixel is the mean of the source pixels its cell covers, partly covered pixels by their share
    (a box filter with fractional weights: the anti-aliased shrink the dataset's images were made with).
    Whole factors on both axes use OpenCV's exact box sums: ``(sum + 2) >> 2`` for 2 x 2, else
    ``sum * (1 / area)`` in float32; other ratios the float32 weights, along x and then y, in OpenCV's order,
    which gives OpenCV's numbers (tests: equal on 8- and 16-bit, 1 and 3 channels). Integer results round
    half to even, as OpenCV's ``saturate_cast``; float input gives float32. Bands of output rows, on threads
    for large outputs, as :func:`resize_bilinear`. Only shrinking (or keeping) each side is defined.
    """
    image = np.asarray(image)
    src_h, src_w = image.shape[:2]
    if not (0 < width <= src_w and 0 < height <= src_h):
        raise PreprocessError(f"area resizing only shrinks: cannot bring {src_w}x{src_h} to {width}x{height}")
    if (src_w, src_h) == (width, height):
        return image
    dtype = image.dtype if np.issubdtype(image.dtype, np.integer) else np.dtype(np.float32)
    out = np.empty((height, width) + image.shape[2:], dtype)
    step_x, step_y = area_factor(src_w, width), area_factor(src_h, height)
    if step_x and step_y:
        band = functools.partial(_box_band, image, out, step_x, step_y)
    else:
        taps_x = _interleaved(_area_taps(src_w, width), int(np.prod(image.shape[2:], dtype=np.int64)))
        band = functools.partial(_area_band, image, out, taps_x, _area_taps(src_h, height))
    _in_bands(band, height, image.size, AREA_BAND_ROWS)  # the work grows with the source's size
    return out


def _box_band(image: np.ndarray, out: np.ndarray, step_x: int, step_y: int, first: int, last: int) -> None:
    """Output rows ``first:last`` of a whole-factor shrink: exact box sums, rounded as OpenCV's fast path."""
    rows = image[first * step_y:last * step_y]
    sums = _box_sums(rows, step_x, step_y)
    if np.issubdtype(sums.dtype, np.integer) and step_x == step_y == 2:
        out[first:last] = (sums + 2) >> 2
    else:
        mean = sums.astype(np.float32) * (np.float32(1.0) / np.float32(step_x * step_y))
        out[first:last] = _as_pixel_type(mean, out.dtype)


def _box_sums(rows: np.ndarray, step_x: int, step_y: int) -> np.ndarray:
    """Sums of ``step_y x step_x`` boxes of ``(rows, W, C)`` pixels: exact integers, or float64 for float pixels."""
    if np.issubdtype(rows.dtype, np.integer):
        fits = int(np.iinfo(rows.dtype).max) * step_x * step_y < 2**31
        wide: type = np.int32 if fits else np.int64
    else:
        wide = np.float64
    down = rows[0::step_y].astype(wide)
    for offset in range(1, step_y):
        down += rows[offset::step_y]
    sums = down[:, 0::step_x].copy()
    for offset in range(1, step_x):
        sums += down[:, offset::step_x]
    return sums


def _area_band(image: np.ndarray, out: np.ndarray, taps_x: tuple[np.ndarray, np.ndarray],
               taps_y: tuple[np.ndarray, np.ndarray], first: int, last: int) -> None:
    """Output rows ``first:last`` of a fractional shrink: weights along x on the source rows they read, then y.

    Rows are handled as 2-D ``(rows, W * C)`` arrays (``taps_x`` interleaved for the channels), which numpy
    gathers and scales about twice as fast as ``(rows, W, C)``.
    """
    index_y, weight_y = taps_y[0][first:last], taps_y[1][first:last]
    top, bottom = int(index_y.min()), int(index_y.max()) + 1
    rows = image[top:bottom].reshape(bottom - top, -1)
    if not np.issubdtype(rows.dtype, np.integer):
        rows = rows.astype(np.float32, copy=False)
    across = _weighted_taps(rows, *taps_x, axis=1)
    down = _weighted_taps(across, index_y - top, weight_y, axis=0)
    out[first:last] = _as_pixel_type(down, out.dtype).reshape(out[first:last].shape)


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each destination pixel for nearest-neighbour resizing with half-pixel centres."""
    # floor((i + 0.5) * src / dst) in exact integer arithmetic, so ties fall like PIL's and OpenCV's
    pos = ((2 * np.arange(dst, dtype=np.int64) + 1) * src) // (2 * dst)
    return np.clip(pos, 0, src - 1).astype(np.intp)


def resize_nearest(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a 2-D array to ``(height, width)`` by nearest neighbour (half-pixel centres)."""
    src_h, src_w = mask.shape[:2]
    if (src_w, src_h) == (width, height):
        return mask
    return mask[nearest_indices(src_h, height)[:, None], nearest_indices(src_w, width)[None, :]]


def _mask_used(mask: np.ndarray, expected: tuple[int, int], width: int, height: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise PreprocessError(f"the ROI mask must be a 2-D array, got shape {mask.shape}")
    if mask.shape != expected:
        raise PreprocessError(f"the ROI mask is {mask.shape[1]}x{mask.shape[0]} but the crop box (or image) is "
                              f"{expected[1]}x{expected[0]}")
    if mask.dtype == bool:
        used = mask
    elif np.issubdtype(mask.dtype, np.floating):
        used = mask >= 0.5
    else:
        used = mask >= MASK_THRESHOLD
    return resize_nearest(used, width, height).astype(np.float32)


def _per_channel(values: Any, channels: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.size == 1:
        array = np.repeat(array, channels)
    if array.size != channels:
        raise PreprocessError(f"input {name} has {array.size} values but the model takes {channels} channels")
    return array


# --------------------------------------------------------------------------------------------------- files

def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file with Pillow into ``(H, W, C)``: uint8 or uint16, grey (C=1) or RGB (C=3).

    Matches the training side's reader: 8- and 16-bit grey keep their raw values; palette, RGBA, CMYK and
    other colour modes become RGB (alpha dropped); 1-bit becomes 0/255; 32-bit integer images are clipped to
    the uint16 range; float images become uint16 (values scaled to fill 0..65535 when above 1). EXIF
    orientation is ignored (the pixels are used as stored). Pillow decodes 16-bit *colour* PNG/TIFF at
    8-bit precision only: such files come back as uint16 ``high_byte * 257`` with a warning; pass a numpy
    array from your own decoder for full precision.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit("image_pixels"):
        Image.MAX_IMAGE_PIXELS = limit("image_pixels")  # our header check decides, not Pillow's fixed 179 Mpx
    try:
        with Image.open(path) as im:
            _check_pil_size(im, str(path))
            deep = _colour_16_bit(im)  # the decoder tile list is gone after load()
            im.load()
            return image_from_pil(im, source=str(path), colour_16_bit=deep)
    except (FileNotFoundError, PreprocessError):
        raise
    except Image.DecompressionBombError as exc:
        raise PreprocessError(f"{path}: refused by Pillow's decompression-bomb check ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise PreprocessError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def _check_pil_size(im: Any, source: str) -> None:
    """Refuse an opened (not yet decoded) PIL image above the pixel limit, naming ``source``."""
    problem = image_pixels_problem(*im.size)
    if problem:
        raise PreprocessError(f"{source}: {problem}")


def image_from_pil(im: Any, source: str = "image", colour_16_bit: bool | None = None) -> np.ndarray:
    """Convert a ``PIL.Image.Image`` to ``(H, W, C)`` as :func:`load_image` describes.

    ``colour_16_bit`` says the file held 16-bit colour (None: look at the image's decoder tiles, which
    Pillow keeps only until the pixels are loaded).
    """
    _check_pil_size(im, source)
    mode = im.mode
    if mode.startswith("I;16"):
        array = np.asarray(im).astype(np.uint16)
    elif mode == "I":
        array = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":
        array = _float_to_uint16(np.asarray(im))
    elif mode in ("1", "L", "LA", "La"):
        array = np.asarray(im.convert("L"))
    else:
        deep = _colour_16_bit(im) if colour_16_bit is None else colour_16_bit
        array = np.asarray(im.convert("RGB"))
        if deep:
            warnings.warn(f"{source}: Pillow reads 16-bit colour images at 8-bit precision; pass a numpy "
                          "array for full precision", stacklevel=2)
            array = array.astype(np.uint16) * np.uint16(257)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


def _colour_16_bit(im: Any) -> bool:
    """True for 16-bit colour files, which Pillow opens as 8-bit "RGB" (raw modes such as "RGB;16B")."""
    try:
        args = im.tile[0].args
    except (AttributeError, IndexError, TypeError):
        return False
    raw = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(raw, str) and ";16" in raw


def _float_to_uint16(image: np.ndarray) -> np.ndarray:
    """Float pixels to uint16 as the training side's reader does (NaN -> 0, values above 1 scaled to fill
    0..65535), computed by bands of rows so no full-size float64 copy is made."""
    bands = [slice(first, first + BAND_ROWS) for first in range(0, image.shape[0], BAND_ROWS)]
    top = max((float(np.nan_to_num(image[rows].astype(np.float64)).max(initial=-np.inf)) for rows in bands),
              default=1.0) if image.size else 1.0
    scale = 65535.0 if top <= 1.0 else 65535.0 / top
    out = np.empty(image.shape, np.uint16)
    for rows in bands:
        out[rows] = np.clip(np.nan_to_num(image[rows].astype(np.float64)) * scale, 0, 65535)
    return out
