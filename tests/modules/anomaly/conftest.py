"""A tiny anomaly dataset: grey noise textures (Normal) and the same with a bright or dark square (Anomaly)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab import Workspace
from astrocyte_lab.data.sources import Location, NamedSet

SIZE = 64


def texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    coarse = rng.normal(128, 12, (size // 8, size // 8)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 4, (size, size)), 0, 255).astype(np.uint8)


def write_images(folder: Path, normal: int = 22, anomalies: int = 8, size: int = SIZE, seed: int = 0) -> Path:
    """``good/``, ``bad/`` and ``masks/`` (0/255) under ``folder``."""
    rng = np.random.default_rng(seed)
    for name in ("good", "bad", "masks"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(normal):
        cv2.imwrite(str(folder / "good" / f"good_{i:02d}.png"), texture(rng, size))
    for i in range(anomalies):
        image = texture(rng, size)
        mask = np.zeros((size, size), np.uint8)
        side = int(rng.integers(size // 8, size // 5))
        x, y = (int(v) for v in rng.integers(2, size - side - 2, 2))
        image[y:y + side, x:x + side] = 250 if i % 2 else 5
        mask[y:y + side, x:x + side] = 255
        cv2.imwrite(str(folder / "bad" / f"bad_{i:02d}.png"), image)
        cv2.imwrite(str(folder / "masks" / f"bad_{i:02d}.png"), mask)
    return folder


def make_dataset(ws: Workspace, source: Path, name: str = "tiles"):
    dataset = ws.create_dataset(name, "anomaly", [
        NamedSet("good", [Location(source / "good", category="Normal")]),
        NamedSet("bad", [Location(source / "bad", category="Anomaly")], masks=Location(source / "masks"))], seed=0)
    dataset.assign_set(dataset.select(ground_truth="Anomaly"), "validation")
    dataset.save()
    return dataset


@pytest.fixture(scope="session")
def tiles_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("anomaly-images"))


@pytest.fixture
def tiles(tmp_path: Path, tiles_source: Path) -> tuple[Workspace, str]:
    ws = Workspace(tmp_path / "ws")
    make_dataset(ws, tiles_source)
    return ws, "tiles"


def fit_model(folder: Path, source: Path, name: str = "pc", **options) -> tuple[Workspace, str]:
    """A workspace with the ``tiles`` dataset and one model fitted on it (random init)."""
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.trainer import train

    ws = Workspace(folder)
    make_dataset(ws, source)
    train(ws, "tiles", name, AnomalyConfig(seed=0, pretrained=False, **options))
    return ws, name


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory, tiles_source: Path) -> tuple[Workspace, str]:
    """One PatchCore model (random init) shared by the tests that only read it."""
    return fit_model(tmp_path_factory.mktemp("anomaly-ws"), tiles_source)
