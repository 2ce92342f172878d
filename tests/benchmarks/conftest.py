"""A small stand-in for ``../shared/datasets`` made from the generated ``metal`` sample: the same folder layouts as
magnetic_tile (``MT_<kind>/Imgs``, JPEG images with PNG masks beside them) and kolektorsdd (``images/<split>``,
YOLO polygon labels, tall non-square images), so the suite's readers, splits and size policy all run in CI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.samples import generate


def _kind(path: Path) -> str:
    """``scratch_003.png`` -> ``Scratch``."""
    return path.stem.split("_")[0].capitalize()


def write_magnetic_tile(sample: Path, root: Path) -> None:
    for image in sorted((sample / "good").glob("*.png")):
        folder = root / "MT_Free" / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{image.stem}.jpg"), cv2.imread(str(image), cv2.IMREAD_GRAYSCALE))
    for image in sorted((sample / "bad").glob("*.png")):
        folder = root / f"MT_{_kind(image)}" / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{image.stem}.jpg"), cv2.imread(str(image), cv2.IMREAD_GRAYSCALE))
        cv2.imwrite(str(folder / f"{image.stem}.png"), cv2.imread(str(sample / "masks" / image.name), 0))


def polygons(mask: np.ndarray) -> str:
    """YOLO segmentation lines (class 0, corners normalised) of a mask's outer contours."""
    height, width = mask.shape
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lines = []
    for contour in contours:
        if len(contour) >= 3:
            points = contour.reshape(-1, 2) / (width, height)
            lines.append("0 " + " ".join(f"{v:.5f}" for v in points.reshape(-1)))
    return "\n".join(lines)


def write_kolektorsdd(sample: Path, root: Path) -> None:
    """The middle half of each image's width (a tall 128 x 256 view); two thirds of each kind in ``train``."""
    for kind in ("good", "bad"):
        files = sorted((sample / kind).glob("*.png"))
        for index, image in enumerate(files):
            split = "train" if index < 2 * len(files) // 3 else "val"
            for sub in ("images", "labels"):
                (root / sub / split).mkdir(parents=True, exist_ok=True)
            stem = f"{kind}{index:03d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), cv2.imread(str(image), 0)[:, 64:192])
            mask = cv2.imread(str(sample / "masks" / image.name), 0) if kind == "bad" else None
            label = "" if mask is None else polygons(mask[:, 64:192])
            (root / "labels" / split / f"{stem}.txt").write_text(label)


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``--data`` folder holding ``magnetic_tile/`` and ``kolektorsdd/`` stand-ins."""
    sample = generate(tmp_path_factory.mktemp("samples"), ["metal"])["metal"]
    root = tmp_path_factory.mktemp("datasets")
    write_magnetic_tile(sample, root / "magnetic_tile")
    write_kolektorsdd(sample, root / "kolektorsdd")
    return root
