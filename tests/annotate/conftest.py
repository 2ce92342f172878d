"""Tiny datasets of every module for the annotation editor and canvas tests (64 x 48 RGB images)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, ImageAnnotations, ParsedDatabase, RotatedBox
from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet, segmentation_set
from astrocyte_lab.data.workspace import Workspace

W, H = 64, 48


class ListDatabase:
    """An in-memory annotation database: what a format reader would return."""

    def __init__(self, images: list[ImageAnnotations], categories: list[str]) -> None:
        self.parsed = ParsedDatabase(images, categories)

    def read(self) -> ParsedDatabase:
        return self.parsed

    def to_dict(self) -> dict:
        return {"format": "memory"}


def write_image(path: Path, seed: int, width: int = W, height: int = H, channels: int = 3,
                dtype: type = np.uint8) -> Path:
    rng = np.random.default_rng(seed)
    top = int(np.iinfo(dtype).max)
    pixels = rng.integers(0, top + 1, size=(height, width, channels)).astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", pixels[:, :, 0] if channels == 1 else pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def make_detection(ws: Workspace, root: Path, count: int = 3) -> object:
    """Images d0..d{n-1}; d0 holds a nut box and a screw rotated box; categories nut, screw, washer."""
    paths = [write_image(root / "det" / f"d{i}.png", i) for i in range(count)]
    db = ListDatabase([ImageAnnotations(paths[0], [Box("nut", 4, 4, 20, 16),
                                                   RotatedBox("screw", 40, 30, 16, 8, 30.0)])]
                      + [ImageAnnotations(p, []) for p in paths[1:]], ["nut", "screw", "washer"])
    ds = ws.create_dataset("det", "detection", [DatabaseSet("labelled", db)])
    ds.add_category("washer")
    ds.save()
    return ds


def make_segmentation(ws: Workspace, root: Path, count: int = 2) -> object:
    """Images s0..; masks with values 0 (background) and 5 (top-left block) -> categories "0", "5"."""
    for i in range(count):
        write_image(root / "seg" / "img" / f"s{i}.png", 10 + i)
        mask = np.zeros((H, W), np.uint8)
        mask[0:10, 0:10] = 5
        (root / "seg" / "mask").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "seg" / "mask" / f"s{i}.png"), mask)
    ds = ws.create_dataset("seg", "segmentation", [segmentation_set("s", root / "seg" / "img", root / "seg" / "mask")])
    ds.rename_category("0", "background")
    ds.rename_category("5", "crack")
    ds.add_category("scratch")
    ds.save()
    return ds


def make_anomaly(ws: Workspace, root: Path, count: int = 2) -> object:
    for i in range(count):
        write_image(root / "an" / f"a{i}.png", 20 + i)
    return ws.create_dataset("an", "anomaly", [NamedSet("s", [Location(root / "an", category="Normal")])])


def make_classification(ws: Workspace, root: Path, channels: int = 1, dtype: type = np.uint16) -> object:
    for i in range(2):
        write_image(root / "cls" / "ok" / f"c{i}.png", 30 + i, channels=channels, dtype=dtype)
    return ws.create_dataset("cls", "classification",
                             [NamedSet("s", [Location(root / "cls", include_subfolders=True, use_folder_name=True)])])


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace with a dataset of every module, built once; tests get a copy (creation is slow)."""
    root = tmp_path_factory.mktemp("annotate-template")
    ws = Workspace(root / "ws")
    make_detection(ws, root)
    make_segmentation(ws, root)
    make_anomaly(ws, root)
    make_classification(ws, root)
    return root / "ws"


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture
def detection(ws: Workspace):
    return ws.dataset("det")


@pytest.fixture
def segmentation(ws: Workspace):
    return ws.dataset("seg")


@pytest.fixture
def anomaly(ws: Workspace):
    return ws.dataset("an")


@pytest.fixture
def classification(ws: Workspace):
    return ws.dataset("cls")
