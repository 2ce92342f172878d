"""A tiny segmentation dataset: grey textures with bright squares (class 1) and dark discs (class 2)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab import Workspace, segmentation_set


@pytest.fixture
def blobs(tmp_path: Path) -> tuple[Workspace, str]:
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i in range(12):
        image = rng.integers(90, 140, (64, 64), dtype=np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        x, y = (int(v) for v in rng.integers(4, 40, 2))
        image[y:y + 14, x:x + 14], mask[y:y + 14, x:x + 14] = 240, 1
        cx, cy = (int(v) for v in rng.integers(10, 54, 2))
        cv2.circle(image, (cx, cy), 6, 10, -1)
        cv2.circle(mask, (cx, cy), 6, 2, -1)
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), image)
        cv2.imwrite(str(tmp_path / "msk" / f"{i}.png"), mask)
    ws = Workspace(tmp_path / "ws")
    dataset = ws.create_dataset("blobs", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "msk")],
                                seed=0)
    for value, name in (("0", "background"), ("1", "square"), ("2", "disc")):
        dataset.rename_category(value, name)
    dataset.save()
    return ws, "blobs"
