"""The preprocessing contract: OpenCV-identical bilinear resize, channels, bit depth, ROI crop and mask."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from astrocyte_lab.runtime import PreprocessError, load_image, preprocess
from astrocyte_lab.runtime.preprocess import nearest_indices, resize_bilinear, resize_nearest

META = {"width": 24, "height": 16, "channels": 3, "bit_depth": 8, "resize": "bilinear",
        "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def meta(**changes: object) -> dict:
    return {**META, **changes}


@pytest.mark.parametrize(("src", "dst"), [
    ((37, 53), (224, 160)),   # up, non-square, odd
    ((500, 300), (64, 48)),   # strong down
    ((64, 64), (32, 32)),     # exact 2x down (OpenCV switches to INTER_AREA there)
    ((10, 7), (3, 11)),       # down in x, up in y
    ((1, 5), (4, 4)),         # a one-row source
    ((1000, 999), (224, 160)),  # large: positions must be computed in double precision
    ((16, 24), (24, 16)),     # transposed shape
    ((333, 517), (1300, 1030)),  # camera-sized up: bands on threads, the last band partial
    ((1030, 1300), (300, 517)),  # down to more than one band, one thread
])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_matches_opencv(src: tuple[int, int], dst: tuple[int, int], channels: int) -> None:
    rng = np.random.default_rng(sum(src) + sum(dst) + channels)
    image = rng.random((*src, channels), dtype=np.float32)
    expected = cv2.resize(image, dst, interpolation=cv2.INTER_LINEAR).reshape(dst[1], dst[0], channels)
    result = resize_bilinear(image, *dst)
    assert result.dtype == np.float32 and result.shape == expected.shape
    assert np.abs(result - expected).max() < 1e-5


def test_resize_bands_on_threads_equal_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module = importlib.import_module("astrocyte_lab.runtime.preprocess")  # the package re-exports a function
    image = (np.random.default_rng(3).random((200, 300, 1)) * 255).astype(np.uint8)
    threaded = resize_bilinear(image, 1100, 1000)
    assert threaded.size >= module.PARALLEL_MIN_VALUES
    monkeypatch.setattr(module, "PARALLEL_MIN_VALUES", threaded.size + 1)
    assert np.array_equal(resize_bilinear(image, 1100, 1000), threaded)


def test_resize_same_size_is_identity() -> None:
    image = np.random.default_rng(1).random((16, 24, 3), dtype=np.float32)
    assert np.array_equal(resize_bilinear(image, 24, 16), image)


def test_preprocess_matches_an_opencv_pipeline() -> None:
    image = np.random.default_rng(2).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    scaled = image.astype(np.float32) / 255
    resized = cv2.resize(scaled, (24, 16), interpolation=cv2.INTER_LINEAR)
    expected = ((resized - np.float32(META["mean"])) / np.float32(META["std"])).transpose(2, 0, 1)
    result = preprocess(image, META)
    assert result.shape == (3, 16, 24) and result.dtype == np.float32 and result.flags.c_contiguous
    assert np.abs(result - expected).max() < 1e-5


@pytest.mark.parametrize(("shape", "channels"), [((45, 70, 3), 3), ((45, 70), 3), ((45, 70, 3), 1), ((45, 70, 4), 3),
                                                ((45, 70, 2), 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_resize_before_scaling_gives_the_written_order(shape: tuple[int, ...], channels: int, dtype: type) -> None:
    """8-bit and float images are resized before scaling and channel conversion: same numbers as steps 2-3-4."""
    rng = np.random.default_rng(sum(shape) + channels)
    image = (rng.random(shape) if dtype is np.float64 else rng.integers(0, 4096 if dtype is np.uint16 else 256,
                                                                         shape).astype(dtype))
    info = meta(channels=channels, bit_depth=12, mean=[0.5] * channels, std=[0.25] * channels)
    planes = image if image.ndim == 3 else image[:, :, None]
    planes = planes[:, :, :planes.shape[2] - 1] if planes.shape[2] in (2, 4) else planes
    top = 255.0 if dtype is np.uint8 else 4095.0 if dtype is np.uint16 else 1.0
    unit = np.minimum(planes.astype(np.float32) / np.float32(top), 1.0)
    if channels == 1 and unit.shape[2] == 3:
        unit = cv2.cvtColor(unit, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif channels == 3 and unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    resized = cv2.resize(unit, (24, 16), interpolation=cv2.INTER_LINEAR).reshape(16, 24, channels)
    expected = ((resized - 0.5) / 0.25).transpose(2, 0, 1)
    assert np.abs(preprocess(image, info) - expected).max() < 1e-5


def test_grey_to_colour_repeats_the_plane() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (16, 24), dtype=np.uint8)
    result = preprocess(grey, meta(mean=[0, 0, 0], std=[1, 1, 1]))
    for plane in result:
        assert np.allclose(plane, grey / 255, atol=1e-7)
    assert np.array_equal(preprocess(grey[:, :, None], META), preprocess(grey, META))


def test_colour_to_grey_uses_bt601_luma() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    result = preprocess(rgb, meta(channels=1, mean=[0], std=[1]))
    expected = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2GRAY)
    assert result.shape == (1, 16, 24)
    assert np.abs(result[0] - expected).max() < 1e-6
    pure = np.zeros((16, 24, 3), np.uint8)
    pure[..., 1] = 255  # pure green
    assert np.allclose(preprocess(pure, meta(channels=1, mean=[0], std=[1])), 0.587, atol=1e-6)


def test_alpha_is_dropped() -> None:
    rgba = np.random.default_rng(5).integers(0, 256, (16, 24, 4), dtype=np.uint8)
    assert np.array_equal(preprocess(rgba, META), preprocess(rgba[:, :, :3], META))
    grey_alpha = rgba[:, :, :2]
    assert np.array_equal(preprocess(grey_alpha, META), preprocess(grey_alpha[:, :, 0], META))


def test_bit_depth_scaling() -> None:
    plain = meta(mean=[0], std=[1], channels=1)
    image16 = np.array([[0, 2048, 4095, 8190]], dtype=np.uint16)
    result = preprocess(image16, {**plain, "width": 4, "height": 1, "bit_depth": 12})[0, 0]
    assert np.allclose(result, [0, 2048 / 4095, 1.0, 1.0], atol=1e-7)  # values above the depth clip to 1
    full = preprocess(np.array([[65535, 257]], dtype=np.uint16), {**plain, "width": 2, "height": 1,
                                                                   "bit_depth": 16})[0, 0]
    assert np.allclose(full, [1.0, 257 / 65535], atol=1e-7)
    image8 = np.array([[0, 51, 255]], dtype=np.uint8)  # uint8 is always / 255, whatever bit_depth says
    result8 = preprocess(image8, {**plain, "width": 3, "height": 1, "bit_depth": 12})[0, 0]
    assert np.allclose(result8, [0, 0.2, 1.0], atol=1e-7)


def test_float_input_is_used_as_is() -> None:
    image = np.random.default_rng(6).random((16, 24, 3))
    result = preprocess(image, meta(mean=[0, 0, 0], std=[1, 1, 1]))
    assert np.allclose(result, image.transpose(2, 0, 1), atol=1e-7)


def test_roi_crop_and_mask() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    crop = [10, 5, 12, 8]  # x, y, w, h -> resized 2x to 24x16
    mask = np.full((8, 12), 255, np.uint8)
    mask[:, :3] = 0
    mask[6:, 9:] = 0
    result = preprocess(image, META, {"crop": crop, "mask": "roi_mask.png"}, mask)
    cut = image[5:13, 10:22].astype(np.float32) / 255
    resized = cv2.resize(cut, (24, 16), interpolation=cv2.INTER_LINEAR)
    expected = ((resized - np.float32(META["mean"])) / np.float32(META["std"])).transpose(2, 0, 1)
    used = np.repeat(np.repeat(mask >= 128, 2, axis=0), 2, axis=1)  # exact 2x: no nearest-neighbour ties
    expected = expected * used[None]
    assert np.abs(result - expected).max() < 1e-5
    assert np.all(result[:, ~used] == 0)  # ignored pixels = the mean colour after normalisation
    assert np.all(result[:, used] != 0)
    unmasked = preprocess(image, META, {"crop": crop, "mask": None})
    assert np.array_equal(unmasked * used[None], result)


def test_mask_without_crop_has_the_image_size() -> None:
    image = np.random.default_rng(8).integers(0, 256, (16, 24), dtype=np.uint8)
    mask = np.zeros((16, 24), np.uint8)
    mask[4:10, 5:20] = 255
    result = preprocess(image, META, None, mask)
    assert np.array_equal(result[0] != 0, mask == 255)
    with pytest.raises(PreprocessError, match="mask is 24x16"):
        preprocess(image, META, {"crop": [0, 0, 10, 10]}, mask)


def test_crop_outside_the_image_is_refused() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(PreprocessError, match="does not fit inside the 30x20 image"):
        preprocess(image, META, {"crop": [25, 0, 10, 10]})
    with pytest.raises(PreprocessError, match="does not fit"):
        preprocess(image, META, {"crop": [-1, 0, 10, 10]})


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.int32), np.zeros((4, 4), bool)])
def test_unsupported_pixel_types(bad: np.ndarray) -> None:
    with pytest.raises(PreprocessError, match="unsupported pixel type"):
        preprocess(bad, META)


def test_bad_shapes_and_settings() -> None:
    with pytest.raises(PreprocessError, match=r"\(H, W\) or \(H, W, C\)"):
        preprocess(np.zeros((2, 3, 4, 5), np.uint8), META)
    with pytest.raises(PreprocessError, match="mean has 2 values"):
        preprocess(np.zeros((4, 4, 3), np.uint8), meta(mean=[0.5, 0.5]))
    with pytest.raises(PreprocessError, match="5 channels"):
        preprocess(np.zeros((4, 4, 5), np.uint8), META)


def test_nearest_matches_pil_except_on_exact_ties() -> None:
    for src in (1, 2, 7, 10, 37, 64):
        for dst in (1, 3, 5, 15, 24, 160, 224):
            row = np.arange(src, dtype=np.int32)[None, :]
            pil = np.asarray(Image.fromarray(row).resize((dst, 1), Image.NEAREST))[0]
            ours = nearest_indices(src, dst)
            ties = ((2 * np.arange(dst) + 1) * src) % (2 * dst) == 0  # centre exactly on a pixel border
            assert np.array_equal(pil[~ties], ours[~ties]), (src, dst)
            assert np.all(np.abs(pil[ties] - ours[ties]) <= 1)
    mask = np.arange(12).reshape(3, 4)
    assert np.array_equal(resize_nearest(mask, 8, 6), np.repeat(np.repeat(mask, 2, 0), 2, 1))


# ----------------------------------------------------------------------------------------------- load_image

def test_load_image_modes(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    grey8 = rng.integers(0, 256, (12, 17), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (12, 17), dtype=np.uint16)
    rgb = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (12, 17, 4), dtype=np.uint8)
    Image.fromarray(grey8).save(tmp_path / "g8.png")
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    Image.fromarray(grey16).save(tmp_path / "g16.tif")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(grey8 > 127).save(tmp_path / "bits.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.bmp")

    for name, expected in (("g8.png", grey8[:, :, None]), ("g16.png", grey16[:, :, None]),
                           ("g16.tif", grey16[:, :, None]), ("rgb.png", rgb), ("rgba.png", rgba[:, :, :3]),
                           ("rgb.bmp", rgb), ("bits.png", np.where(grey8 > 127, 255, 0)[:, :, None])):
        loaded = load_image(tmp_path / name)
        assert loaded.dtype == expected.dtype or name == "bits.png", name
        assert np.array_equal(loaded, expected), name
    palette = load_image(str(tmp_path / "palette.png"))
    assert palette.shape == (12, 17, 3) and palette.dtype == np.uint8


def test_load_image_16_bit_colour_warns(tmp_path: Path) -> None:
    rgb16 = np.random.default_rng(10).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])
    with pytest.warns(UserWarning, match="8-bit precision"):
        loaded = load_image(tmp_path / "c16.png")
    assert loaded.dtype == np.uint16 and loaded.shape == (6, 7, 3)
    assert np.array_equal(loaded, (rgb16 >> 8) * 257)


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(PreprocessError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    good = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(11).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(), pytest.raises(PreprocessError, match="cut.png"):
        warnings.simplefilter("ignore")
        load_image(good)


# ------------------------------------------------------------------------------------------------ limits (issue 19)

def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` 8-bit grey pixels and holds none."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_images_above_the_pixel_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(PreprocessError, match=r"bomb\.png: .*decompression-bomb"):
        load_image(bomb)
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "1000")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(small)
    with pytest.raises(PreprocessError, match=r"small\.png: image size 40 x 30 \(pixels\) is 1,200, above the limit "
                                              "of 1,000; set ASTROCYTE_MAX_IMAGE_PIXELS to raise it"):
        load_image(small)
    with pytest.raises(PreprocessError, match="image: image size 40 x 30"):
        preprocess(np.zeros((30, 40, 3), np.uint16), META)
    with Image.open(small) as im, pytest.raises(PreprocessError, match="image size 40 x 30"):
        from astrocyte_lab.runtime.preprocess import image_from_pil

        image_from_pil(im)


def test_our_pixel_limit_decides_not_pillows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = tmp_path / "line_scan.png"
    scan.write_bytes(_png_header(15_000, 15_000))  # 225 Mpx: above Pillow's own 179 Mpx error, below our default
    monkeypatch.delenv("ASTROCYTE_MAX_IMAGE_PIXELS", raising=False)
    with pytest.raises(PreprocessError, match=r"line_scan\.png: cannot decode") as refused:
        load_image(scan)  # the header passes; the (missing) pixel data is what fails
    assert "bomb" not in str(refused.value)
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "100000000")
    with pytest.raises(PreprocessError, match=r"line_scan\.png: image size 15000 x 15000"):
        load_image(scan)


def test_a_20000_by_20000_16_bit_array_is_refused_without_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    from astrocyte_lab.runtime import preprocess_full

    monkeypatch.delenv("ASTROCYTE_MAX_IMAGE_PIXELS", raising=False)

    huge = np.broadcast_to(np.zeros((), np.uint16), (20_000, 20_000))  # declares 800 MB, holds 2 bytes
    for fn in (preprocess, preprocess_full):
        assert _peak_bytes(_refused, fn, huge) < 1 << 20


def _refused(fn: Any, image: np.ndarray) -> None:
    with pytest.raises(PreprocessError, match=r"image size 20000 x 20000 \(pixels\) is 400,000,000, above the limit "
                                              "of 268,435,456; set ASTROCYTE_MAX_IMAGE_PIXELS"):
        fn(image, META)


def _peak_bytes(fn: object, *args: object) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn(*args)  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_16_bit_conversion_makes_no_full_size_float_copy() -> None:
    from astrocyte_lab.runtime import preprocess_full

    image = (np.arange(2000 * 3000, dtype=np.uint32) % 4096).astype(np.uint16).reshape(2000, 3000, 1)
    image = np.repeat(image, 3, axis=2)  # 36 MB; a float32 copy is 72 MB
    settings = meta(bit_depth=12)
    assert _peak_bytes(preprocess, image, settings) < image.nbytes // 4
    output = 2000 * 3000 * 3 * 4
    assert _peak_bytes(preprocess_full, image, settings) < output + image.nbytes // 2


def test_float_files_convert_without_a_float64_copy() -> None:
    from astrocyte_lab.runtime.preprocess import image_from_pil

    values = np.random.default_rng(3).random((1500, 2000)).astype(np.float32) * 3.0
    values[0, 0] = np.nan
    im = Image.fromarray(values, mode="F")
    peak = _peak_bytes(image_from_pil, im)
    converted = image_from_pil(im)
    finite = np.nan_to_num(values.astype(np.float64))
    assert np.array_equal(converted[:, :, 0], np.clip(finite * (65535.0 / finite.max()), 0, 65535).astype(np.uint16))
    assert peak < 3 * values.nbytes  # decoding (2x) and the uint16 result; the old float64 copies took 7x


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(bad: float) -> None:
    from astrocyte_lab.runtime import preprocess_full

    image = np.full((300, 20, 3), 0.5, np.float32)
    image[290, 7, 1] = bad
    for fn in (preprocess, preprocess_full):
        with pytest.raises(PreprocessError, match=rf"pixel \(x=7, y=290\) is \[0.5, {bad}, 0.5\]: NaN and infinite"):
            fn(image, META)
    preprocess(image, META, roi={"crop": [0, 0, 20, 200]})  # outside the crop: not used, not refused


def test_non_finite_pixels_give_an_error_not_a_nan_score(make_package: object) -> None:
    from astrocyte_lab.runtime import load_package

    path, _ = make_package()  # type: ignore[operator]
    image = np.full((30, 40, 3), 0.5, np.float64)
    image[3, 4, 0] = np.nan
    with pytest.raises(PreprocessError, match="NaN and infinite"):
        load_package(path).predict(image)


def _resize_in_child() -> None:
    resize_bilinear(np.zeros((1000, 1000, 1), np.float32), 1100, 1000)


def test_resize_bands_work_in_a_forked_child() -> None:
    import multiprocessing

    _resize_in_child()  # the band pool now has threads in this process, which a forked child does not inherit
    child = multiprocessing.get_context("fork").Process(target=_resize_in_child)
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("a forked child waited for ever on the parent's resize pool")
    assert child.exitcode == 0
