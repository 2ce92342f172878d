"""Tiny ONNX classifiers built with onnx.helper (no torch) and package-writing helpers for the runtime tests.

The test model: ``embedding = GlobalAveragePool(image) @ W + b`` (``(N, D)``) and
``logits = embedding @ V + c`` (``(N, K)``), so the numpy reference is two matrix products.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from astrocyte_lab.runtime import write_package


@dataclass
class TinyModel:
    onnx_bytes: bytes
    w: np.ndarray  # (C, D)
    b: np.ndarray  # (D,)
    v: np.ndarray  # (D, K)
    c: np.ndarray  # (K,)

    def reference(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embedding, logits) for a preprocessed (N, C, H, W) batch, in float64."""
        pooled = batch.astype(np.float64).mean(axis=(2, 3))
        embedding = pooled @ self.w + self.b
        return embedding, embedding @ self.v + self.c


def tiny_model(channels: int = 3, dim: int = 5, classes: int = 2, height: int | str = "H", width: int | str = "W",
               seed: int = 0, w: np.ndarray | None = None, b: np.ndarray | None = None,
               input_name: str = "image", logits_name: str = "logits") -> TinyModel:
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=(channels, dim)) if w is None else np.asarray(w)).astype(np.float32)
    b = (rng.normal(size=dim) * 0.1 if b is None else np.asarray(b)).astype(np.float32)
    v = rng.normal(size=(w.shape[1], classes)).astype(np.float32)
    c = (rng.normal(size=classes) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["projected"]),
        helper.make_node("Add", ["projected", "B"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "V"], ["scores"]),
        helper.make_node("Add", ["scores", "C"], [logits_name]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info(logits_name, TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", w.shape[1]])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
                     numpy_helper.from_array(v, "V"), numpy_helper.from_array(c, "C")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return TinyModel(model.SerializeToString(), w, b, v, c)


def classification_metadata(categories: list[str] | None = None, width: int = 24, height: int = 16,
                            channels: int = 3, **changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "module": "classification",
        "name": "tiny",
        "categories": categories if categories is not None else ["a", "b"],
        "input": {"width": width, "height": height, "channels": channels, "source_channels": channels,
                  "bit_depth": 8, "resize": "bilinear", "mean": [0.5] * channels, "std": [0.25] * channels},
        "roi": {"crop": None, "mask": None},
        "outputs": {"logits": "logits", "embedding": "embedding"},
        "thresholds": {},
        "continual": None,
    }
    meta.update(changes)
    return meta


def continual_metadata(categories: list[str], counts: list[int], threshold: float = 0.6,
                       max_classes: int | None = None, temperature: float | None = None,
                       **changes: Any) -> dict[str, Any]:
    continual = {"prototypes": "prototypes.npy", "counts": counts, "threshold": threshold,
                 "max_classes": max_classes, "metric": "cosine", "undefined_label": "Undefined"}
    if temperature is not None:
        continual["temperature"] = temperature
    return classification_metadata(categories, continual=continual, **changes)


def colour_image(rgb: tuple[float, float, float], width: int = 40, height: int = 30, seed: int = 0,
                 noise: float = 0.02) -> np.ndarray:
    """A uint8 image of one colour (RGB in [0, 1]) with a little noise."""
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.asarray(rgb, dtype=np.float64), (height, width, 3))
    noisy = base + rng.normal(scale=noise, size=base.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


@pytest.fixture
def make_package(tmp_path: Path) -> Callable[..., tuple[Path, TinyModel]]:
    """Write a classification package: ``make_package(name, model=..., metadata=..., **write_package kwargs)``."""

    def make(name: str = "model.astromodel", model: TinyModel | None = None,
             metadata: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Path, TinyModel]:
        model = model or tiny_model()
        metadata = metadata or classification_metadata()
        path = write_package(tmp_path / name, model.onnx_bytes, metadata, **kwargs)
        return path, model

    return make


# ------------------------------------------------------------------------------------------------ segmentation

@dataclass
class PointwiseModel:
    """``probabilities = softmax(W @ pixel + b)`` per pixel: a 1x1 convolution followed by a softmax over classes."""

    onnx_bytes: bytes
    w: np.ndarray  # (K, C)
    b: np.ndarray  # (K,)

    def reference(self, batch: np.ndarray) -> np.ndarray:
        """``(N, K, H, W)`` probabilities for a preprocessed ``(N, C, H, W)`` batch, in float64."""
        logits = np.einsum("kc,nchw->nkhw", self.w.astype(np.float64), batch.astype(np.float64))
        logits += self.b.astype(np.float64)[None, :, None, None]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def pointwise_model(channels: int = 3, classes: int = 3, height: int | str = "H", width: int | str = "W",
                    seed: int = 0, scale: float = 2.0, pool: int = 1) -> PointwiseModel:
    """A per-pixel segmentation model; ``pool > 1`` averages ``pool x pool`` blocks first (coarser output)."""
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=(classes, channels)) * scale).astype(np.float32)
    b = (rng.normal(size=classes) * 0.5).astype(np.float32)
    nodes = []
    source = "image"
    if pool > 1:
        nodes.append(helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[pool, pool],
                                      strides=[pool, pool]))
        source = "pooled"
    nodes += [helper.make_node("Conv", [source, "W", "B"], ["logits"], kernel_shape=[1, 1]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    out_h, out_w = (height, width) if pool == 1 else ("h", "w")
    graph = helper.make_graph(
        nodes, "pointwise",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes, out_h, out_w])],
        initializer=[numpy_helper.from_array(w[:, :, None, None], "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return PointwiseModel(model.SerializeToString(), w, b)


def segmentation_metadata(categories: list[str] | None = None, width: int = 24, height: int = 16,
                          channels: int = 3, tiling: dict[str, Any] | None = None, background: int = 0,
                          **changes: Any) -> dict[str, Any]:
    categories = categories if categories is not None else ["background", "scratch", "dent"]
    meta = classification_metadata(categories, width=width, height=height, channels=channels,
                                   module="segmentation", outputs={"probabilities": "probabilities"})
    meta["segmentation"] = {"background": background, "tiling": tiling,
                            "colours": [[(40 * i) % 256, 255 - (40 * i) % 256, 128] for i in range(len(categories))]}
    meta.update(changes)
    return meta
