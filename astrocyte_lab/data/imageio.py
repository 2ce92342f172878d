"""Decode image files into numpy arrays the store can hold, and tell why a file is unusable.

Images come back as ``(H, W, C)`` arrays with ``C`` in {1, 3}, RGB order, dtype uint8 or uint16.
16-bit containers keep their raw values (10/12-bit sensors included); :func:`significant_bits`
tells how many bits are really used.

Every image's size is read from its header and checked against the ``image_pixels`` limit
(:mod:`astrocyte_lab.data.limits`) before its pixels are decoded, so a small file declaring a huge image
is refused with :class:`ImageTooLargeError` naming the file instead of exhausting memory. Pillow's own
decompression-bomb error is turned into the same error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from astrocyte_lab.data.limits import check_image_pixels, limit
from astrocyte_lab.errors import ImageReadError, LimitError

IMAGE_SUFFIXES: tuple[str, ...] = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")

cv2.setNumThreads(1)  # decoding runs in our own thread pool; nested OpenCV threads only add contention


class ImageTooLargeError(LimitError, ImageReadError):
    """An image whose declared size is above the pixel limit: a limit error, and an unusable image file."""


@dataclass(frozen=True)
class ImageInfo:
    """What a file header says about an image, read without decoding the pixels."""

    width: int
    height: int
    channels: int
    bit_depth: int  # 8 or 16 (container depth)


_PIL_MODES: dict[str, tuple[int, int]] = {
    "1": (1, 8), "L": (1, 8), "P": (3, 8), "LA": (1, 8), "RGB": (3, 8), "RGBA": (3, 8), "CMYK": (3, 8),
    "I;16": (1, 16), "I;16B": (1, 16), "I;16L": (1, 16), "I": (1, 16), "F": (1, 16),
}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _follow_our_pixel_limit() -> None:
    """Let ``ASTROCYTE_MAX_IMAGE_PIXELS`` decide, not Pillow's fixed 89 Mpx warning / 179 Mpx error.

    Our check reads the header and refuses above our limit; Pillow's bomb check then only has to allow what we
    allow (it errors above twice its own limit). A caller that disabled Pillow's check (None) keeps that.
    """
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit("image_pixels"):
        Image.MAX_IMAGE_PIXELS = limit("image_pixels")


def probe(path: Path) -> ImageInfo:
    """Read an image's size, channel count and depth from its header (no pixel decode)."""
    _follow_our_pixel_limit()
    try:
        with Image.open(path) as im:
            width, height = im.size
            mode = im.mode
            raw16 = _stores_16_bits(im)
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return _probe_by_decoding(path, exc)
    _check_pixels(width, height, path)
    if mode not in _PIL_MODES:  # e.g. 16-bit colour TIFF: let the decoder say
        return _probe_by_decoding(path, None)
    channels, depth = _PIL_MODES[mode]
    return ImageInfo(width, height, channels, 16 if raw16 else depth)


def _check_pixels(width: int, height: int, path: Path) -> None:
    try:
        check_image_pixels(width, height, path)
    except LimitError as exc:
        raise ImageTooLargeError(str(exc)) from None


def _too_large(path: Path, exc: Exception) -> ImageTooLargeError:
    return ImageTooLargeError(f"{path}: refused by the image reader as a possible decompression bomb ({exc})")


def _check_header(path: Path) -> None:
    """Refuse ``path`` when its header declares an image above the pixel limit (the pixels are not read).

    Headers Pillow cannot read are left to the decoder, whose result is checked after decoding.
    """
    _follow_our_pixel_limit()
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return
    _check_pixels(width, height, path)


def _stores_16_bits(im: Image.Image) -> bool:
    """True for 16-bit colour PNG/TIFF, which PIL opens in 8-bit mode "RGB" (raw mode "RGB;16B")."""
    try:
        args = im.tile[0].args
    except (AttributeError, IndexError):
        return False
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def _probe_by_decoding(path: Path, cause: Exception | None) -> ImageInfo:
    try:
        image = read_image(path)
    except ImageReadError as exc:
        raise exc from cause  # the decoder's reason (empty, truncated, unreadable) is more precise than PIL's
    height, width, channels = image.shape
    return ImageInfo(width, height, channels, 16 if image.dtype == np.uint16 else 8)


def read_image(path: Path, reduce: int = 1, grey: bool = False) -> np.ndarray:
    """Decode ``path`` into an ``(H, W, C)`` RGB or grey array; raise ImageReadError naming the file.

    ``reduce`` (1, 2, 4 or 8) lets JPEG decode at a fraction of full size, which is much faster when the
    image will be shrunk anyway; ``grey`` says the JPEG is monochrome (known from :func:`probe`).
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    _check_not_truncated(path, data)
    _check_header(path)
    flags = cv2.IMREAD_UNCHANGED
    if reduce > 1 and _is_jpeg(data):
        flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
        if grey:
            flags = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                     8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduce]
        flags |= cv2.IMREAD_IGNORE_ORIENTATION  # like IMREAD_UNCHANGED: keep the layout probe() reports
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:
        raise ImageReadError(f"{path}: not a decodable image ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image (bmp, png, jpg or tif expected)")
    _check_pixels(image.shape[1], image.shape[0], path)
    return _normalise_layout(path, image)


def _normalise_layout(path: Path, image: np.ndarray) -> np.ndarray:
    if image.dtype not in (np.uint8, np.uint16):
        if image.dtype == np.int16 or image.dtype == np.int32 or image.dtype == np.uint32:
            image = np.clip(image, 0, 65535).astype(np.uint16)
        elif np.issubdtype(image.dtype, np.floating):
            image = _float_to_uint16(image)
        else:
            raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 1:
        return image
    if image.shape[2] == 2:  # grey + alpha
        return image[:, :, :1]
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ImageReadError(f"{path}: unsupported number of channels ({image.shape[2]})")


def _float_to_uint16(image: np.ndarray) -> np.ndarray:
    """Scale a float image to 16 bits in place, row by row (no full-size float64 copy of a huge image)."""
    finite = np.nan_to_num(image, copy=False)
    top = float(finite.max()) if finite.size else 1.0
    scale = 65535.0 if top <= 1.0 else 65535.0 / top
    out = np.empty(finite.shape, np.uint16)
    for row in range(finite.shape[0]):
        out[row] = np.clip(finite[row] * scale, 0, 65535)
    return out


def _is_jpeg(data: np.ndarray) -> bool:
    return data.size > 3 and data[0] == 0xFF and data[1] == 0xD8


def _check_not_truncated(path: Path, data: np.ndarray) -> None:
    """Catch cut-off JPEG/PNG files, which decoders often return half-grey without complaint."""
    if _is_jpeg(data):
        tail = data[-4096:]
        # the end-of-image marker may be followed by padding; look for it near the end
        ends = np.flatnonzero((tail[:-1] == 0xFF) & (tail[1:] == 0xD9))
        if ends.size == 0:
            raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")
    elif data.size > 8 and bytes(data[:8]) == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in bytes(data[-32:]):
            raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")


def significant_bits(image: np.ndarray) -> int:
    """Bits in use: 8 for 8-bit images; 10, 12, 14 or 16 for values in a 16-bit container."""
    if image.dtype == np.uint8:
        return 8
    top = int(image.max()) if image.size else 0
    for bits in (8, 10, 12, 14):
        if top < (1 << bits):
            return max(bits, 10)
    return 16


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert grey to colour or colour to grey (luma)."""
    have = image.shape[2]
    if have == channels:
        return image
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.repeat(image, 3, axis=2)


def convert_depth(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Bring an image to the dataset's container depth (8-bit values scale up to fill 16 bits)."""
    if image.dtype == dtype:
        return image
    if dtype == np.uint16:
        return image.astype(np.uint16) * 257
    return (image // 257).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask file into a 2-D array of its raw pixel values (palette index for palette PNGs)."""
    image = read_image(path)
    if image.shape[2] == 3 and _is_palette(path):  # the decoder expands the palette into colours
        with Image.open(path) as im:
            return np.asarray(im)
    if image.shape[2] == 3 and not (
        np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 0], image[:, :, 2])
    ):
        raise ImageReadError(f"{path}: colour mask; expected one pixel value per category (grey or palette)")
    return image[:, :, 0]


def _is_palette(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return im.mode == "P"
    except (UnidentifiedImageError, OSError, ValueError):
        return False
