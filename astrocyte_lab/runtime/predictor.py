"""Run an ``.astromodel`` package with onnxruntime: no torch, no OpenCV, no training code.

>>> predictor = load_package("parts.astromodel")
>>> result = predictor.predict("image.png")          # or a numpy array, or a PIL image
>>> result.label, result.score, result.scores, result.ms

Classification packages give the arg-max category of ``softmax(logits)``. Continual packages (metadata
``continual`` set) label by class prototypes instead: the embedding is L2-normalised and compared with each
L2-normalised prototype by cosine similarity; ``scores = softmax(temperature * similarities)``
(``temperature`` from the metadata, default 10) and the label is the most similar category, or
``undefined_label`` ("Undefined") when the best similarity is below ``threshold``. :meth:`Predictor.learn`
folds new examples into a prototype (the running mean of the normalised embeddings) or starts a new
category; :meth:`Predictor.save` writes the result as a new package.

Segmentation packages give a :class:`~astrocyte_lab.runtime.segmentation.SegmentationPrediction` (mask,
probabilities and areas at the image's own resolution), predicted whole or tile by tile as the package's
``segmentation.tiling`` says (see :mod:`astrocyte_lab.runtime.segmentation` and :mod:`.tiling`).

The session runs on ``CPUExecutionProvider`` unless ``providers`` asks otherwise (``"auto"`` picks a GPU
provider when onnxruntime offers one). ``threads`` sets onnxruntime's intra-op threads (default: the CPUs
this process may use, at most 8). A Predictor may serve ``predict`` calls from several threads;
``learn`` and ``save`` must not run concurrently with anything else on the same Predictor.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrocyte_lab.runtime.cpus import usable_cpus
from astrocyte_lab.runtime.errors import ContinualError, PackageError, PreprocessError
from astrocyte_lab.runtime.heads import Head, make_head
from astrocyte_lab.runtime.package import (
    DEFAULT_TEMPERATURE,
    DEFAULT_UNDEFINED_LABEL,
    MODEL_FILE,
    decode_mask,
    decode_prototypes,
    now_iso,
    read_package,
    validate_metadata,
    write_package,
)
from astrocyte_lab.runtime.preprocess import image_from_pil, load_image, preprocess, preprocess_full
from astrocyte_lab.runtime.segmentation import DEFAULT_TILE_BATCH

INPUT_NAME = "image"
MAX_DEFAULT_THREADS = 8
GPU_PROVIDERS: tuple[str, ...] = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider",
                                  "CoreMLExecutionProvider")


@dataclass
class Prediction:
    """One image's result.

    ``scores`` maps every category to its probability (they sum to 1; empty for a continual package that has
    no category yet). ``score`` is the probability of the chosen category; for "Undefined" it is the
    probability of the nearest category, and ``similarity`` (continual packages only) holds that category's
    cosine similarity, the number compared with the threshold. ``ms`` is the wall time from the call to
    the result, image decoding and preprocessing included (in :meth:`Predictor.predict_batch`, the batch's
    time divided by its number of images). ``embedding`` is the model's raw embedding, when it has one.
    """

    label: str
    score: float
    scores: dict[str, float]
    ms: float
    embedding: np.ndarray | None = field(default=None, repr=False)
    similarity: float | None = None


def load_package(path: str | os.PathLike[str], providers: str | Sequence[Any] | None = None,
                 threads: int | None = None) -> Predictor:
    """Open an ``.astromodel`` file and return a ready :class:`Predictor`.

    Raises :class:`FileNotFoundError`, :class:`PackageError` (corrupt or incomplete package, a model that
    does not match its metadata) or :class:`FormatVersionError` (written by a newer astrocyte-lab).
    """
    metadata, files = read_package(path)
    return Predictor(metadata, files, path=path, providers=providers, threads=threads)


def default_threads() -> int:
    return min(usable_cpus(), MAX_DEFAULT_THREADS)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - np.max(values)
    exp = np.exp(shifted)
    return exp / exp.sum()


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class Predictor:
    """A loaded package: preprocessing, an onnxruntime session and the module's post-processing."""

    def __init__(self, metadata: dict[str, Any], files: dict[str, bytes], *, path: str | os.PathLike[str] | None = None,
                 providers: str | Sequence[Any] | None = None, threads: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._where = str(self.path) if self.path is not None else "package"
        validate_metadata(metadata, self._where)
        if MODEL_FILE not in files:
            raise PackageError(f"{self._where}: {MODEL_FILE} is missing")
        self._metadata = copy.deepcopy(metadata)
        self._files = dict(files)
        roi = self._metadata.get("roi") or {}
        self._roi = roi
        self._roi_mask = decode_mask(files[roi["mask"]], self._where) if roi.get("mask") else None
        self._continual = self._metadata.get("continual")
        self._prototypes: np.ndarray | None = None
        if self._continual is not None:
            self._prototypes = decode_prototypes(files[self._continual["prototypes"]], self._where).astype(np.float64)
            self._unit_prototypes = _unit_rows(self._prototypes)
        self._session = _create_session(files[MODEL_FILE], providers, threads, self._where)
        self._output_names = list(dict.fromkeys(self._metadata["outputs"].values()))
        self._check_model()
        self._head: Head | None = make_head(self.module, self._metadata, self._roi_mask, self.run, self._where)

    # ------------------------------------------------------------------------------------------ properties

    @property
    def head(self) -> Head | None:
        """The module's head this predictor runs (decoding, thresholds, tiling), or None for classification."""
        return self._head

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the package metadata (with learned categories and counts)."""
        return copy.deepcopy(self._metadata)

    @property
    def categories(self) -> list[str]:
        return list(self._metadata["categories"])

    @property
    def module(self) -> str:
        return str(self._metadata["module"])

    @property
    def name(self) -> str:
        return str(self._metadata.get("name", ""))

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the network input."""
        return int(self._metadata["input"]["width"]), int(self._metadata["input"]["height"])

    @property
    def is_continual(self) -> bool:
        return self._continual is not None

    @property
    def counts(self) -> list[int] | None:
        """Examples learned per category (continual packages), else None."""
        return list(self._continual["counts"]) if self._continual is not None else None

    @property
    def undefined_label(self) -> str | None:
        if self._continual is None:
            return None
        return str(self._continual.get("undefined_label", DEFAULT_UNDEFINED_LABEL))

    @property
    def providers(self) -> list[str]:
        """The onnxruntime execution providers the session really uses."""
        return list(self._session.get_providers())

    def __repr__(self) -> str:
        kind = "continual " if self.is_continual else ""
        return (f"Predictor({self.name!r}, {kind}{self.module}, {len(self.categories)} categories, "
                f"input {self.input_size[0]}x{self.input_size[1]}, providers={self.providers})")

    # ------------------------------------------------------------------------------------------ running

    def options(self) -> dict[str, Any]:
        """The run-time options of this package's module and their values (e.g. ``threshold`` for anomaly,
        ``confidence`` / ``overlap`` / ``max_detections`` for detection); empty when the module has none."""
        if self._head is None:
            return {}
        return {name: getattr(self._head.settings, name) for name in getattr(self._head, "tunable", ())}

    def configure(self, **values: Any) -> None:
        """Change run-time options (see :meth:`options`) for the following predictions; :meth:`save` keeps them.

        The values are checked like the package's own; the model session is reused.
        """
        known = self.options()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise PackageError(f"{self._where}: {unknown} cannot be configured; options are {sorted(known)}")
        metadata = copy.deepcopy(self._metadata)
        metadata.setdefault(self.module, {}).update(values)
        validate_metadata(metadata, self._where)
        head = make_head(self.module, metadata, self._roi_mask, self.run, self._where)
        self._metadata, self._head = metadata, head

    def preprocess(self, image: Any) -> np.ndarray:
        """The ``(C, H, W)`` float32 network input for an array, a path or a PIL image.

        For a tiled segmentation package this is the whole image shrunk to one tile, which is not what
        :meth:`predict` feeds; see :meth:`preprocess_full`.
        """
        return preprocess(_as_array(image), self._metadata["input"], self._roi, self._roi_mask)

    def preprocess_full(self, image: Any) -> np.ndarray:
        """The normalised ``(H', W', C)`` float32 crop at full resolution (what tiles are cut from)."""
        return preprocess_full(_as_array(image), self._metadata["input"], self._roi, self._roi_mask)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Raw model outputs for a preprocessed ``(N, C, H, W)`` batch, keyed by ONNX output name."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        values = self._session.run(self._output_names, {INPUT_NAME: batch})
        return dict(zip(self._output_names, values, strict=True))

    def predict(self, image: Any) -> Any:
        """Classify (or segment, detect, score) one image: a numpy array, a file path or a PIL image.

        Classification packages give a :class:`Prediction`; other modules give their head's result (see
        :mod:`astrocyte_lab.runtime.heads`), e.g. a :class:`SegmentationPrediction`, tiles in batches of 8.
        """
        start = time.perf_counter()
        if self._head is not None:
            result = self._head.predict([_as_array(image)], DEFAULT_TILE_BATCH)[0]
            result.ms = (time.perf_counter() - start) * 1000.0
            return result
        outputs = self.run(self.preprocess(image)[None])
        prediction = self._interpret(outputs, 0)
        prediction.ms = (time.perf_counter() - start) * 1000.0
        return prediction

    def predict_batch(self, images: Iterable[Any], batch_size: int = 16) -> list[Any]:
        """Predict several images, running the model on batches of up to ``batch_size``.

        For a tiled package the images are taken one at a time and ``batch_size`` is the number of tiles per
        batch; ``ms`` is then each image's own time.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        items = list(images)
        if self._head is not None:
            return self._head_batch(items, batch_size)
        results: list[Prediction] = []
        for first in range(0, len(items), batch_size):
            chunk = items[first:first + batch_size]
            start = time.perf_counter()
            outputs = self.run(np.stack([self.preprocess(item) for item in chunk]))
            predictions = [self._interpret(outputs, i) for i in range(len(chunk))]
            share = (time.perf_counter() - start) * 1000.0 / len(chunk)
            for prediction in predictions:
                prediction.ms = share
            results.extend(predictions)
        return results

    def _head_batch(self, items: list[Any], batch_size: int) -> list[Any]:
        assert self._head is not None
        step = 1 if self._head.tiled else batch_size
        results: list[Any] = []
        for first in range(0, len(items), step):
            start = time.perf_counter()
            chunk = [_as_array(item) for item in items[first:first + step]]
            predictions = self._head.predict(chunk, batch_size)
            share = (time.perf_counter() - start) * 1000.0 / len(chunk)
            for prediction in predictions:
                prediction.ms = share
            results.extend(predictions)
        return results

    def _output(self, outputs: dict[str, np.ndarray], role: str) -> np.ndarray | None:
        name = self._metadata["outputs"].get(role)
        if name is None:
            return None
        value = outputs[name]
        return value.reshape(value.shape[0], -1)

    def _interpret(self, outputs: dict[str, np.ndarray], index: int) -> Prediction:
        embeddings = self._output(outputs, "embedding")
        embedding = None if embeddings is None else embeddings[index].astype(np.float32, copy=True)
        if self._continual is not None:
            assert embedding is not None  # validated: continual packages have an embedding output
            return self._nearest_prototype(embedding)
        logits = self._output(outputs, "logits")
        assert logits is not None
        categories = self._metadata["categories"]
        row = logits[index].astype(np.float64)
        if row.size != len(categories):
            raise PackageError(f"{self._where}: the model gives {row.size} logits for {len(categories)} categories")
        probabilities = _softmax(row)
        best = int(np.argmax(probabilities))
        scores = {name: float(p) for name, p in zip(categories, probabilities, strict=True)}
        return Prediction(categories[best], float(probabilities[best]), scores, 0.0, embedding)

    def _similarities(self, embedding: np.ndarray) -> np.ndarray:
        assert self._prototypes is not None
        vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if vector.size != self._prototypes.shape[1]:
            raise PackageError(f"{self._where}: the model's embedding has {vector.size} values but the prototypes "
                               f"have {self._prototypes.shape[1]}")
        norm = np.linalg.norm(vector)
        unit = vector / norm if norm > 0 else vector
        return self._unit_prototypes @ unit

    def _nearest_prototype(self, embedding: np.ndarray) -> Prediction:
        assert self._continual is not None
        similarities = self._similarities(embedding)
        undefined = self.undefined_label or DEFAULT_UNDEFINED_LABEL
        categories = self._metadata["categories"]
        if similarities.size == 0:
            return Prediction(undefined, 0.0, {}, 0.0, embedding, None)
        temperature = float(self._continual.get("temperature", DEFAULT_TEMPERATURE))
        probabilities = _softmax(temperature * similarities)
        best = int(np.argmax(similarities))
        similarity = float(similarities[best])
        label = categories[best] if similarity >= float(self._continual["threshold"]) else undefined
        scores = {name: float(p) for name, p in zip(categories, probabilities, strict=True)}
        return Prediction(label, float(probabilities[best]), scores, 0.0, embedding, similarity)

    # ------------------------------------------------------------------------------------------ continual

    def learn(self, image: Any, category: str) -> int:
        """Add an example (or a list of examples) of ``category``; return that category's example count.

        The example's L2-normalised embedding is folded into the category's prototype, a running mean of
        normalised embeddings. An unknown category is appended, unless ``max_classes`` is reached
        (:class:`ContinualError`). Call :meth:`save` to keep what was learned.
        """
        if self._continual is None or self._prototypes is None:
            raise ContinualError(f"{self._where}: this package has no continual-learning state; learn() needs a "
                                 "package exported with continual learning")
        if not isinstance(category, str) or not category.strip():
            raise ContinualError(f"category must be a non-empty string, got {category!r}")
        if category == self.undefined_label:
            raise ContinualError(f"{category!r} is the label for unknown images and cannot be learned")
        categories: list[str] = self._metadata["categories"]
        limit = self._continual.get("max_classes")
        if category not in categories and limit is not None and len(categories) >= limit:
            raise ContinualError(f"cannot add category {category!r}: the package allows at most {limit} classes "
                                 f"({', '.join(categories)})")
        images = list(image) if isinstance(image, list | tuple) else [image]
        if not images:
            raise ContinualError("learn() needs at least one image")
        embeddings = []
        for first in range(0, len(images), 16):
            batch = np.stack([self.preprocess(item) for item in images[first:first + 16]])
            vectors = self._output(self.run(batch), "embedding")
            assert vectors is not None
            embeddings.append(vectors.astype(np.float64))
        units = np.concatenate(embeddings)
        if units.shape[1] != self._prototypes.shape[1]:
            raise PackageError(f"{self._where}: the model's embedding has {units.shape[1]} values but the "
                               f"prototypes have {self._prototypes.shape[1]}")
        norms = np.linalg.norm(units, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ContinualError("the model gave an all-zero embedding; such an image cannot be learned")
        units = units / norms
        counts: list[int] = self._continual["counts"]
        if category not in categories:
            categories.append(category)
            counts.append(0)
            self._prototypes = np.vstack([self._prototypes, np.zeros((1, self._prototypes.shape[1]))])
        k = categories.index(category)
        prototype, count = self._prototypes[k].copy(), counts[k]
        for unit in units:
            count += 1
            prototype += (unit - prototype) / count
        self._prototypes[k] = prototype
        counts[k] = count
        self._unit_prototypes = _unit_rows(self._prototypes)
        return count

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this predictor's package (with learned categories and prototypes) to ``path``, atomically."""
        metadata = copy.deepcopy(self._metadata)
        roi = metadata.get("roi") or {}
        mask_name = roi.get("mask")
        referenced = {MODEL_FILE, mask_name}
        prototypes = None
        if self._continual is not None and self._prototypes is not None:
            referenced.add(self._continual["prototypes"])
            prototypes = self._prototypes.astype(np.float32)
            metadata["modified"] = now_iso()
        extra = {name: data for name, data in self._files.items() if name not in referenced}
        return write_package(path, self._files[MODEL_FILE], metadata,
                             roi_mask=self._files[mask_name] if mask_name else None,
                             prototypes=prototypes, extra_files=extra)

    # ------------------------------------------------------------------------------------------ checks

    def _check_model(self) -> None:
        where = self._where
        inputs = self._session.get_inputs()
        names = [i.name for i in inputs]
        if names != [INPUT_NAME]:
            raise PackageError(f"{where}: {MODEL_FILE} must have one input named {INPUT_NAME!r}, it has {names}")
        shape = inputs[0].shape
        if len(shape) != 4:
            raise PackageError(f"{where}: the model input must be (N, C, H, W), it is {shape}")
        meta_input = self._metadata["input"]
        for axis, key in ((1, "channels"), (2, "height"), (3, "width")):
            if isinstance(shape[axis], int) and shape[axis] != int(meta_input[key]):
                raise PackageError(f"{where}: the model input has {key} {shape[axis]} but the metadata says "
                                   f"{meta_input[key]}")
        available = {o.name: o.shape for o in self._session.get_outputs()}
        for role, name in self._metadata["outputs"].items():
            if name not in available:
                raise PackageError(f"{where}: outputs.{role} names {name!r} but {MODEL_FILE} has outputs "
                                   f"{sorted(available)}")
        logits = self._metadata["outputs"].get("logits")
        if self._continual is None and logits is not None and self.module == "classification":
            size = available[logits][-1] if available[logits] else None
            if isinstance(size, int) and size != len(self._metadata["categories"]):
                raise PackageError(f"{where}: the model gives {size} logits but the metadata lists "
                                   f"{len(self._metadata['categories'])} categories")
        probabilities = self._metadata["outputs"].get("probabilities")
        if self.module == "segmentation" and probabilities is not None:
            shape = available[probabilities]
            if shape and len(shape) != 4:
                raise PackageError(f"{where}: the model's probabilities must be (N, K, H, W), they are {shape}")
            size = shape[1] if shape else None
            if isinstance(size, int) and size != len(self._metadata["categories"]):
                raise PackageError(f"{where}: the model gives {size} probability maps but the metadata lists "
                                   f"{len(self._metadata['categories'])} categories")
        if self._prototypes is not None:
            shape = available[self._metadata["outputs"]["embedding"]]
            size = shape[-1] if shape else None
            if isinstance(size, int) and len(shape) == 2 and size != self._prototypes.shape[1]:
                raise PackageError(f"{where}: the model's embedding has {size} values but the prototypes have "
                                   f"{self._prototypes.shape[1]}")


def _as_array(image: Any) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, str | os.PathLike):
        return load_image(image)
    if hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "convert"):  # a PIL image
        return image_from_pil(image)
    raise PreprocessError(f"expected an image array, a file path or a PIL image, got {type(image).__name__}")


_TELEMETRY_OFF = False


def _create_session(model: bytes, providers: str | Sequence[Any] | None, threads: int | None, where: str) -> Any:
    import onnxruntime as ort

    global _TELEMETRY_OFF
    if not _TELEMETRY_OFF:
        disable = getattr(ort, "disable_telemetry_events", None)
        if disable is not None:
            try:
                disable()
            except Exception:  # noqa: BLE001 - best effort only
                pass
        _TELEMETRY_OFF = True
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads) if threads else default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    chosen = _choose_providers(ort.get_available_providers(), providers)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=chosen)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad graphs
        raise PackageError(f"{where}: {MODEL_FILE} cannot be loaded by onnxruntime ({exc})") from exc


def _choose_providers(available: Sequence[str], requested: str | Sequence[Any] | None) -> list[Any]:
    """The providers list for onnxruntime: CPU by default, ``"auto"`` = first GPU provider offered + CPU."""
    cpu = "CPUExecutionProvider"
    if requested is None:
        return [cpu]
    if isinstance(requested, str):
        if requested == "auto":
            gpu = [p for p in GPU_PROVIDERS if p in available][:1]
            return gpu + [cpu]
        requested = [requested]
    chosen: list[Any] = []
    for entry in requested:
        name = entry[0] if isinstance(entry, tuple | list) else entry
        if name in available:
            chosen.append(tuple(entry) if isinstance(entry, list) else entry)
        else:
            warnings.warn(f"onnxruntime provider {name!r} is not available here (available: "
                          f"{', '.join(available)}); it is skipped", RuntimeWarning, stacklevel=4)
    if not any((c[0] if isinstance(c, tuple) else c) == cpu for c in chosen):
        chosen.append(cpu)
    return chosen
