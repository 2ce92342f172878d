"""The one door to Ultralytics (AGPL-3.0): offline set-up, model building, YOLO-format data and its trainer.

Ultralytics reads its environment when first imported, so every import of it in astrocyte-lab goes through
:func:`ultralytics_module`, which first makes it safe offline and quiet:

* ``YOLO_OFFLINE=1`` (no connectivity probes), ``YOLO_AUTOINSTALL=False`` (never pip-installs), and
  ``YOLO_CONFIG_DIR`` pointing into the system temp folder (its settings file never lands in the home folder or
  the repository) unless the user already set it; settings ``sync=False``.
* Its import and its CPU device selection set torch's thread count to cores - 1 process-wide; the previous
  count is restored.
* Networks are built from bundled ``.yaml`` definitions (named ``.pt`` weights would download); runs write into
  a temporary folder with ``plots=False`` (plots look for a font to download).
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_READY = False


def configure_environment() -> None:
    """Set Ultralytics' offline environment (idempotent; call before importing ultralytics)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if not os.environ.get("YOLO_CONFIG_DIR"):
        folder = Path(tempfile.gettempdir()) / "astrocyte-ultralytics"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(folder)


def ultralytics_module():
    """``import ultralytics`` after :func:`configure_environment`, with syncing switched off."""
    global _READY
    configure_environment()
    import torch

    threads = torch.get_num_threads()
    import ultralytics
    from PIL import Image
    from ultralytics.utils import SETTINGS, patches

    if getattr(Image, "open", None) is getattr(patches, "image_open", None):
        # its import replaces PIL.Image.open process-wide with a version that, on any unreadable file, tries to
        # install and import a HEIF plugin: a corrupt image must stay a clear error everywhere else
        Image.open = patches._image_open  # noqa: SLF001
    if not _READY:
        torch.set_num_threads(threads)  # its import lowers torch's threads to cores - 1 for the whole process
        try:
            if SETTINGS.get("sync", False):
                SETTINGS.update(sync=False)
        except Exception:  # noqa: BLE001 - a read-only settings file must not stop training
            pass
        _READY = True
    return ultralytics


def build_model(cfg: str | dict, classes: int, rotated: bool):
    """A fresh Ultralytics network from a yaml name (``yolov8n.yaml``) or a stored yaml dict."""
    ultralytics_module()
    from ultralytics.nn.tasks import DetectionModel, OBBModel

    kind = OBBModel if rotated else DetectionModel
    return kind(cfg=copy.deepcopy(cfg) if isinstance(cfg, dict) else cfg, ch=3, nc=classes, verbose=False)


def load_matching(model, state: dict) -> int:
    """Copy the tensors of ``state`` whose name and shape match ``model``'s; returns how many were copied."""
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    model.load_state_dict(matched, strict=False)
    return len(matched)


def write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"cannot write {path}")


def label_lines(objects: list[tuple[int, np.ndarray]], width: int, height: int, rotated: bool) -> list[str]:
    """YOLO label lines: ``cls cx cy w h`` from ``[x1, y1, x2, y2]`` or ``cls x1 y1 .. x4 y4`` from 4 corners."""
    lines = []
    scale = np.array([width, height], np.float64)
    for index, geometry in objects:
        if rotated:
            pts = (np.asarray(geometry, np.float64).reshape(4, 2) / scale).clip(0, 1)
            lines.append(f"{index} " + " ".join(f"{v:.6f}" for v in pts.reshape(-1)))
        else:
            x1, y1, x2, y2 = geometry
            lines.append(f"{index} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                         f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return lines


class YoloFolder:
    """A temporary YOLO-format dataset: ``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``."""

    def __init__(self, root: Path, categories: list[str], rotated: bool) -> None:
        self.root, self.categories, self.rotated = Path(root), list(categories), rotated
        self.counts = {"train": 0, "val": 0}
        for split in ("train", "val"):
            (self.root / "images" / split).mkdir(parents=True, exist_ok=True)
            (self.root / "labels" / split).mkdir(parents=True, exist_ok=True)

    def add(self, split: str, name: str, rgb: np.ndarray, objects: list[tuple[int, np.ndarray]]) -> None:
        height, width = rgb.shape[:2]
        write_image(self.root / "images" / split / f"{name}.png", rgb)
        lines = label_lines(objects, width, height, self.rotated)
        (self.root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        self.counts[split] += 1

    def data_yaml(self) -> Path:
        import yaml

        path = self.root / "data.yaml"
        path.write_text(yaml.safe_dump({"path": str(self.root), "train": "images/train", "val": "images/val",
                                        "names": dict(enumerate(self.categories)), "channels": 3}))
        return path


def run_trainer(model, data: Path, rotated: bool, overrides: dict[str, Any],
                on_batch: Callable[[Any], None], on_epoch: Callable[[Any], None]) -> None:
    """Train ``model`` in place with Ultralytics' detection (or OBB) trainer.

    ``on_batch(trainer)`` runs after every batch (raise there to stop: cancellation), ``on_epoch(trainer)``
    after every epoch's validation. The trainer's own final re-validation of ``best.pt`` is skipped (the caller
    keeps its own best weights).
    """
    ultralytics_module()
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.models.yolo.obb import OBBTrainer

    base = OBBTrainer if rotated else DetectionTrainer

    class Trainer(base):  # type: ignore[misc, valid-type]
        def get_model(self, cfg=None, weights=None, verbose=True):
            return model

        def final_eval(self):
            return None

        def plot_training_labels(self):
            return None

    import torch

    threads = torch.get_num_threads()
    try:
        trainer = Trainer(overrides={**overrides, "data": str(data),
                                     "model": model.yaml.get("yaml_file", "yolov8n.yaml")})
        torch.set_num_threads(threads)  # its device selection drops CPU training to cores - 1 threads
        trainer.add_callback("on_train_batch_end", on_batch)
        trainer.add_callback("on_fit_epoch_end", on_epoch)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
