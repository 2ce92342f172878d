"""The per-image table and its edits: labels, sets, shuffle, categories, masks, ROI, save / reload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from astrocyte_lab.data.sources import Location, NamedSet, segmentation_set
from astrocyte_lab.data.store import DatasetStore
from astrocyte_lab.errors import AstrocyteError


@pytest.fixture
def ds(ws, labelled_tree):
    """Classification dataset: a0..a2 labelled A, b0..b2 labelled B (ids 0..5 in that order)."""
    return ws.create_dataset("d", "classification", [NamedSet("s", [Location(labelled_tree, use_folder_name=True)])],
                             description="first", seed=3)


@pytest.fixture
def many(ws, images, tmp_path):
    images.folder(tmp_path / "many", 10, prefix="m")
    return ws.create_dataset("m", "classification", [NamedSet("s", [Location(tmp_path / "many", category="x")])],
                             seed=1)


def saved_attrs(ws, name):
    return DatasetStore(ws.path / "datasets" / name).load_table().attrs


def test_table_columns_and_values(ds, labelled_tree):
    table = ds.table
    assert table.index.name == "image_id" and list(table.index) == [0, 1, 2, 3, 4, 5]
    for column in ("name", "source", "ground_truth", "set", "assigned", "named_set", "prediction", "has_mask"):
        assert column in table.columns
    assert list(table["name"]) == ["a0.png", "a1.png", "a2.png", "b0.png", "b1.png", "b2.png"]
    assert table.loc[0, "source"] == str((labelled_tree / "A/a0.png").resolve())
    assert list(table["ground_truth"]) == ["A"] * 3 + ["B"] * 3
    assert set(table["set"]) == {"auto"}
    assert set(table["assigned"]) <= {"train", "validation"}
    assert list(table["prediction"]) == [""] * 6 and not table["has_mask"].any()


def test_image_selectors(ds):
    np.testing.assert_array_equal(ds.image(0), ds.image("a0.png"))
    with pytest.raises(AstrocyteError, match="no image named"):
        ds.image("zzz.png")
    with pytest.raises(AstrocyteError, match="no image with id"):
        ds.image(99)


def test_shuffle_honours_ratio_and_keeps_explicit_sets(many):
    many.assign_set([0, 1], "train")
    many.assign_set([2], "validation")
    many.shuffle(train_ratio=0.6, seed=11)
    table = many.table
    assert list(table.loc[[0, 1, 2], "set"]) == ["train", "train", "validation"]
    assert list(table.loc[[0, 1, 2], "assigned"]) == ["train", "train", "validation"]
    auto = table[table["set"] == "auto"]
    assert len(auto) == 7
    assert (auto["assigned"] == "train").sum() == round(0.6 * 7)
    for seed in range(20):  # explicit images never move, whatever the draw
        many.shuffle(seed=seed)
        assert list(many.table.loc[[0, 1, 2], "assigned"]) == ["train", "train", "validation"]


def test_shuffle_reproducible_with_seed_and_recorded(ws, many):
    many.shuffle(train_ratio=0.5, seed=42)
    first = list(many.table["assigned"])
    many.shuffle(train_ratio=0.5, seed=7)
    other = list(many.table["assigned"])
    many.shuffle(train_ratio=0.5, seed=42)
    assert list(many.table["assigned"]) == first != other
    assert first.count("train") == 5
    many.save()
    attrs = saved_attrs(ws, "m")
    assert attrs["shuffle_seed"] == 42 and attrs["train_ratio"] == 0.5
    assert list(ws.dataset("m").table["assigned"]) == first


def test_shuffle_without_seed_records_the_drawn_seed(ws, many):
    many.shuffle(train_ratio=0.3)
    drawn = list(many.table["assigned"])
    many.save()
    seed = saved_attrs(ws, "m")["shuffle_seed"]
    assert seed >= 0
    many.shuffle(seed=int(seed))  # ratio recorded too: 0.3 again
    assert list(many.table["assigned"]) == drawn and drawn.count("train") == 3


def test_create_with_seed_is_reproducible(ws, images, tmp_path):
    images.folder(tmp_path / "in", 9)
    sets = [NamedSet("s", [Location(tmp_path / "in")])]
    one = ws.create_dataset("one", "classification", sets, seed=5, train_ratio=0.7)
    two = ws.create_dataset("two", "classification", sets, seed=5, train_ratio=0.7)
    assert list(one.table["assigned"]) == list(two.table["assigned"])
    assert list(one.table["assigned"]).count("train") == round(0.7 * 9)


def test_invalid_set_and_ratio(ds):
    with pytest.raises(AstrocyteError, match="set must be"):
        ds.assign_set(0, "test")
    with pytest.raises(AstrocyteError, match="train ratio"):
        ds.shuffle(1.5)


def test_relabel_save_reload(ws, ds):
    ds.relabel([0, "b2.png"], "B")
    ds.relabel(1, None)
    ds.save()
    again = ws.dataset("d")
    assert list(again.table["ground_truth"]) == ["B", "", "A", "B", "B", "B"]
    assert list(again.select(ground_truth="")) == [1]
    assert list(again.select(ground_truth="B")) == [0, 3, 4, 5]
    with pytest.raises(AstrocyteError, match="no category"):
        ds.relabel(0, "C")


def test_select_filters(ds):
    ds.assign_set([4], "validation")
    assert list(ds.select(set="validation")) == [4]
    assert list(ds.select(name_contains="b")) == [3, 4, 5]
    assert list(ds.select(ground_truth="A", name_contains="1")) == [1]
    assert list(ds.select(named_set="s")) == [0, 1, 2, 3, 4, 5]


def test_remove_keeps_sources_and_ids(ws, ds, labelled_tree, snapshot):
    before = snapshot(labelled_tree)
    pixels = ds.image("b0.png")
    ds.remove(["a1.png", 4])
    ds.save()
    again = ws.dataset("d")
    assert list(again.ids) == [0, 2, 3, 5]
    assert list(again.table["name"]) == ["a0.png", "a2.png", "b0.png", "b2.png"]
    np.testing.assert_array_equal(again.image("b0.png"), pixels)
    assert snapshot(labelled_tree) == before


def test_source_files_untouched_by_every_operation(ws, ds, labelled_tree, snapshot, tmp_path):
    before = snapshot(labelled_tree)
    ds.relabel(0, "B")
    ds.add_category("C")
    ds.rename_category("A", "AA")
    ds.delete_category("C")
    ds.remove(5)
    ds.description = "changed"
    ds.set_roi(np.zeros((24, 32), bool))
    ds.save()
    ws.export_dataset("d", tmp_path / "d.astrods")
    ws.delete_dataset("d")
    assert snapshot(labelled_tree) == before


def test_editing_does_not_copy_pixels(ws, ds, snapshot):
    pixels_dir = ws.path / "datasets/d/pixels"
    before = snapshot(pixels_dir)
    ds.relabel([0, 1], "B")
    ds.description = "relabelled"
    ds.assign_set(2, "validation")
    ds.rename_category("A", "alpha")
    ds.save()
    ds.remove(3)
    ds.save()
    assert snapshot(pixels_dir) == before
    assert len(list(pixels_dir.glob("*.zarr"))) == 1


def test_categories_add_rename_delete(ws, ds):
    ds.add_category("C")
    with pytest.raises(AstrocyteError, match="already exists"):
        ds.add_category("C")
    with pytest.raises(AstrocyteError, match="empty"):
        ds.add_category("  ")
    ds.relabel([0], "C")
    ds.rename_category("B", "Bee")
    with pytest.raises(AstrocyteError, match="already exists"):
        ds.rename_category("Bee", "A")
    ds.save()
    again = ws.dataset("d")
    assert again.categories == ["A", "Bee", "C"]
    assert list(again.table["ground_truth"]) == ["C", "A", "A", "Bee", "Bee", "Bee"]


def test_delete_category_migrates_or_unlabels(ws, ds):
    ds.add_category("C")
    ds.relabel([5], "C")
    ds.delete_category("A", migrate_to="C")  # later categories shift down; labels follow by name
    assert ds.categories == ["B", "C"]
    assert list(ds.table["ground_truth"]) == ["C", "C", "C", "B", "B", "C"]
    ds.delete_category("B")
    assert list(ds.table["ground_truth"]) == ["C", "C", "C", "", "", "C"]
    with pytest.raises(AstrocyteError, match="onto itself"):
        ds.delete_category("C", migrate_to="C")
    ds.save()
    again = ws.dataset("d")
    assert again.categories == ["C"]
    assert list(again.table["ground_truth"]) == ["C", "C", "C", "", "", "C"]


def test_description_and_dirty_flag(ws, ds):
    assert ws.dataset("d").description == "first"
    assert not ds.dirty
    ds.description = "second"
    assert ds.dirty
    ds.save()
    assert not ds.dirty and ws.dataset("d").description == "second"
    ds.relabel(0, "B")
    assert ds.dirty
    ds.reload()
    assert not ds.dirty and ds.table.loc[0, "ground_truth"] == "A"
    for edit in (lambda d: d.assign_set(0, "train"), lambda d: d.shuffle(seed=1), lambda d: d.add_category("Z"),
                 lambda d: d.remove(0), lambda d: d.set_roi(np.ones((24, 32), bool))):
        edit(ds)
        assert ds.dirty
        ds.reload()
        assert not ds.dirty


def test_reload_discards_every_kind_of_edit(ws, ds):
    before = ds.table.copy()
    ds.relabel([0, 1], "B")
    ds.remove(5)
    ds.add_category("C")
    ds.description = "nope"
    ds.set_roi(np.ones((24, 32), bool))
    ds.reload()
    pd.testing.assert_frame_equal(ds.table, before)
    assert ds.categories == ["A", "B"] and ds.description == "first" and ds.active_region() is None


def test_second_object_sees_changes_only_after_save(ws, ds):
    other = ws.dataset("d")
    ds.relabel(0, "B")
    ds.description = "edited"
    assert other.table.loc[0, "ground_truth"] == "A"
    assert ws.dataset("d").table.loc[0, "ground_truth"] == "A"
    ds.save()
    assert other.table.loc[0, "ground_truth"] == "A"  # its own copy until it reloads
    other.reload()
    assert other.table.loc[0, "ground_truth"] == "B" and other.description == "edited"
    assert ws.dataset("d").table.loc[0, "ground_truth"] == "B"


def test_to_csv(ds, tmp_path):
    path = ds.to_csv(tmp_path / "out.csv")
    frame = pd.read_csv(path, keep_default_na=False)
    for column in ("image_id", "name", "source", "ground_truth", "set", "assigned"):
        assert column in frame.columns
    assert list(frame["name"]) == list(ds.table["name"])
    assert list(frame["ground_truth"]) == ["A"] * 3 + ["B"] * 3
    assert list(frame["assigned"]) == list(ds.table["assigned"])


def test_add_images_appends_fitted_and_skips_known(ws, ds, images, tmp_path, labelled_tree):
    images.make(tmp_path / "more/C/c0.png", width=64, height=48, seed=20)
    report = ds.add_images([NamedSet("more", [Location(tmp_path / "more", use_folder_name=True)])])
    assert report.added == 1 and ds.categories == ["A", "B", "C"]
    assert ds.table.loc[6, "name"] == "c0.png" and ds.image(6).shape == (24, 32, 3)
    ds.save()
    assert len(ws.dataset("d")) == 7
    with pytest.raises(AstrocyteError, match="already in the dataset"):
        ds.add_images([NamedSet("again", [Location(labelled_tree)])])


# -- masks ------------------------------------------------------------------------------------------------


@pytest.fixture
def seg(ws, images, tmp_path):
    """Segmentation dataset p0..p2 with mask values 0 (bg), 3 and 7 -> categories "0", "3", "7"."""
    for i in range(3):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        mask = np.zeros((24, 32), np.uint8)
        mask[:8] = 3
        mask[16:, :8] = 7
        images.write(tmp_path / f"mask/p{i}.png", mask)
    return ws.create_dataset("seg", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")])


def expected_seg_mask() -> np.ndarray:
    mask = np.zeros((24, 32), np.uint8)
    mask[:8] = 1
    mask[16:, :8] = 2
    return mask


def test_segmentation_set_mask_round_trip(ws, seg):
    assert seg.table["has_mask"].all()
    new = np.zeros((24, 32), np.uint8)
    new[5:10, 5:10] = 2
    seg.set_mask("p1.png", new)
    np.testing.assert_array_equal(seg.mask("p1.png"), new)
    seg.save()
    again = ws.dataset("seg")
    np.testing.assert_array_equal(again.mask("p1.png"), new)
    np.testing.assert_array_equal(again.mask("p0.png"), expected_seg_mask())


def test_set_mask_validates(seg):
    with pytest.raises(AstrocyteError, match="shape"):
        seg.set_mask(0, np.zeros((10, 10), np.uint8))
    with pytest.raises(AstrocyteError, match="category indices"):
        seg.set_mask(0, np.full((24, 32), 3, np.uint8))


def test_set_mask_none_removes(ws, seg):
    seg.set_mask(0, None)
    assert seg.mask(0) is None
    seg.save()
    again = ws.dataset("seg")
    assert again.mask(0) is None and list(again.table["has_mask"]) == [False, True, True]


def test_segmentation_mask_with_new_category_survives_save(ws, seg):
    seg.add_category("scratch")
    mask = expected_seg_mask()
    mask[20:, 20:] = 3  # the new category
    seg.set_mask(0, mask)
    seg.save()
    np.testing.assert_array_equal(seg.mask(0), mask)
    again = ws.dataset("seg")
    assert again.categories == ["0", "3", "7", "scratch"]
    np.testing.assert_array_equal(again.mask(0), mask)
    np.testing.assert_array_equal(again.mask(1), expected_seg_mask())


def test_segmentation_delete_category_needs_migrate_and_remaps_pixels(ws, seg):
    with pytest.raises(AstrocyteError, match="migrate_to"):
        seg.delete_category("3")
    seg.delete_category("3", migrate_to="0")
    assert seg.categories == ["0", "7"]
    remapped = np.where(expected_seg_mask() == 2, 1, 0)
    np.testing.assert_array_equal(seg.mask("p0.png"), remapped)
    seg.save()
    again = ws.dataset("seg")
    assert again.categories == ["0", "7"]
    for name in ("p0.png", "p1.png", "p2.png"):
        np.testing.assert_array_equal(again.mask(name), remapped)


def test_segmentation_delete_category_remaps_pending_masks(ws, seg):
    pending = np.zeros((24, 32), np.uint8)
    pending[:4] = 2  # "7"
    pending[4:8] = 1  # "3"
    seg.set_mask(2, pending)
    seg.delete_category("3", migrate_to="7")
    expected = np.zeros((24, 32), np.uint8)
    expected[:8] = 1
    np.testing.assert_array_equal(seg.mask(2), expected)
    seg.save()
    np.testing.assert_array_equal(ws.dataset("seg").mask(2), expected)


def test_anomaly_set_mask_round_trip(ws, images, tmp_path):
    images.folder(tmp_path / "ok", 2)
    ds = ws.create_dataset("an", "anomaly", [NamedSet("s", [Location(tmp_path / "ok", category="Normal")])])
    defect = np.zeros((24, 32), bool)
    defect[3:9, 10:20] = True
    ds.set_mask(1, defect)
    ds.relabel(1, "Anomaly")
    ds.save()
    again = ws.dataset("an")
    assert again.mask(0) is None
    out = again.mask(1)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, defect)
    assert list(again.table["ground_truth"]) == ["Normal", "Anomaly"]


def test_anomaly_masks_from_a_mask_folder(ws, images, tmp_path):
    for i in range(2):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        mask = np.zeros((24, 32), np.uint8)
        mask[:i + 1] = 255
        images.write(tmp_path / f"mask/p{i}.png", mask)
    sets = [NamedSet("s", [Location(tmp_path / "img", category="Anomaly")], masks=Location(tmp_path / "mask"))]
    ds = ws.create_dataset("an", "anomaly", sets)
    assert ds.mask("p1.png").dtype == bool and ds.mask("p1.png").sum() == 2 * 32


# -- ROI ----------------------------------------------------------------------------------------------------


def test_roi_set_invert_clear_persisted(ws, ds):
    assert ds.active_region() is None and ds.roi_bbox() is None
    masked = np.ones((24, 32), bool)
    masked[4:10, 6:20] = False  # pixels to use
    ds.set_roi(masked)
    assert ds.roi_bbox() == (6, 4, 14, 6)
    ds.save()
    again = ws.dataset("d")
    np.testing.assert_array_equal(again.active_region(), ~masked)
    assert again.roi_bbox() == (6, 4, 14, 6)
    again.invert_roi()
    assert again.roi_bbox() == (0, 0, 32, 24)
    again.save()
    inverted = ws.dataset("d")
    np.testing.assert_array_equal(inverted.active_region(), masked)
    inverted.clear_roi()
    inverted.save()
    cleared = ws.dataset("d")
    assert cleared.active_region() is None and cleared.roi_bbox() is None


def test_roi_with_invert_flag(ws, ds):
    region = np.zeros((24, 32), bool)
    region[0:2, 30:32] = True
    ds.set_roi(region, invert=True)
    ds.save()
    assert ws.dataset("d").roi_bbox() == (30, 0, 2, 2)


def test_roi_errors(ds):
    with pytest.raises(AstrocyteError, match="no ROI"):
        ds.invert_roi()
    with pytest.raises(AstrocyteError, match="shape"):
        ds.set_roi(np.zeros((10, 10), bool))
    ds.set_roi(np.ones((24, 32), bool))
    with pytest.raises(AstrocyteError, match="every pixel"):
        ds.roi_bbox()


def test_info_and_repr(ds):
    info = ds.info()
    assert (info.name, info.module, info.dimensions, info.images) == ("d", "classification", "32 x 24 x 3", 6)
    assert info.categories == ("A", "B") and info.description == "first" and info.updated
    assert "unsaved" not in repr(ds)
    ds.relabel(0, "B")
    assert "unsaved" in repr(ds)


def test_remove_all_then_add_again(ws, ds, labelled_tree):
    ds.remove(list(ds.ids))
    ds.save()
    empty = ws.dataset("d")
    assert len(empty) == 0 and ws.datasets()[0].images == 0
    report = empty.add_images([NamedSet("again", [Location(labelled_tree, use_folder_name=True)])])
    assert report.added == 6
    empty.save()
    again = ws.dataset("d")
    assert len(again) == 6 and list(again.ids) == list(range(6, 12))
    assert list(again.table["ground_truth"]) == ["A"] * 3 + ["B"] * 3
    assert set(again.table["named_set"]) == {"again"}


def test_stale_session_cannot_silently_undo_a_newer_save(ws, labelled_tree) -> None:
    from astrocyte_lab.data.sources import Location, NamedSet
    from astrocyte_lab.errors import ConcurrentEditError

    ws.create_dataset("shared", "classification", [NamedSet("s", [Location(labelled_tree, use_folder_name=True)])])
    first, second = ws.dataset("shared"), ws.dataset("shared")
    first.description = "first"
    first.save()
    second.description = "second"
    with pytest.raises(ConcurrentEditError, match="reload"):
        second.save()
    assert ws.dataset("shared").description == "first"
    second.save(force=True)
    assert ws.dataset("shared").description == "second"
    first.reload()
    first.description = "third"
    first.save()
    assert ws.dataset("shared").description == "third"
