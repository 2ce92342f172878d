"""A tiny detection dataset: noisy grey images with bright squares and dark bars (boxes or rotated boxes)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.data.annotations import Box, RotatedBox
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace

SIZE = (288, 224)  # width, height of the generated images


def make_dataset(root: Path, name: str = "shapes", count: int = 12, rotated: bool = False, labelled: int | None = None,
                 size: tuple[int, int] = SIZE, seed: int = 0) -> tuple[Workspace, str]:
    """``count`` images; the first ``labelled`` (default all) get their objects as ground truth."""
    rng = np.random.default_rng(seed)
    folder = root / f"{name}-images"
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    truth = []
    for i in range(count):
        image = rng.integers(90, 130, (height, width, 3), dtype=np.uint8)
        objects = []
        x, y = (int(v) for v in rng.integers(10, (width // 2 - 40, height - 50)))
        image[y:y + 36, x:x + 36] = (240, 230, 90)
        objects.append(Box("square", x, y, x + 36, y + 36))
        cx, cy = int(rng.integers(width // 2 + 40, width - 40)), int(rng.integers(40, height - 40))
        angle = float(rng.uniform(0, 180)) if rotated else 0.0
        bar = RotatedBox("bar", cx, cy, 60, 14, angle)
        cv2.fillPoly(image, [np.round(bar.corners()).astype(np.int32)], (20, 20, 160))
        objects.append(bar if rotated else Box("bar", cx - 30, cy - 7, cx + 30, cy + 7))
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), image[:, :, ::-1])
        truth.append(objects)
    ws = Workspace(root / "ws")
    dataset = ws.create_dataset(name, "detection", [NamedSet("shapes", [Location(folder)])], seed=0)
    dataset.add_category("square")
    dataset.add_category("bar")
    names = dataset.table["name"].tolist()
    for image_id, image_name in zip(dataset.ids.tolist(), names, strict=True):
        index = int(Path(image_name).stem.split("_")[1])
        if labelled is None or index < labelled:
            dataset.set_objects(int(image_id), truth[index])
    dataset.save()
    return ws, name


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    return make_dataset(tmp_path_factory.mktemp("detection"))
