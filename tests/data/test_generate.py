"""Generation: choosing the dataset geometry, corrections, channel/depth handling, formats, bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from astrocyte_lab.data import imageio
from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.store import DatasetStore
from astrocyte_lab.errors import EmptySourceError


def one_set(*folders, **location) -> list[NamedSet]:
    return [NamedSet("s", [Location(f, **location) for f in folders])]


def by_name(ds) -> dict[str, int]:
    return {name: int(i) for i, name in ds.table["name"].items()}


def test_original_size_is_kept(ws, images, tmp_path):
    srcs = images.folder(tmp_path / "in", 3)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.width == 32 and ds.geometry.height == 24 and ds.geometry.channels == 3
    assert ds.geometry.dtype == "uint8" and ds.bit_depth == 8
    for path in srcs:
        np.testing.assert_array_equal(ds.image(path.name), imageio.read_image(path))
    report = ds.last_report
    assert (report.added, report.width, report.height, report.channels) == (3, 32, 24, 3)
    assert report.skipped == report.excluded == report.corrected == report.converted == []


def test_max_size_shrinks_larger_images_keeping_aspect(ws, images, tmp_path):
    src = images.make(tmp_path / "in/big0.png", width=64, height=48)
    images.make(tmp_path / "in/big1.png", width=64, height=48, seed=1)
    images.make(tmp_path / "in/huge.png", width=128, height=96, seed=2)  # same aspect: plain resize
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"),
                           options=GenerationOptions(max_size=(40, 40)))
    assert (ds.geometry.width, ds.geometry.height) == (40, 30)
    assert len(ds) == 3 and ds.last_report.corrected == [] and ds.last_report.excluded == []
    expected = cv2.resize(imageio.read_image(src), (40, 30), interpolation=cv2.INTER_AREA)
    assert np.abs(ds.image("big0.png").astype(int) - expected.astype(int)).max() <= 1
    table = ds.table.set_index("name")
    assert (table.loc["huge.png", "source_width"], table.loc["huge.png", "source_height"]) == (128, 96)


def test_max_size_never_enlarges(ws, images, tmp_path):
    images.folder(tmp_path / "in", 2)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"),
                           options=GenerationOptions(max_size=(320, 240)))
    assert (ds.geometry.width, ds.geometry.height) == (32, 24)


@pytest.fixture
def mixed_sizes(images, tmp_path):
    """Three 32x24 images and one 40x40 (odd.png) whose pixel values grow left to right."""
    for i in range(3):
        images.make(tmp_path / f"in/n{i}.png", seed=i)
    odd = np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 5, (40, 1, 3))
    images.write(tmp_path / "in/odd.png", odd)
    return tmp_path / "in", odd


def test_differing_size_excluded_by_default(ws, mixed_sizes):
    folder, _ = mixed_sizes
    ds = ws.create_dataset("d", "classification", one_set(folder))
    assert len(ds) == 3 and "odd.png" not in set(ds.table["name"])
    assert [p for p, _ in ds.last_report.excluded] == [str((folder / "odd.png").resolve())]
    assert "40 x 40" in ds.last_report.excluded[0][1]


def test_correction_resize(ws, mixed_sizes):
    folder, odd = mixed_sizes
    ds = ws.create_dataset("d", "classification", one_set(folder), options=GenerationOptions(correction="resize"))
    assert len(ds) == 4
    out = ds.image("odd.png")
    assert out.shape == (24, 32, 3)
    assert np.abs(out.astype(int) - cv2.resize(odd, (32, 24), interpolation=cv2.INTER_AREA)).max() <= 1
    assert ds.table.set_index("name").loc["odd.png", "correction"] == "resize"
    assert [p for p, _ in ds.last_report.corrected] == [str((folder / "odd.png").resolve())]


def test_correction_resize_keep_aspect(ws, mixed_sizes):
    folder, _ = mixed_sizes
    ds = ws.create_dataset("d", "classification", one_set(folder),
                           options=GenerationOptions(correction="resize_keep_aspect"))
    out = ds.image("odd.png")
    assert out.shape == (24, 32, 3)
    inner = out[:, 4:28]  # 40x40 -> 24x24 centred
    assert (np.diff(inner[12, :, 0].astype(int)) >= 0).all() and inner[12, -1, 0] > inner[12, 0, 0]
    pad = out[:, :4]
    assert (pad == pad[0, 0]).all() and (out[:, 28:] == pad[0, 0]).all()


def test_correction_crop(ws, mixed_sizes):
    folder, odd = mixed_sizes
    ds = ws.create_dataset("d", "classification", one_set(folder), options=GenerationOptions(correction="crop"))
    np.testing.assert_array_equal(ds.image("odd.png"), odd[8:32, 4:36])


def test_corrections_per_image_by_path_and_by_name(ws, images, mixed_sizes, tmp_path):
    folder, odd = mixed_sizes
    images.write(folder / "odd2.png", odd)
    images.write(folder / "odd3.png", odd)
    options = GenerationOptions(correction="exclude", corrections={
        str(folder / "odd.png"): "crop", "odd2.png": "resize_keep_aspect"})
    ds = ws.create_dataset("d", "classification", one_set(folder), options=options)
    table = ds.table.set_index("name")
    assert table.loc["odd.png", "correction"] == "crop"
    assert table.loc["odd2.png", "correction"] == "resize_keep_aspect"
    assert "odd3.png" not in table.index
    np.testing.assert_array_equal(ds.image("odd.png"), odd[8:32, 4:36])
    assert [p.rsplit("/", 1)[-1] for p, _ in ds.last_report.excluded] == ["odd3.png"]


def test_correction_keyed_by_relative_path(ws, mixed_sizes, tmp_path, monkeypatch):
    folder, odd = mixed_sizes
    monkeypatch.chdir(tmp_path)
    options = GenerationOptions(corrections={"in/odd.png": "crop"})
    ds = ws.create_dataset("d", "classification", one_set("in"), options=options)
    np.testing.assert_array_equal(ds.image("odd.png"), odd[8:32, 4:36])


def test_every_image_excluded_is_an_error(ws, images, tmp_path):
    images.make(tmp_path / "in/a.png", width=32, height=24)
    images.make(tmp_path / "in/b.png", width=40, height=40)
    images.make(tmp_path / "in/c.png", width=20, height=20)
    # majority tie: first seen (a.png) sets the size; b and c are excluded but a stays
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert list(ds.table["name"]) == ["a.png"] and len(ds.last_report.excluded) == 2


def test_majority_channel_count_wins_and_rest_converted(ws, images, tmp_path):
    for i in range(3):
        images.make(tmp_path / f"in/c{i}.png", seed=i)
    grey = images.make(tmp_path / "in/g.png", channels=1, seed=9)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.channels == 3 and len(ds) == 4
    assert [p for p, _ in ds.last_report.converted] == [str(grey.resolve())]
    assert "1 -> 3" in ds.last_report.converted[0][1]
    out = ds.image("g.png")
    src = imageio.read_image(grey)
    assert out.shape == (24, 32, 3) and all((out[..., c] == src[..., 0]).all() for c in range(3))


def test_majority_grey_converts_colour_to_luma(ws, images, tmp_path):
    for i in range(2):
        images.make(tmp_path / f"in/g{i}.png", channels=1, seed=i)
    colour = images.make(tmp_path / "in/c.png", seed=5)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.channels == 1
    expected = cv2.cvtColor(imageio.read_image(colour), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(ds.image("c.png")[..., 0], expected)
    assert [p.rsplit("/", 1)[-1] for p, _ in ds.last_report.converted] == ["c.png"]


def test_grey_8bit(ws, images, tmp_path):
    srcs = images.folder(tmp_path / "in", 2, channels=1)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.channels == 1 and ds.geometry.dtype == "uint8" and ds.bit_depth == 8
    np.testing.assert_array_equal(ds.image(srcs[0].name), imageio.read_image(srcs[0]))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_12bit_in_16bit_container_keeps_raw_values(ws, images, tmp_path, suffix):
    arrays = []
    for i in range(2):
        a = images.array(seed=i, channels=1, dtype=np.uint16, top=4095)
        a[0, 0] = 4095
        images.write(tmp_path / f"in/g{i}{suffix}", a)
        arrays.append(a)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.dtype == "uint16" and ds.bit_depth == 12
    for i, a in enumerate(arrays):
        out = ds.image(f"g{i}{suffix}")
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, a)
        assert out.max() == 4095


def test_colour_16bit_keeps_raw_values(ws, images, tmp_path):
    a = images.array(seed=1, dtype=np.uint16, top=4095)
    a[0, 0] = 4095
    images.write(tmp_path / "in/c.png", a)
    images.make(tmp_path / "in/c2.png", seed=2, dtype=np.uint16, top=4095)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.dtype == "uint16" and ds.geometry.channels == 3 and ds.bit_depth == 12
    np.testing.assert_array_equal(ds.image("c.png"), a)


def test_mixed_8bit_and_16bit_scale_8bit_up(ws, images, tmp_path):
    eight = images.make(tmp_path / "in/a8.png", channels=1)
    images.make(tmp_path / "in/b16.png", channels=1, dtype=np.uint16, top=4095)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ds.geometry.dtype == "uint16"
    np.testing.assert_array_equal(ds.image("a8.png"), imageio.read_image(eight).astype(np.uint16) * 257)


def test_all_formats_import(ws, images, tmp_path):
    arrays = {}
    for i, suffix in enumerate((".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")):
        arrays[f"x{i}{suffix}"] = images.array(seed=i)
        images.write(tmp_path / f"in/x{i}{suffix}", arrays[f"x{i}{suffix}"])
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert sorted(ds.table["name"]) == sorted(arrays)
    for name, array in arrays.items():
        out = ds.image(name).astype(int)
        if name.endswith((".jpg", ".jpeg")):
            assert np.abs(out - array).mean() < 12  # lossy, chroma-subsampled at this tiny size
        else:
            np.testing.assert_array_equal(out, array)


def test_shrunk_jpeg_is_the_area_resize_of_the_full_decode(ws, images, tmp_path, monkeypatch):
    """No reduced (DCT-domain) JPEG decoding: a deployed package, fed the full-size file, can repeat the shrink."""
    calls = []
    real = imageio.read_image

    def spy(path, reduce=1, grey=False):
        calls.append((path.name, reduce))
        return real(path, reduce=reduce, grey=grey)

    monkeypatch.setattr(imageio, "read_image", spy)
    colour = np.zeros((190, 250, 3), np.uint8)
    colour[:, :125] = (230, 20, 20)
    colour[:, 125:] = (20, 20, 230)
    images.write(tmp_path / "in/a.jpg", colour)
    images.write(tmp_path / "in/b.jpg", colour[:, ::-1])
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"),
                           options=GenerationOptions(max_size=(60, 40)))
    assert (ds.geometry.width, ds.geometry.height) == (53, 40)
    assert sorted(calls) == [("a.jpg", 1), ("b.jpg", 1)]
    reference = cv2.resize(real(tmp_path / "in/a.jpg"), (53, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds.image("a.jpg"), reference)


def test_shrunk_grey_jpeg_keeps_one_channel(ws, images, tmp_path):
    images.make(tmp_path / "in/g0.jpg", channels=1, width=130, height=97)
    images.make(tmp_path / "in/g1.jpg", channels=1, width=130, height=97, seed=1)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"),
                           options=GenerationOptions(max_size=(31, 31)))
    g = ds.geometry
    assert (g.width, g.height, g.channels) == (31, 23, 1)
    assert ds.image("g0.jpg").shape == (23, 31, 1)


def test_progress_callback(ws, images, tmp_path):
    images.folder(tmp_path / "in", 20)
    seen = []
    ws.create_dataset("d", "classification", one_set(tmp_path / "in"), on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (20, 20) and all(t == 20 for _, t in seen)


# -- bad input ---------------------------------------------------------------------------------------------


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "truncated_jpeg": ("bad.jpg", lambda images, p: (images.make(p, width=64, height=48), _cut_in_half(p)),
                       "truncated JPEG"),
    "truncated_png": ("bad.png", lambda images, p: (images.make(p), _cut_in_half(p)), "truncated PNG"),
    "not_an_image": ("bad.bmp", lambda images, p: p.write_text("hello, I am text\n" * 10), "not a"),
    "empty_file": ("bad.tif", lambda images, p: p.write_bytes(b""), "empty file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_skipped_and_reported(ws, images, tmp_path, case):
    name, make, reason = BAD_FILES[case]
    images.folder(tmp_path / "in", 3)
    bad = tmp_path / "in" / name
    make(images, bad)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert len(ds) == 3 and name not in set(ds.table["name"])
    skipped = ds.last_report.skipped
    assert len(skipped) == 1
    assert skipped[0][0] == str(bad.resolve())
    assert reason in skipped[0][1]
    assert name in ds.last_report.summary()


def test_only_bad_files_is_an_error_and_leaves_nothing(ws, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.png").write_bytes(b"")
    with pytest.raises(EmptySourceError, match="a.png"):
        ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert ws.dataset_names() == [] and not (ws.path / "datasets/d").exists()


def test_unreadable_file_is_skipped(ws, images, tmp_path, monkeypatch):
    """A file the OS refuses to read (permissions, I/O error) is skipped like a corrupt one."""
    images.folder(tmp_path / "in", 2)
    locked = images.make(tmp_path / "in/locked.png", seed=7)
    real_fromfile, real_open = np.fromfile, imageio.Image.open

    def fromfile(path, *args, **kwargs):
        if str(path) == str(locked.resolve()):
            raise PermissionError(13, "Permission denied", str(path))
        return real_fromfile(path, *args, **kwargs)

    def pil_open(path, *args, **kwargs):
        if str(path) == str(locked.resolve()):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(imageio.np, "fromfile", fromfile)
    monkeypatch.setattr(imageio.Image, "open", pil_open)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert len(ds) == 2
    assert len(ds.last_report.skipped) == 1
    path, reason = ds.last_report.skipped[0]
    assert path == str(locked.resolve()) and "cannot read file" in reason and "Permission denied" in reason


def test_mask_of_wrong_size_is_skipped(ws, images, tmp_path):
    from astrocyte_lab.data.sources import segmentation_set

    for i in range(2):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        images.write(tmp_path / f"mask/p{i}.png", np.zeros((24, 32), np.uint8))
    images.make(tmp_path / "img/p2.png")
    images.write(tmp_path / "mask/p2.png", np.zeros((10, 10), np.uint8))
    ds = ws.create_dataset("s", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")])
    assert sorted(ds.table["name"]) == ["p0.png", "p1.png"]
    assert ds.last_report.skipped[0][0].endswith("p2.png") and "10 x 10" in ds.last_report.skipped[0][1]


def test_same_file_name_in_two_folders_gets_distinct_names(ws, images, tmp_path):
    a = images.make(tmp_path / "in/left/img.png", seed=1)
    b = images.make(tmp_path / "in/right/img.png", seed=2)
    images.make(tmp_path / "in/other.png", seed=3)
    ds = ws.create_dataset("d", "classification", one_set(tmp_path / "in"))
    assert sorted(ds.table["name"]) == ["left/img.png", "other.png", "right/img.png"]
    np.testing.assert_array_equal(ds.image("left/img.png"), imageio.read_image(a))
    np.testing.assert_array_equal(ds.image("right/img.png"), imageio.read_image(b))


def test_same_file_listed_twice_is_stored_once(ws, images, tmp_path):
    images.folder(tmp_path / "in/sub", 2)
    images.make(tmp_path / "in/top.png", seed=5)
    sets = [NamedSet("all", [Location(tmp_path / "in"), Location(tmp_path / "in/sub")])]
    ds = ws.create_dataset("d", "classification", sets)
    assert len(ds) == 3 and len(set(ds.table["source"])) == 3
    assert len(ds.last_report.skipped) == 2
    assert all("listed twice" in reason for _, reason in ds.last_report.skipped)
    store = DatasetStore(ws.path / "datasets/d")
    assert store.load_table().sizes["image"] == 3
