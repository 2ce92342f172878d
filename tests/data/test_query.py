"""The image list's query: filters, tri-state pseudo filter, overlapping annotations, sort and pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrocyte_lab.data.annotations import Box
from astrocyte_lab.data.query import ImageQuery, overlapping_pairs
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError


@pytest.fixture
def parts(ws: Workspace, images, tmp_path: Path):
    images.folder("src/good", 4, prefix="good", width=40, height=30)
    images.folder("src/bad", 3, prefix="bad", width=40, height=30, seed=20)
    dataset = ws.create_dataset("parts", "detection", [NamedSet("all", [Location(tmp_path / "src")])], seed=0)
    dataset.add_category("nut")
    dataset.set_objects("good0.png", [Box("nut", 1, 1, 10, 10), Box("nut", 1, 1, 10, 10.5)])  # a duplicate
    dataset.set_objects("good1.png", [Box("nut", 1, 1, 10, 10), Box("nut", 20, 5, 30, 15, pseudo=True, score=0.8)])
    dataset.set_objects("bad0.png", [Box("nut", 2, 2, 8, 8, pseudo=True, score=0.6)])
    dataset.save()
    return dataset


def test_filters_combine_and_count(parts) -> None:
    query = ImageQuery(parts, page_size=2)
    assert query.summary() == "Number of images: 7/7" and query.pages == 4
    query.set_filter(name_contains="GOOD")
    assert query.count == 4
    query.set_filter(pseudo="only")
    assert sorted(query.page(0)["name"]) == ["good1.png"]
    query.set_filter(name_contains="", pseudo="exclude")
    assert query.count == 5
    query.clear_filter()
    query.set_filter(overlapping=True)
    assert list(query.page(0)["name"]) == ["good0.png"]
    query.clear_filter()
    query.set_filter(ids=[int(parts.ids[1]), int(parts.ids[2])])
    assert query.count == 2


def test_sort_pages_and_refresh(parts) -> None:
    query = ImageQuery(parts, page_size=3)
    query.sort("n_ground_truth", ascending=False)
    assert query.page(0)["n_ground_truth"].tolist()[0] == 2
    assert len(query.page(99)) == 1  # clamped to the last page
    parts.remove("bad0.png")
    query.refresh()
    assert query.total == 6
    with pytest.raises(AstrocyteError, match="cannot sort by"):
        query.sort("nope")
    with pytest.raises(AstrocyteError, match="unknown image filter"):
        query.set_filter(colour="red")
    with pytest.raises(AstrocyteError, match="pseudo must be"):
        query.set_filter(pseudo="maybe")


def test_overlapping_pairs_need_the_same_category() -> None:
    a, b = Box("nut", 0, 0, 10, 10), Box("nut", 0, 0, 10, 10.4)
    assert overlapping_pairs([a, b]) == [(0, 1)]
    assert overlapping_pairs([a, Box("bolt", 0, 0, 10, 10)]) == []
    assert overlapping_pairs([a, Box("nut", 5, 5, 15, 15)]) == []
