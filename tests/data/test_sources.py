"""Named sets and locations: folder walking, filters, categories, masks, discovery."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.sources import Location, NamedSet, discover, segmentation_set
from astrocyte_lab.errors import AstrocyteError, EmptySourceError


@pytest.fixture
def tree(images, tmp_path):
    """root/{cam1_ok,cam2_ok,cam1_bad}.png, root/lineA/{cam1_ok.png,cam3_ok.jpg}, root/notes.txt."""
    root = tmp_path / "root"
    for name in ("cam1_ok.png", "cam2_ok.png", "cam1_bad.png", "lineA/cam1_ok.png", "lineA/cam3_ok.jpg"):
        images.make(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def rel(root, paths) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)


def test_include_subfolders_on_and_off(tree):
    assert rel(tree, Location(tree).files()) == [
        "cam1_bad.png", "cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png", "lineA/cam3_ok.jpg"]
    assert rel(tree, Location(tree, include_subfolders=False).files()) == [
        "cam1_bad.png", "cam1_ok.png", "cam2_ok.png"]


def test_file_type_filter(tree):
    assert rel(tree, Location(tree, file_types=("jpg",)).files()) == ["lineA/cam3_ok.jpg"]
    assert rel(tree, Location(tree, file_types=(".PNG",)).files()) == [
        "cam1_bad.png", "cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png"]
    with pytest.raises(AstrocyteError, match="unsupported file type"):
        Location(tree, file_types=("gif",))


@pytest.mark.parametrize(("kind", "pattern", "full", "expected"), [
    ("none", "", False, ["cam1_bad.png", "cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png", "lineA/cam3_ok.jpg"]),
    ("prefix", "cam1", False, ["cam1_bad.png", "cam1_ok.png", "lineA/cam1_ok.png"]),
    ("prefix", "lineA/cam", True, []),  # a full path starts at the root, not at the folder
    ("suffix", "_ok", False, ["cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png", "lineA/cam3_ok.jpg"]),
    ("suffix", "_ok.png", False, ["cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png"]),
    ("suffix", "lineA/cam1_ok", False, []),  # the name alone has no folder in it
    ("suffix", "lineA/cam1_ok", True, ["lineA/cam1_ok.png"]),
    ("regex", r"^cam[12]_", False, ["cam1_bad.png", "cam1_ok.png", "cam2_ok.png", "lineA/cam1_ok.png"]),
    ("regex", r"^cam[12]_", True, []),
    ("regex", r"lineA/.*_ok", True, ["lineA/cam1_ok.png", "lineA/cam3_ok.jpg"]),
    ("regex", r"lineA", False, []),
])
def test_name_filters(tree, kind, pattern, full, expected):
    location = Location(tree, name_filter=kind, pattern=pattern, match_full_path=full)
    assert rel(tree, location.files()) == expected


def test_prefix_on_full_path(tree):
    location = Location(tree, name_filter="prefix", pattern=str(tree / "lineA" / "cam"), match_full_path=True)
    assert rel(tree, location.files()) == ["lineA/cam1_ok.png", "lineA/cam3_ok.jpg"]


def test_invalid_filters_are_rejected(tree):
    with pytest.raises(AstrocyteError, match="invalid regular expression"):
        Location(tree, name_filter="regex", pattern="cam[")
    with pytest.raises(AstrocyteError, match="name_filter"):
        Location(tree, name_filter="glob", pattern="*")  # type: ignore[arg-type]


def test_category_per_location_and_folder_name(images, tmp_path):
    images.folder(tmp_path / "good", 2, prefix="g")
    images.folder(tmp_path / "parts/scratch", 2, prefix="s")
    images.folder(tmp_path / "parts/dent", 1, prefix="d")
    sources, skipped = discover([NamedSet("s", [
        Location(tmp_path / "good", category="OK"),
        Location(tmp_path / "parts", use_folder_name=True),
    ])])
    assert skipped == []
    assert {s.path.name: s.category for s in sources} == {
        "g0.png": "OK", "g1.png": "OK", "s0.png": "scratch", "s1.png": "scratch", "d0.png": "dent"}
    assert {s.set_name for s in sources} == {"s"}


def test_overlapping_locations_list_a_file_once(images, tmp_path):
    images.folder(tmp_path / "a/sub", 2)
    sources, skipped = discover([
        NamedSet("first", [Location(tmp_path / "a")]),
        NamedSet("second", [Location(tmp_path / "a/sub", category="x")]),
    ])
    assert len(sources) == 2 and {s.set_name for s in sources} == {"first"}
    assert len(skipped) == 2
    assert all("listed twice" in reason and "first" in reason for _, reason in skipped)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(EmptySourceError, match=str(tmp_path / "nowhere")):
        discover([NamedSet("s", [Location(tmp_path / "nowhere")])])


def test_empty_folder_names_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySourceError, match=str(tmp_path / "empty")):
        discover([NamedSet("s", [Location(tmp_path / "empty")])])


def test_filter_matching_nothing_is_empty(tree):
    with pytest.raises(EmptySourceError, match="no image found"):
        discover([NamedSet("s", [Location(tree, name_filter="prefix", pattern="zzz")])])


def test_no_sets_or_locations(tmp_path):
    with pytest.raises(EmptySourceError):
        discover([])
    with pytest.raises(EmptySourceError, match="no location"):
        discover([NamedSet("s", [])])
    with pytest.raises(AstrocyteError, match="needs a name"):
        NamedSet("  ", [])


def test_named_set_dict_round_trip(tree):
    named = NamedSet("s", [Location(tree, False, ("png",), "regex", "cam", True, "A")],
                     masks=Location(tree / "lineA"))
    again = NamedSet.from_dict(named.to_dict())
    assert again == named


def test_segmentation_set_matches_masks_by_stem(images, tmp_path):
    images.folder(tmp_path / "img", 3, prefix="p")
    for i in (0, 2):
        images.write(tmp_path / "mask" / f"p{i}.png", np.zeros((24, 32), np.uint8))
    sources, skipped = discover([segmentation_set("seg", tmp_path / "img", tmp_path / "mask")])
    assert {s.path.name: s.mask_path.name for s in sources} == {"p0.png": "p0.png", "p2.png": "p2.png"}
    assert len(skipped) == 1 and skipped[0][0].endswith("p1.png") and "no mask" in skipped[0][1]


def test_two_masks_with_one_stem_are_ambiguous(images, tmp_path):
    images.folder(tmp_path / "img", 1, prefix="p")
    images.write(tmp_path / "mask/p0.png", np.zeros((24, 32), np.uint8))
    images.write(tmp_path / "mask/p0.bmp", np.zeros((24, 32), np.uint8))
    with pytest.raises(AstrocyteError, match="share the stem"):
        discover([segmentation_set("seg", tmp_path / "img", tmp_path / "mask")])


# -- named sets through dataset creation ----------------------------------------------------------------


def test_categories_from_locations_become_ground_truth(ws, images, tmp_path):
    images.folder(tmp_path / "ok", 2, prefix="ok")
    images.folder(tmp_path / "bad/scratch", 2, prefix="sc")
    ds = ws.create_dataset("c", "classification", [
        NamedSet("one", [Location(tmp_path / "ok", category="good")]),
        NamedSet("two", [Location(tmp_path / "bad", use_folder_name=True)]),
    ])
    assert ds.categories == ["good", "scratch"]
    table = ds.table.set_index("name")
    assert table["ground_truth"].to_dict() == {"ok0.png": "good", "ok1.png": "good",
                                               "sc0.png": "scratch", "sc1.png": "scratch"}
    assert table["named_set"].to_dict() == {"ok0.png": "one", "ok1.png": "one", "sc0.png": "two", "sc1.png": "two"}


def test_anomaly_accepts_only_normal_and_anomaly(ws, images, tmp_path):
    images.folder(tmp_path / "good", 2)
    images.folder(tmp_path / "bad", 1)
    with pytest.raises(AstrocyteError, match="Normal"):
        ws.create_dataset("a", "anomaly", [NamedSet("s", [Location(tmp_path / "good", category="OK")])])
    assert ws.dataset_names() == [] and not (ws.path / "datasets" / "a").exists()
    ds = ws.create_dataset("a", "anomaly", [NamedSet("s", [
        Location(tmp_path / "good", category="Normal"), Location(tmp_path / "bad", category="Anomaly")])])
    assert ds.categories == ["Normal", "Anomaly"]
    assert sorted(ds.table["ground_truth"]) == ["Anomaly", "Normal", "Normal"]
    with pytest.raises(AstrocyteError, match="Normal and Anomaly"):
        ds.add_category("Other")


def _seg_folders(images, tmp_path, count=3, width=32, height=24):
    """Images p<i> with masks using pixel values 0 (background), 3 and 7."""
    masks = {}
    for i in range(count):
        images.make(tmp_path / "img" / f"p{i}.png", seed=i, width=width, height=height)
        mask = np.zeros((height, width), np.uint8)
        mask[: height // 3, :] = 3
        mask[height // 2:, : width // 4] = 7 if i != 1 else 3
        images.write(tmp_path / "mask" / f"p{i}.png", mask)
        masks[f"p{i}.png"] = mask
    return masks


def test_segmentation_pixel_values_become_categories(ws, images, tmp_path):
    masks = _seg_folders(images, tmp_path)
    ds = ws.create_dataset("seg", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")])
    assert ds.categories == ["0", "3", "7"]
    for name, raw in masks.items():
        expected = np.select([raw == 3, raw == 7], [1, 2], 0)
        np.testing.assert_array_equal(ds.mask(name), expected)
    ds.rename_category("3", "scratch")
    ds.rename_category("0", "background")
    ds.save()
    again = ws.dataset("seg")
    assert again.categories == ["background", "scratch", "7"]
    np.testing.assert_array_equal(again.mask("p0.png"), np.select([masks["p0.png"] == 3, masks["p0.png"] == 7],
                                                                  [1, 2], 0))


def test_segmentation_masks_resized_with_nearest_keep_valid_values(ws, images, tmp_path):
    _seg_folders(images, tmp_path, width=64, height=48)
    images.make(tmp_path / "img/odd.png", width=40, height=40)
    odd = np.full((40, 40), 7, np.uint8)
    odd[::3, ::3] = 3
    images.write(tmp_path / "mask/odd.png", odd)
    ds = ws.create_dataset("seg", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")],
                           options=GenerationOptions(max_size=(21, 13), correction="resize_keep_aspect"))
    assert (ds.geometry.width, ds.geometry.height) == (17, 13)
    assert len(ds) == 4 and ds.categories == ["0", "3", "7"]
    for image_id in ds.ids:
        mask = ds.mask(int(image_id))
        assert mask.shape == (13, 17)
        assert set(np.unique(mask).tolist()) <= {0, 1, 2}
    # the stored raw values are the source values, never blends of them
    for path in (ws.path / "datasets/seg/masks").glob("*.zarr"):
        assert set(np.unique(zarr.open_array(path, mode="r")[:]).tolist()) <= {0, 3, 7}
    odd_mask = ds.mask("odd.png")
    assert (odd_mask[:, 0] == 0).all() and (odd_mask[:, -1] == 0).all()  # keep-aspect pads with background
