"""The runtime works where torch, OpenCV and the training stack are absent.

A child interpreter refuses to import torch, cv2, timm, xarray, zarr (and the other training-only libraries,
onnx included) and then loads and runs packages through ``astrocyte_lab.runtime``. While
``astrocyte_lab/__init__.py`` still imports the data layer, the child cannot import the real top-level
package; it then installs a stand-in ``astrocyte_lab`` module whose ``__path__`` is the real folder, so
``import astrocyte_lab.runtime`` runs only the runtime's own code. Once the top-level package imports
lazily the real one is used. Either way the child checks that no other part of astrocyte-lab was imported.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import astrocyte_lab.runtime as runtime
from astrocyte_lab.runtime import load_package

from .conftest import (
    classification_metadata,
    colour_image,
    continual_metadata,
    pointwise_model,
    segmentation_metadata,
    tiny_model,
)

BLOCKED = ("torch", "torchvision", "cv2", "timm", "xarray", "zarr", "onnx", "onnxscript", "pandas", "ultralytics",
           "anomalib", "segmentation_models_pytorch", "lightning", "ipywidgets", "jupyter_server")

CHILD = r"""
import importlib.abc, importlib.util, json, sys, types

BLOCKED = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Blocker())
spec = importlib.util.find_spec("astrocyte_lab")  # locates the package without running its __init__
route = "real"
try:
    import astrocyte_lab  # noqa: F401
except ImportError:
    route = "stub"
    for name in [n for n in sys.modules if n == "astrocyte_lab" or n.startswith("astrocyte_lab.")]:
        del sys.modules[name]
    stub = types.ModuleType("astrocyte_lab")
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules["astrocyte_lab"] = stub
before = set(sys.modules)

import numpy as np
from astrocyte_lab.runtime import load_package

plain = load_package(sys.argv[2])
image_path = sys.argv[4]
first = plain.predict(image_path)
batch = plain.predict_batch([image_path, np.zeros((40, 50, 3), np.uint8)])
continual = load_package(sys.argv[3])
continual.learn(np.full((30, 40, 3), (0, 0, 255), np.uint8), "blue")
continual.save(sys.argv[5])
learned = load_package(sys.argv[5]).predict(np.full((30, 40, 3), (0, 0, 250), np.uint8))
from astrocyte_lab.runtime.tiling import tile_grid
segmenter = load_package(sys.argv[6])
segmented = segmenter.predict(image_path)
segmented_batch = segmenter.predict_batch([image_path, np.zeros((40, 70, 3), np.uint8)], batch_size=3)

others = sorted(n for n in set(sys.modules) - before
                if n.startswith("astrocyte_lab.") and not n.startswith("astrocyte_lab.runtime"))
heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
print(json.dumps({"route": route, "label": first.label, "scores": first.scores,
                  "batch": [p.label for p in batch], "learned": learned.label, "others": others, "heavy": heavy,
                  "tiles": len(tile_grid(45, 35, 16, 16, 0.25)), "areas": segmented.areas,
                  "mask_shape": list(segmented.mask.shape), "batch_areas": [p.areas for p in segmented_batch]}))
"""


def test_runtime_runs_without_torch_and_opencv(tmp_path: Path) -> None:
    plain = runtime.write_package(tmp_path / "plain.astromodel", tiny_model().onnx_bytes,
                                  classification_metadata(roi={"crop": [2, 2, 30, 20], "mask": None}),
                                  roi_mask=np.full((20, 30), 255, np.uint8))
    red = np.array([2.0, -2.0, -2.0]) / np.sqrt(12)
    continual = runtime.write_package(tmp_path / "continual.astromodel",
                                      tiny_model(w=np.eye(3), b=np.zeros(3)).onnx_bytes,
                                      continual_metadata(["red"], [1]), prototypes=red[None])
    image_path = tmp_path / "image.png"
    Image.fromarray(colour_image((0.2, 0.7, 0.4), 50, 40, noise=0.2)).save(image_path)
    learned_path = tmp_path / "learned.astromodel"
    tiling = {"tile": [16, 16], "overlap": 0.25}
    segmenter = runtime.write_package(tmp_path / "segmentation.astromodel",
                                      pointwise_model(height=16, width=16).onnx_bytes,
                                      segmentation_metadata(width=16, height=16, tiling=tiling,
                                                            roi={"crop": [2, 2, 45, 35], "mask": None}),
                                      roi_mask=np.full((35, 45), 255, np.uint8))
    done = subprocess.run([sys.executable, "-c", CHILD, ",".join(BLOCKED), str(plain), str(continual),
                           str(image_path), str(learned_path), str(segmenter)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["route"] in ("real", "stub")
    assert report["others"] == [] and report["heavy"] == []
    expected = load_package(plain).predict(image_path)
    assert report["label"] == expected.label
    assert np.allclose(list(report["scores"].values()), list(expected.scores.values()), atol=1e-6)
    assert report["batch"][0] == expected.label
    assert report["learned"] == "blue"
    assert load_package(learned_path).categories == ["red", "blue"]
    segmented = load_package(segmenter).predict(image_path)
    assert report["mask_shape"] == [40, 50] and report["tiles"] == 12
    assert report["areas"] == segmented.areas and report["batch_areas"][0] == segmented.areas
    assert sum(report["batch_areas"][1].values()) == 40 * 70


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_runtime_sources_import_only_allowed_modules() -> None:
    folder = Path(runtime.__file__).parent
    third_party = {"numpy", "onnxruntime", "PIL"}
    for source in folder.glob("*.py"):
        for name in _imports(source):
            top = name.split(".")[0]
            if top == "astrocyte_lab":
                assert name.startswith("astrocyte_lab.runtime"), f"{source.name} imports {name}"
            else:
                assert top in third_party or top in sys.stdlib_module_names, f"{source.name} imports {name}"

