"""A tiny two-colour classification dataset (learnable in a couple of epochs from random init)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace


def write_shapes(root: Path, per_class: int = 12, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in (("red", (40, 40, 220)), ("blue", (220, 60, 40))):
        folder = root / "shapes" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            centre = tuple(int(v) for v in rng.integers(10, size - 10, 2))
            cv2.circle(image, centre, 7, colour, -1)
            cv2.imwrite(str(folder / f"{name}_{i}.png"), image)
    return root / "shapes"


@pytest.fixture
def shapes(tmp_path: Path) -> tuple[Workspace, str]:
    ws = Workspace(tmp_path / "ws")
    folder = write_shapes(tmp_path)
    ws.create_dataset("shapes", "classification", [NamedSet("s", [Location(folder, use_folder_name=True)])], seed=0)
    return ws, "shapes"
