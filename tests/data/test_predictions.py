"""Test results written back to a dataset: predicted objects and predicted masks, kept apart from labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, RotatedBox
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError


@pytest.fixture
def detection(ws: Workspace, images, tmp_path: Path):
    images.folder("parts", 3, width=64, height=48)
    dataset = ws.create_dataset("det", "detection", [NamedSet("all", [Location(tmp_path / "parts")])])
    for name in ("nut", "screw"):
        dataset.add_category(name)
    dataset.set_objects("img0.png", [Box("nut", 1, 1, 10, 10)])
    dataset.save()
    return dataset


@pytest.fixture
def segmentation(ws: Workspace, images, tmp_path: Path):
    for i in range(3):
        images.make(f"seg/img{i}.png", width=32, height=24, seed=i)
    dataset = ws.create_dataset("seg", "segmentation", [NamedSet("all", [Location(tmp_path / "seg")])])
    dataset.add_category("background")
    dataset.add_category("scratch")
    dataset.add_category("spot")
    dataset.save()
    return dataset


def test_predicted_objects_are_saved_apart_from_ground_truth(ws: Workspace, detection) -> None:
    predicted = [Box("nut", 2, 2, 11, 11, score=0.9), RotatedBox("screw", 30, 20, 10, 4, 15.0, score=0.4)]
    detection.set_predicted_objects("img0.png", predicted)
    detection.set_predicted_objects("img1.png", [Box("screw", 5, 5, 90, 90, score=0.6)])  # clipped to 64 x 48
    detection.save()
    again = ws.dataset("det")
    assert again.objects("img0.png") == [Box("nut", 1, 1, 10, 10)]
    found = again.predicted_objects("img0.png")
    assert [a.category for a in found] == ["nut", "screw"]
    assert found[0].score == pytest.approx(0.9) and found[1].angle == pytest.approx(15.0)
    assert again.predicted_objects("img1.png")[0].bounds() == (5, 5, 64, 48)
    table = again.table
    assert table["n_ground_truth"].tolist() == [1, 0, 0]
    assert table["n_prediction"].tolist() == [2, 1, 0]


def test_predicted_objects_follow_category_edits_and_removal(ws: Workspace, detection) -> None:
    detection.set_predicted_objects("img0.png", [Box("nut", 2, 2, 11, 11, score=0.9)])
    detection.set_predicted_objects("img2.png", [Box("screw", 2, 2, 11, 11, score=0.5)])
    detection.rename_category("nut", "hexnut")
    detection.delete_category("screw")
    detection.remove("img1.png")
    detection.save()
    again = ws.dataset("det")
    assert again.predicted_objects("img0.png")[0].category == "hexnut"
    assert again.predicted_objects("img2.png") == []
    with pytest.raises(AstrocyteError, match="no category 'bolt'"):
        again.set_predicted_objects("img0.png", [Box("bolt", 0, 0, 5, 5)])


def test_clear_predictions_forgets_every_test_result(ws: Workspace, detection) -> None:
    detection.set_predicted_objects("img0.png", [Box("nut", 2, 2, 11, 11, score=0.9)])
    detection.set_predictions("img1.png", ["nut"], [0.8])
    detection.save()
    detection.clear_predictions()
    detection.save()
    again = ws.dataset("det")
    assert again.predicted_objects("img0.png") == [] and again.objects("img0.png")
    assert (again.table["prediction"] == "").all() and again.table["score"].isna().all()


def test_predicted_masks_round_trip_and_survive_garbage_collection(ws: Workspace, segmentation) -> None:
    predicted = np.zeros((24, 32), np.uint8)
    predicted[5:10, 4:20] = segmentation.categories.index("scratch")
    segmentation.set_predicted_mask("img1.png", predicted)
    assert segmentation.table["has_predicted_mask"].tolist() == [False, True, False]
    segmentation.save()
    for _ in range(3):  # later versions must keep the predicted mask's batch alive
        segmentation.relabel("img0.png", None)
        segmentation.save()
    again = ws.dataset("seg")
    assert np.array_equal(again.predicted_mask("img1.png"), predicted)
    assert again.predicted_mask("img0.png") is None and again.mask("img1.png") is None
    again.set_predicted_mask("img1.png", None)
    again.save()
    assert ws.dataset("seg").predicted_mask("img1.png") is None


def test_predicted_masks_follow_category_deletion(ws: Workspace, segmentation) -> None:
    names = segmentation.categories
    predicted = np.full((24, 32), names.index("background"), np.uint8)
    predicted[:4] = names.index("spot")
    predicted[4:8] = names.index("scratch")
    segmentation.set_predicted_mask("img0.png", predicted)
    segmentation.save()
    segmentation.delete_category("scratch", migrate_to="background")
    segmentation.save()
    again = ws.dataset("seg")
    mask = again.predicted_mask("img0.png")
    assert again.categories == ["background", "spot"]
    assert (mask[:4] == 1).all() and (mask[4:] == 0).all()


def test_predicted_mask_shape_is_checked(segmentation) -> None:
    with pytest.raises(AstrocyteError, match="differs from the image size"):
        segmentation.set_predicted_mask("img0.png", np.zeros((5, 5), np.uint8))
