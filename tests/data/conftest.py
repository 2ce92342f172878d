"""Fixtures for the data-layer tests: tiny images written with cv2/numpy into ``tmp_path``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.data.workspace import Workspace

W, H = 32, 24  # default image size (width x height)


class Images:
    """Writes small test images; arrays are RGB (H, W, 3) or grey (H, W) / (H, W, 1)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def array(self, seed: int = 0, width: int = W, height: int = H, channels: int = 3,
              dtype: type = np.uint8, top: int | None = None) -> np.ndarray:
        """A random-but-smooth image (smooth so JPEG keeps it close); values below ``top``."""
        rng = np.random.default_rng(seed)
        top = top if top is not None else int(np.iinfo(dtype).max)
        small = rng.integers(0, top + 1, size=(max(2, height // 4), max(2, width // 4), channels))
        big = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        big = big.reshape(height, width, channels)
        return np.clip(np.rint(big), 0, top).astype(dtype)

    def write(self, path: str | Path, image: np.ndarray, quality: int = 95) -> Path:
        """Write ``image`` (RGB order) to ``path``; the suffix picks the format."""
        path = Path(path)
        if not path.is_absolute():
            path = self.root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = image
        if data.ndim == 3 and data.shape[2] == 3:
            data = data[:, :, ::-1]
        elif data.ndim == 3 and data.shape[2] == 1:
            data = data[:, :, 0]
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
        ok, encoded = cv2.imencode(path.suffix, np.ascontiguousarray(data), params)
        assert ok, path
        path.write_bytes(encoded.tobytes())
        return path

    def make(self, path: str | Path, seed: int = 0, width: int = W, height: int = H, channels: int = 3,
             dtype: type = np.uint8, top: int | None = None) -> Path:
        return self.write(path, self.array(seed, width, height, channels, dtype, top))

    def folder(self, folder: str | Path, count: int, prefix: str = "img", suffix: str = ".png",
               seed: int = 0, **kwargs) -> list[Path]:
        """``count`` images named ``<prefix><i><suffix>`` in ``folder``."""
        return [self.make(Path(folder) / f"{prefix}{i}{suffix}", seed=seed + i, **kwargs) for i in range(count)]


@pytest.fixture
def images(tmp_path: Path) -> Images:
    return Images(tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def labelled_tree(images: Images, tmp_path: Path) -> Path:
    """``src/A/a0..a2.png`` and ``src/B/b0..b2.png``: 32 x 24 RGB, categories by folder."""
    images.folder("src/A", 3, prefix="a", seed=0)
    images.folder("src/B", 3, prefix="b", seed=10)
    return tmp_path / "src"


def file_state(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under ``root``, to prove nothing was modified."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, tuple[str, int]]]:
    return file_state
