"""Decoding image files: formats, depths, channel layout, truncated and bogus files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from astrocyte_lab.data import imageio
from astrocyte_lab.errors import ImageReadError, LimitError


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_colour_round_trip_in_rgb_order(images, suffix):
    rgb = images.array(seed=3)
    rgb[0, 0] = (255, 0, 0)  # pure red marks the channel order
    path = images.write(f"c{suffix}", rgb)
    out = imageio.read_image(path)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    assert imageio.probe(path) == imageio.ImageInfo(32, 24, 3, 8)


def test_jpeg_colour_decodes_close_to_source_in_rgb_order(images):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (250, 10, 10)
    rgb[:, 16:] = (10, 10, 250)
    out = imageio.read_image(images.write("c.jpg", rgb))
    assert out.shape == (24, 32, 3)
    assert out[12, 4, 0] > 200 and out[12, 4, 2] < 60  # red stays in channel 0
    assert out[12, 28, 2] > 200 and out[12, 28, 0] < 60


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_grey_8bit_is_one_channel(images, suffix):
    grey = images.array(seed=4, channels=1)
    path = images.write(f"g{suffix}", grey)
    out = imageio.read_image(path)
    assert out.shape == (24, 32, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, grey)
    assert imageio.probe(path) == imageio.ImageInfo(32, 24, 1, 8)
    assert imageio.significant_bits(out) == 8


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_16bit_keeps_raw_12bit_values(images, suffix):
    grey = images.array(seed=5, channels=1, dtype=np.uint16, top=4095)
    grey[0, 0] = 4095
    path = images.write(f"g16{suffix}", grey)
    out = imageio.read_image(path)
    assert out.dtype == np.uint16 and out.shape == (24, 32, 1)
    np.testing.assert_array_equal(out, grey)
    assert imageio.probe(path) == imageio.ImageInfo(32, 24, 1, 16)
    assert imageio.significant_bits(out) == 12


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_colour_16bit_probe_reports_16_bits(images, suffix):
    rgb = images.array(seed=6, dtype=np.uint16, top=4095)
    path = images.write(f"c16{suffix}", rgb)
    np.testing.assert_array_equal(imageio.read_image(path), rgb)
    assert imageio.probe(path) == imageio.ImageInfo(32, 24, 3, 16)


def test_rgba_png_drops_alpha(images, tmp_path):
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = imageio.read_image(tmp_path / "a.png")
    assert out.shape == (24, 32, 3)
    assert (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()


def test_significant_bits():
    assert imageio.significant_bits(np.zeros((2, 2, 1), np.uint8)) == 8
    assert imageio.significant_bits(np.full((2, 2, 1), 1023, np.uint16)) == 10
    assert imageio.significant_bits(np.full((2, 2, 1), 1024, np.uint16)) == 12
    assert imageio.significant_bits(np.full((2, 2, 1), 16383, np.uint16)) == 14
    assert imageio.significant_bits(np.full((2, 2, 1), 65535, np.uint16)) == 16


def test_convert_channels_and_depth():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    colour = imageio.convert_channels(grey, 3)
    assert colour.shape == (2, 3, 3) and (colour == grey).all()
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 100  # pure green: luma 0.587 * 100
    luma = imageio.convert_channels(rgb, 1)
    assert luma.shape == (2, 2, 1) and int(luma[0, 0, 0]) in (58, 59)
    assert imageio.convert_depth(np.array([0, 1, 255], np.uint8), np.dtype(np.uint16)).tolist() == [0, 257, 65535]
    assert imageio.convert_depth(np.array([0, 257, 65535], np.uint16), np.dtype(np.uint8)).tolist() == [0, 1, 255]


def test_reduced_jpeg_decode_halves_the_size(images):
    path = images.make("big.jpg", width=128, height=96)
    assert imageio.read_image(path, reduce=2).shape == (48, 64, 3)
    assert imageio.read_image(path, reduce=4).shape == (24, 32, 3)
    grey = images.make("grey.jpg", width=128, height=96, channels=1)
    assert imageio.read_image(grey, reduce=2, grey=True).shape == (48, 64, 1)
    png = images.make("big.png", width=128, height=96)
    assert imageio.read_image(png, reduce=2).shape == (96, 128, 3)  # only JPEG has reduced decoding


def test_reduced_jpeg_decode_ignores_exif_orientation_like_full_decode(tmp_path):
    """Both decode paths must agree on the pixel layout the header (probe) describes."""
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:, :64] = (255, 0, 0)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees" orientation tag
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    path = tmp_path / "rot.jpg"
    assert imageio.probe(path) == imageio.ImageInfo(128, 96, 3, 8)
    full = imageio.read_image(path)
    half = imageio.read_image(path, reduce=2)
    assert full.shape == (96, 128, 3)
    assert half.shape == (48, 64, 3)
    reference = cv2.resize(full, (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - reference.astype(int)).mean() < 8


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_jpeg_raises(images):
    path = _truncate(images.make("t.jpg", width=64, height=48))
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        imageio.read_image(path)


def test_truncated_png_raises(images):
    path = _truncate(images.make("t.png"))
    with pytest.raises(ImageReadError, match="truncated PNG"):
        imageio.read_image(path)


def test_empty_file_raises(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        imageio.read_image(tmp_path / "e.png")
    with pytest.raises(ImageReadError, match=r"e\.png"):
        imageio.probe(tmp_path / "e.png")


def test_non_image_with_image_suffix_raises(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageReadError, match=r"notes\.jpg"):
        imageio.probe(path)
    with pytest.raises(ImageReadError, match="not a decodable image"):
        imageio.read_image(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read file"):
        imageio.read_image(tmp_path / "gone.png")


def test_read_mask_keeps_raw_values(images, tmp_path):
    mask = np.zeros((24, 32), np.uint8)
    mask[:5], mask[10:, :4] = 3, 200
    out = imageio.read_mask(images.write("m.png", mask))
    assert out.shape == (24, 32)
    np.testing.assert_array_equal(out, mask)
    grey_as_rgb = np.repeat(mask[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(imageio.read_mask(images.write("m3.png", grey_as_rgb)), mask)


def test_read_mask_rejects_colour(images):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:5, :, 0] = 255
    with pytest.raises(ImageReadError, match="colour mask"):
        imageio.read_mask(images.write("c.png", rgb))


def test_read_mask_palette_png_gives_indices(tmp_path):
    """Palette masks (VOC style) store the class as the palette index, shown in colour."""
    indices = np.zeros((24, 32), np.uint8)
    indices[:6], indices[12:, 20:] = 1, 2
    im = Image.fromarray(indices, "P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    im.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(imageio.read_mask(tmp_path / "voc.png"), indices)


# --- hardening (issue 19): the pixel limit is checked from the header, before decoding ---


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A few-hundred-byte PNG whose header declares ``width x height`` (its pixel data is a stub)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_header_above_the_pixel_limit_is_refused_naming_the_file(tmp_path):
    path = png_declaring(tmp_path / "bomb.png", 100_000, 100_000)
    for read in (imageio.probe, imageio.read_image):
        with pytest.raises(LimitError, match="bomb.png") as info:
            read(path)
        assert isinstance(info.value, ImageReadError)  # dataset generation skips it like any unusable image


def test_pixel_limit_is_read_from_the_environment(images, monkeypatch):
    path = images.write("c.png", images.array())
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "700")  # the image is 32 x 24 = 768 pixels
    for read in (imageio.probe, imageio.read_image, imageio.read_mask):
        with pytest.raises(imageio.ImageTooLargeError, match=r"c.png: image size 32 x 24 \(pixels\) is 768"):
            read(path)
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "768")
    assert imageio.read_image(path).shape == (24, 32, 3)


def test_float_images_convert_without_a_float64_copy(tmp_path):
    image = np.linspace(0, 2, 24 * 32, dtype=np.float32).reshape(24, 32)
    image[0, 0] = np.nan
    out = imageio._normalise_layout(tmp_path / "f.tif", image.copy())
    assert out.dtype == np.uint16 and out.shape == (24, 32, 1)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 65535


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares ``width x height`` grey pixels but holds almost no data (the header is what is probed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_our_pixel_limit_decides_not_pillows(tmp_path, monkeypatch):
    path = tmp_path / "line_scan.png"
    _png_header_only(path, 15000, 15000)  # 225 Mpx: above Pillow's own 179 Mpx error, below our default
    monkeypatch.delenv("ASTROCYTE_MAX_IMAGE_PIXELS", raising=False)
    assert (imageio.probe(path).width, imageio.probe(path).height) == (15000, 15000)
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", str(100_000_000))
    with pytest.raises(imageio.ImageTooLargeError, match=r"line_scan.png: image size 15000 x 15000"):
        imageio.probe(path)
