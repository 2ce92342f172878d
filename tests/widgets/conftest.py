"""Small workspaces for the panels: a classification dataset of coloured discs, a segmentation one of blobs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace, segmentation_set


def write_discs(root: Path, per_class: int = 8, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in (("red", (40, 40, 220)), ("blue", (220, 60, 40))):
        folder = root / "discs" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            cv2.circle(image, tuple(int(v) for v in rng.integers(10, size - 10, 2)), 7, colour, -1)
            cv2.imwrite(str(folder / f"{name}_{i}.png"), image)
    return root / "discs"


@pytest.fixture
def discs(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    folder = write_discs(tmp_path)
    ws.create_dataset("discs", "classification", [NamedSet("s", [Location(folder, use_folder_name=True)])], seed=0)
    return ws


@pytest.fixture
def blobs(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(1)
    (tmp_path / "blobs" / "images").mkdir(parents=True)
    (tmp_path / "blobs" / "masks").mkdir(parents=True)
    for i in range(6):
        image = rng.integers(90, 140, (48, 48), dtype=np.uint8)
        mask = np.zeros((48, 48), np.uint8)
        x, y = (int(v) for v in rng.integers(8, 32, 2))
        cv2.rectangle(image, (x, y), (x + 10, y + 10), 230, -1)
        cv2.rectangle(mask, (x, y), (x + 10, y + 10), 1, -1)
        cv2.imwrite(str(tmp_path / "blobs" / "images" / f"b{i}.png"), image)
        cv2.imwrite(str(tmp_path / "blobs" / "masks" / f"b{i}.png"), mask)
    dataset = ws.create_dataset("blobs", "segmentation", [segmentation_set(
        "s", tmp_path / "blobs" / "images", tmp_path / "blobs" / "masks")], seed=0)
    dataset.rename_category("0", "background")
    dataset.rename_category("1", "square")
    dataset.save()
    return ws
