"""Merging datasets: equal geometry only, categories remapped by name, pixels shared not re-encoded."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.data.sources import Location, NamedSet, segmentation_set
from astrocyte_lab.errors import AstrocyteError, IncompatibleDatasetsError


def classification(ws, images, tmp_path, name, folders, **size):
    """A dataset whose images sit in one sub-folder per category."""
    for category, count in folders.items():
        images.folder(tmp_path / name / category, count, prefix=f"{name}_{category}_", seed=sum(map(ord, name)), **size)
    return ws.create_dataset(name, "classification",
                             [NamedSet(name, [Location(tmp_path / name, use_folder_name=True)])])


def test_merge_remaps_categories_by_name(ws, images, tmp_path, snapshot):
    classification(ws, images, tmp_path, "one", {"A": 2, "B": 1})
    two = classification(ws, images, tmp_path, "two", {"B": 1, "C": 2})
    two_pixels = {n: two.image(n) for n in two.table["name"]}
    two_before = snapshot(ws.path / "datasets/two")
    merged = ws.merge_datasets("one", ["two"])
    assert not merged.dirty
    again = ws.dataset("one")
    assert again.categories == ["A", "B", "C"]
    labels = again.table.set_index("name")["ground_truth"].to_dict()
    assert labels == {"one_A_0.png": "A", "one_A_1.png": "A", "one_B_0.png": "B",
                      "two_B_0.png": "B", "two_C_0.png": "C", "two_C_1.png": "C"}
    assert list(again.ids) == list(range(6))
    for name, pixels in two_pixels.items():
        np.testing.assert_array_equal(again.image(name), pixels)
    assert snapshot(ws.path / "datasets/two") == two_before  # the source dataset stays as it is
    assert len(ws.dataset("two")) == 3


def test_merged_pixels_survive_deleting_the_source(ws, images, tmp_path):
    classification(ws, images, tmp_path, "one", {"A": 1})
    two = classification(ws, images, tmp_path, "two", {"A": 2})
    expected = two.image(1)
    ws.merge_datasets("one", ["two"])
    ws.delete_dataset("two")
    np.testing.assert_array_equal(ws.dataset("one").image(2), expected)


def test_merge_names_stay_unique(ws, images, tmp_path):
    images.folder(tmp_path / "x", 2)
    images.folder(tmp_path / "y", 2)
    ws.create_dataset("one", "classification", [NamedSet("s", [Location(tmp_path / "x")])])
    ws.create_dataset("two", "classification", [NamedSet("s", [Location(tmp_path / "y")])])
    names = list(ws.merge_datasets("one", ["two"]).table["name"])
    assert len(names) == len(set(names)) == 4
    assert names[:2] == ["img0.png", "img1.png"]


def test_merge_different_size_is_incompatible(ws, images, tmp_path):
    classification(ws, images, tmp_path, "one", {"A": 2})
    classification(ws, images, tmp_path, "big", {"A": 2}, width=40, height=30)
    with pytest.raises(IncompatibleDatasetsError, match="equal image size"):
        ws.merge_datasets("one", ["big"])
    assert len(ws.dataset("one")) == 2


def test_merge_different_channels_or_module_is_incompatible(ws, images, tmp_path):
    classification(ws, images, tmp_path, "one", {"A": 2})
    classification(ws, images, tmp_path, "grey", {"A": 2}, channels=1)
    images.folder(tmp_path / "an", 2)
    ws.create_dataset("an", "anomaly", [NamedSet("s", [Location(tmp_path / "an", category="Normal")])])
    with pytest.raises(IncompatibleDatasetsError):
        ws.merge_datasets("one", ["grey"])
    with pytest.raises(IncompatibleDatasetsError, match="anomaly"):
        ws.merge_datasets("one", ["an"])


def test_merge_refuses_unsaved_source_and_self(ws, images, tmp_path):
    one = classification(ws, images, tmp_path, "one", {"A": 2})
    two = classification(ws, images, tmp_path, "two", {"A": 2})
    two.relabel(0, None)
    with pytest.raises(IncompatibleDatasetsError, match="unsaved"):
        one.absorb(two)
    with pytest.raises(AstrocyteError, match="itself"):
        ws.merge_datasets("one", ["one"])


def _seg(ws, images, tmp_path, name, value, rename=None):
    for i in range(2):
        images.make(tmp_path / name / f"img/{name}{i}.png", seed=i)
        mask = np.zeros((24, 32), np.uint8)
        mask[: 5 + i] = value
        images.write(tmp_path / name / f"mask/{name}{i}.png", mask)
    ds = ws.create_dataset(name, "segmentation", [segmentation_set("s", tmp_path / name / "img",
                                                                   tmp_path / name / "mask")])
    if rename:
        ds.rename_category(str(value), rename)
        ds.save()
    return ds


def test_segmentation_merge_keeps_masks(ws, images, tmp_path):
    _seg(ws, images, tmp_path, "one", 3, rename="crack")
    two = _seg(ws, images, tmp_path, "two", 9)
    mask = two.mask("two1.png")
    merged = ws.merge_datasets("one", ["two"])
    assert merged.categories == ["0", "crack", "9"]
    out = ws.dataset("one").mask("two1.png")
    np.testing.assert_array_equal(out, np.where(mask == 1, 2, 0))
    np.testing.assert_array_equal(ws.dataset("one").mask("one0.png")[:5], np.ones((5, 32)))


def test_segmentation_merge_refuses_conflicting_pixel_values(ws, images, tmp_path):
    _seg(ws, images, tmp_path, "one", 3, rename="crack")
    _seg(ws, images, tmp_path, "two", 3, rename="dent")
    with pytest.raises(IncompatibleDatasetsError, match="pixel value 3"):
        ws.merge_datasets("one", ["two"])
    assert len(ws.dataset("one")) == 2
