"""Object annotations stored with the dataset: database sets, edits, save/reload, merge, masks <-> polygons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, ImageAnnotations, ParsedDatabase, Polygon, RotatedBox
from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.objects import mask_from_polygons, polygons_from_mask
from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError, LimitError


class ListDatabase:
    """An in-memory database: what a format reader would return."""

    def __init__(self, images: list[ImageAnnotations], categories: list[str]) -> None:
        self.parsed = ParsedDatabase(images, categories)

    def read(self) -> ParsedDatabase:
        return self.parsed

    def to_dict(self) -> dict:
        return {"format": "memory"}


@pytest.fixture
def detection(ws: Workspace, images, tmp_path: Path):
    paths = images.folder("parts", 4, width=200, height=100)
    db = ListDatabase([
        ImageAnnotations(paths[0], [Box("nut", 10, 10, 50, 40), RotatedBox("screw", 100, 50, 60, 20, 30.0)]),
        ImageAnnotations(paths[1], [Box("washer", 150, 60, 230, 120)]),  # sticks out: clipped
        ImageAnnotations(paths[2], []),
    ], ["nut", "screw", "washer"])
    sets = [DatabaseSet("labelled", db), NamedSet("all", [Location(tmp_path / "parts")])]
    return ws.create_dataset("det", "detection", sets, options=GenerationOptions(max_size=(100, 100)))


def test_database_objects_follow_the_resize(detection) -> None:
    assert len(detection) == 4 and detection.categories == ["nut", "screw", "washer"]
    first = detection.objects("img0.png")
    assert first[0] == Box("nut", 5, 5, 25, 20)
    assert isinstance(first[1], RotatedBox) and first[1].cx == pytest.approx(50) and first[1].angle == pytest.approx(30)
    assert detection.objects("img1.png") == [Box("washer", 75, 30, 100, 50)]
    table = detection.table
    assert table["n_ground_truth"].tolist() == [2, 1, 0, 0]
    assert table.loc[detection.select(named_set="all")[0], "name"] == "img3.png"  # listed twice: database wins


def test_objects_survive_save_reload_and_category_edits(ws: Workspace, detection) -> None:
    detection.add_object("img2.png", Box("nut", 1, 1, 5, 5, pseudo=True, score=0.7))
    detection.rename_category("nut", "hexnut")
    detection.save()
    again = ws.dataset("det")
    assert again.objects("img2.png") == [Box("hexnut", 1, 1, 5, 5, pseudo=True, score=pytest.approx(0.7))]
    assert again.objects("img2.png", pseudo=False) == []
    assert again.objects("img0.png")[0].category == "hexnut"
    again.delete_category("screw")  # no migration: those objects go
    again.delete_category("washer", migrate_to="hexnut")
    again.save()
    final = ws.dataset("det")
    assert [a.category for a in final.objects("img0.png")] == ["hexnut"]
    assert final.objects("img1.png") == [Box("hexnut", 75, 30, 100, 50)]


def test_set_objects_validates(detection) -> None:
    with pytest.raises(AstrocyteError, match="no category 'bolt'"):
        detection.set_objects("img0.png", [Box("bolt", 0, 0, 5, 5)])
    with pytest.raises(AstrocyteError, match="outside"):
        detection.set_objects("img0.png", [Box("nut", 500, 500, 600, 600)])
    detection.reload()
    assert len(detection.objects("img0.png")) == 2


def test_remove_and_merge_carry_objects(ws: Workspace, detection) -> None:
    detection.remove("img1.png")
    detection.save()
    ws.import_dataset(ws.export_dataset("det", ws.path / "det.astrods"), "det2")
    merged = ws.merge_datasets("det", ["det2"])
    assert len(merged) == 6
    counts = merged.table["n_ground_truth"].tolist()
    assert counts == [2, 0, 0, 2, 0, 0]
    assert merged.objects(int(merged.ids[3])) == merged.objects(int(merged.ids[0]))


def test_segmentation_polygons_become_masks(ws: Workspace, images) -> None:
    path = images.make("seg/a.png", width=64, height=48)
    db = ListDatabase([ImageAnnotations(path, [Polygon("spot", ((10, 10), (30, 10), (30, 20), (10, 20)))])], ["spot"])
    dataset = ws.create_dataset("seg", "segmentation", [DatabaseSet("db", db)])
    assert dataset.categories == ["background", "spot"]
    mask = ws.dataset("seg").mask("a.png")
    assert mask is not None and set(np.unique(mask).tolist()) == {0, 1}
    assert 200 <= int((mask == 1).sum()) <= 21 * 11
    polygons = dataset.mask_polygons("a.png")
    assert len(polygons) == 1 and polygons[0].category == "spot"


def test_mask_polygon_round_trip_is_exact() -> None:
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:25] = 1
    mask[20:35, 30:45] = 2
    mask[22:26, 33:37] = 0  # a hole is filled by the outer contour; keep shapes simple here
    mask[22:26, 33:37] = 2
    categories = ["background", "scratch", "spot"]
    polygons = polygons_from_mask(mask, categories)
    assert sorted(p.category for p in polygons) == ["scratch", "spot"]
    assert np.array_equal(mask_from_polygons(polygons, (50, 40), categories), mask)


def test_polygon_mask_size_is_checked_before_allocating(monkeypatch):
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "1999")
    polygons = [Polygon("a", ((1, 1), (20, 1), (10, 30)))]
    with pytest.raises(LimitError, match=r"segmentation mask.*50 x 40 \(pixels\) is 2,000"):
        mask_from_polygons(polygons, (50, 40), ["bg", "a"])
    with pytest.raises(LimitError, match="not positive"):
        mask_from_polygons(polygons, (0, 40), ["bg", "a"])
