"""Fixtures for the annotation-format tests: tiny generated images and a helper to write text files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

W, H = 64, 48  # test image size (width x height)


def write_image(path: Path, width: int = W, height: int = H, seed: int = 0) -> Path:
    """A small random colour image at ``path`` (the suffix picks the format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """``images/`` with img0.png, img1.png (64x48) and img2.jpg (80x60)."""
    folder = tmp_path / "images"
    write_image(folder / "img0.png", seed=0)
    write_image(folder / "img1.png", seed=1)
    write_image(folder / "img2.jpg", 80, 60, seed=2)
    return folder


@pytest.fixture
def make_image():
    """``make_image(path, width=64, height=48, seed=0) -> path``: write a small test image."""
    return write_image


@pytest.fixture
def make_text():
    """``make_text(path, text) -> path``: write a UTF-8 text file, creating folders."""
    return write_text
