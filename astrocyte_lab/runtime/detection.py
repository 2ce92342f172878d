"""Object detection packages: from an image to boxes (or rotated boxes), labels and scores (numpy only).

A detection package's model has one output, role ``predictions``: float32 ``(N, 4 + K, A)`` for axis-aligned
boxes or ``(N, 4 + K + 1, A)`` for rotated ones, one column per anchor ``a``: the box centre ``cx, cy`` and
size ``w, h`` in network-input pixels, then the ``K`` class scores (sigmoid applied), then, for rotated boxes,
the angle in radians of the ``w`` side (``(cos, sin)`` with y down: positive turns clockwise on screen). Its
metadata has a ``detection`` section::

    {"rotated": false,
     "confidence": 0.25,        # keep detections scoring at least this
     "overlap": 0.45,           # NMS: drop a box overlapping a kept one of the same class above this IoU
     "max_detections": 200,     # per image, after NMS (1..5000)
     "class_agnostic": false,   # NMS across classes
     "tiling": null or {"tile": [w, h], "overlap": 0.1, "whole_image": false}}

**Without tiling** the image goes through :func:`~astrocyte_lab.runtime.preprocess.preprocess` (crop, scale,
channels, plain bilinear resize to the input size, normalise, ROI mask: the same steps as training), the
model runs, and :func:`decode` keeps, per anchor, its best class when that score reaches ``confidence``.
Boxes are mapped back to image pixels (scaled by crop size / input size, shifted by the crop origin).

**With tiling** the crop is not resized: it is cut into input-size tiles on the grid of
:func:`~astrocyte_lab.runtime.tiling.tile_grid` (tiles past the border padded with the tile's mean), each tile's
boxes are shifted by its origin, and with ``whole_image`` the resized whole image's boxes are added (for
objects larger than a tile's overlap can hold). All candidates then go through one NMS.

With ``input.dataset_resize`` all of this happens on the image brought to the dataset's size (the frame the
crop refers to); the candidates are then scaled to the image's pixels before NMS.

NMS is greedy by score: axis-aligned boxes by IoU, rotated boxes by ProbIoU (boxes as 2-D Gaussians, the
measure Ultralytics uses for oriented boxes); classes are kept apart unless ``class_agnostic``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrocyte_lab.runtime.errors import PackageError
from astrocyte_lab.runtime.heads import PackageHead
from astrocyte_lab.runtime.preprocess import dataset_image, preprocess, preprocess_full
from astrocyte_lab.runtime.tiling import extract_tile, tile_grid

MAX_DETECTIONS = 5000
MAX_CANDIDATES = 3000  # highest-scoring candidates that enter NMS


@dataclass
class DetectionPrediction:
    """One image's detections, in the image's own pixels, best score first.

    ``boxes`` ``(M, 4)`` float32 ``x1, y1, x2, y2`` (for rotated detections: the axis-aligned bounds),
    ``rotated`` ``(M, 5)`` ``cx, cy, w, h, angle`` (degrees in [0, 180)) or None for an axis-aligned model,
    ``classes`` ``(M,)`` category indices, ``labels`` their names, ``scores`` ``(M,)``. ``label`` / ``score``
    are those of the best detection ("" and 0.0 when there is none). ``ms``: wall time of the call.
    """

    boxes: np.ndarray = field(repr=False)
    classes: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    labels: list[str]
    categories: list[str] = field(repr=False)
    rotated: np.ndarray | None = field(default=None, repr=False)
    ms: float = 0.0

    @property
    def label(self) -> str:
        return self.labels[0] if self.labels else ""

    @property
    def score(self) -> float:
        return float(self.scores[0]) if len(self.scores) else 0.0

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Detections per category (every category listed)."""
        found = np.bincount(self.classes.astype(np.int64), minlength=len(self.categories))
        return {name: int(n) for name, n in zip(self.categories, found, strict=False)}


@dataclass(frozen=True)
class DetectionSettings:
    """The ``detection`` metadata section with its defaults filled in."""

    rotated: bool = False
    confidence: float = 0.25
    overlap: float = 0.45
    max_detections: int = 200
    class_agnostic: bool = False
    tile: tuple[int, int] | None = None
    tile_overlap: float = 0.0
    whole_image: bool = False

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> DetectionSettings:
        section = metadata.get("detection") or {}
        tiling = section.get("tiling")
        return cls(rotated=bool(section.get("rotated", False)),
                   confidence=float(section.get("confidence", 0.25)),
                   overlap=float(section.get("overlap", 0.45)),
                   max_detections=int(section.get("max_detections", 200)),
                   class_agnostic=bool(section.get("class_agnostic", False)),
                   tile=None if not tiling else (int(tiling["tile"][0]), int(tiling["tile"][1])),
                   tile_overlap=0.0 if not tiling else float(tiling.get("overlap", 0.0)),
                   whole_image=bool(tiling and tiling.get("whole_image", False)))


def validate_metadata(metadata: Mapping[str, Any], where: str) -> None:
    """Refuse a ``detection`` section (or outputs) this runtime cannot use."""
    def fail(message: str) -> PackageError:
        return PackageError(f"{where}: {message}")

    if "predictions" not in (metadata.get("outputs") or {}):
        raise fail("a detection package needs a 'predictions' output")
    section = metadata.get("detection")
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise fail("the detection section must be an object")
    for key in ("confidence", "overlap"):
        value = section.get(key, 0.5)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) <= 1:
            raise fail(f"detection.{key} must be a number in (0, 1], got {value!r}")
    count = section.get("max_detections", 200)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_DETECTIONS:
        raise fail(f"detection.max_detections must be an integer in [1, {MAX_DETECTIONS}], got {count!r}")
    for key in ("rotated", "class_agnostic"):
        if not isinstance(section.get(key, False), bool):
            raise fail(f"detection.{key} must be true or false")
    tiling = section.get("tiling")
    if tiling is not None:
        tile = tiling.get("tile") if isinstance(tiling, Mapping) else None
        if not (isinstance(tile, list | tuple) and len(tile) == 2 and all(isinstance(v, int) and v > 0 for v in tile)):
            raise fail(f"detection.tiling.tile must be [width, height], got {tile!r}")
        inp = metadata.get("input") or {}
        if [inp.get("width"), inp.get("height")] != list(tile):
            raise fail(f"detection.tiling.tile {list(tile)} must equal the input size")
        overlap = tiling.get("overlap", 0.0)
        if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < 1:
            raise fail(f"detection.tiling.overlap must be in [0, 1), got {overlap!r}")


# ----------------------------------------------------------------------------------------------- geometry


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(n, 4)`` and ``(m, 4)`` ``x1 y1 x2 y2`` boxes: ``(n, m)``."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _covariance(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w2, h2 = boxes[:, 2] ** 2 / 12, boxes[:, 3] ** 2 / 12
    cos, sin = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    return w2 * cos ** 2 + h2 * sin ** 2, w2 * sin ** 2 + h2 * cos ** 2, (w2 - h2) * cos * sin


def probiou(a: np.ndarray, b: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """ProbIoU of ``(n, 5)`` and ``(m, 5)`` rotated boxes ``cx cy w h angle(radians)``: ``(n, m)``.

    Each box is the Gaussian with the box's centre and covariance (uniform over the rectangle); the measure is
    ``1 - Hellinger distance`` of the two Gaussians (Bhattacharyya bound), 1 for identical boxes.
    """
    a, b = np.asarray(a, np.float64).reshape(-1, 5), np.asarray(b, np.float64).reshape(-1, 5)
    a1, b1, c1 = (v[:, None] for v in _covariance(a))
    a2, b2, c2 = (v[None, :] for v in _covariance(b))
    dx = a[:, None, 0] - b[None, :, 0]
    dy = a[:, None, 1] - b[None, :, 1]
    denom = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2 + eps
    t1 = ((a1 + a2) * dy ** 2 + (b1 + b2) * dx ** 2) / denom * 0.25
    t2 = ((c1 + c2) * (-dx) * dy) / denom * 0.5
    det1 = np.clip(a1 * b1 - c1 ** 2, 0, None)
    det2 = np.clip(a2 * b2 - c2 ** 2, 0, None)
    t3 = np.log(denom / (4 * np.sqrt(det1 * det2) + eps) + eps) * 0.5
    bd = np.clip(t1 + t2 + t3, eps, 100.0)
    return 1 - np.sqrt(1.0 - np.exp(-bd) + eps)


def nms(geometry: np.ndarray, scores: np.ndarray, threshold: float, rotated: bool = False,
        limit: int | None = None) -> np.ndarray:
    """Indices kept by greedy NMS, best score first (ties: the lower index first)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    geometry = np.asarray(geometry, np.float64)
    keep: list[int] = []
    overlap = probiou if rotated else box_iou
    while order.size:
        best = int(order[0])
        keep.append(best)
        if limit is not None and len(keep) >= limit:
            break
        rest = order[1:]
        if not rest.size:
            break
        ious = overlap(geometry[best:best + 1], geometry[rest])[0]
        order = rest[ious <= threshold]
    return np.asarray(keep, dtype=np.int64)


def rotated_corners(rotated: np.ndarray) -> np.ndarray:
    """``(n, 4, 2)`` corners of ``cx cy w h angle(radians)`` boxes (the width side first)."""
    r = np.asarray(rotated, np.float64).reshape(-1, 5)
    cos, sin = np.cos(r[:, 4]), np.sin(r[:, 4])
    u = np.stack([cos * r[:, 2] / 2, sin * r[:, 2] / 2], 1)
    v = np.stack([-sin * r[:, 3] / 2, cos * r[:, 3] / 2], 1)
    c = r[:, :2]
    return np.stack([c - u - v, c + u - v, c + u + v, c - u + v], 1)


# ----------------------------------------------------------------------------------------------- decoding


@dataclass
class Candidates:
    """Detections before NMS in one coordinate frame: ``geometry`` ``(n, 4)`` xyxy or ``(n, 5)`` xywhr."""

    geometry: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty(rotated: bool) -> Candidates:
        return Candidates(np.zeros((0, 5 if rotated else 4)), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def shifted(self, dx: float, dy: float) -> Candidates:
        g = self.geometry.copy()
        g[:, 0] += dx
        g[:, 1] += dy
        if g.shape[1] == 4:
            g[:, 2] += dx
            g[:, 3] += dy
        return Candidates(g, self.classes, self.scores)

    def scaled(self, sx: float, sy: float) -> Candidates:
        g = self.geometry.copy()
        if g.shape[1] == 4:
            g *= (sx, sy, sx, sy)
        elif len(g) and not math.isclose(sx, sy, rel_tol=1e-9):
            cos, sin = np.cos(g[:, 4]), np.sin(g[:, 4])
            u = np.stack([cos * g[:, 2] * sx, sin * g[:, 2] * sy], 1)  # width side after the scaling
            v = np.stack([-sin * g[:, 3] * sx, cos * g[:, 3] * sy], 1)
            g = np.stack([g[:, 0] * sx, g[:, 1] * sy, np.hypot(u[:, 0], u[:, 1]), np.hypot(v[:, 0], v[:, 1]),
                          np.arctan2(u[:, 1], u[:, 0])], 1)
        else:
            g[:, :4] *= sx
        return Candidates(g, self.classes, self.scores)

    @staticmethod
    def concat(parts: Sequence[Candidates], rotated: bool) -> Candidates:
        parts = [p for p in parts if len(p.scores)]
        if not parts:
            return Candidates.empty(rotated)
        return Candidates(np.concatenate([p.geometry for p in parts]), np.concatenate([p.classes for p in parts]),
                          np.concatenate([p.scores for p in parts]))


def decode(prediction: np.ndarray, classes: int, confidence: float, rotated: bool) -> Candidates:
    """One image's ``(4 + K [+ 1], A)`` model output -> candidates scoring at least ``confidence``."""
    p = np.asarray(prediction, np.float32)
    expected = 4 + classes + (1 if rotated else 0)
    if p.ndim != 2 or p.shape[0] != expected:
        raise PackageError(f"detection output must be ({expected}, anchors) per image, got {p.shape}")
    scores_all = p[4:4 + classes]
    best = scores_all.argmax(axis=0)
    score = scores_all[best, np.arange(p.shape[1])]
    keep = np.flatnonzero(score >= confidence)
    if keep.size > MAX_CANDIDATES:
        keep = keep[np.argsort(-score[keep], kind="stable")[:MAX_CANDIDATES]]
    cx, cy, w, h = (p[i, keep].astype(np.float64) for i in range(4))
    if rotated:
        geometry = np.stack([cx, cy, w, h, p[4 + classes, keep].astype(np.float64)], 1)
    else:
        geometry = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return Candidates(geometry, best[keep].astype(np.int64), score[keep].astype(np.float32))


def select(candidates: Candidates, overlap: float, max_detections: int, class_agnostic: bool,
           rotated: bool) -> Candidates:
    """NMS (per class unless ``class_agnostic``), then the ``max_detections`` best."""
    if not len(candidates.scores):
        return candidates
    geometry = candidates.geometry.copy()
    if not class_agnostic:  # move each class into its own far-away region so classes never overlap
        span = float(np.abs(geometry[:, :4]).max()) * 2 + 4096.0
        offset = candidates.classes.astype(np.float64) * span
        geometry[:, 0] += offset
        geometry[:, 1] += offset
        if not rotated:
            geometry[:, 2] += offset
            geometry[:, 3] += offset
    keep = nms(geometry, candidates.scores, overlap, rotated, limit=max_detections)
    return Candidates(candidates.geometry[keep], candidates.classes[keep], candidates.scores[keep])


# ----------------------------------------------------------------------------------------------- the head


class Detector(PackageHead):
    """Detection post-processing for a predictor: ``run`` maps an ``(N, C, h, w)`` batch to ``predictions``."""

    settings_class = DetectionSettings
    tunable = ("confidence", "overlap", "max_detections")

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], np.ndarray], where: str = "package") -> None:
        super().__init__(metadata, roi_mask, run, where)

    @property
    def rotated(self) -> bool:
        return self.settings.rotated

    def _outputs(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._run(np.ascontiguousarray(batch, dtype=np.float32)))
        if out.ndim != 3 or out.shape[0] != batch.shape[0]:
            raise PackageError(f"{self.where}: detection predictions must be (N, 4 + K, A) for {batch.shape[0]} "
                               f"images, got shape {out.shape}")
        return out

    def _crop(self, image: np.ndarray) -> tuple[int, int, int, int]:
        crop = self.roi.get("crop")
        if crop is None:
            return 0, 0, int(image.shape[1]), int(image.shape[0])
        return int(crop[0]), int(crop[1]), int(crop[2]), int(crop[3])

    def detect(self, images: Sequence[np.ndarray], batch_size: int = 8, *, confidence: float | None = None,
               overlap: float | None = None, max_detections: int | None = None,
               class_agnostic: bool | None = None) -> list[DetectionPrediction]:
        """Detect objects in ``images``; thresholds default to the package's."""
        s = self.settings
        conf = s.confidence if confidence is None else float(confidence)
        params = (s.overlap if overlap is None else float(overlap),
                  min(MAX_DETECTIONS, s.max_detections if max_detections is None else int(max_detections)),
                  s.class_agnostic if class_agnostic is None else bool(class_agnostic))
        batch_size = max(1, int(batch_size))
        results: list[DetectionPrediction] = []
        if self.tiled:
            for image in images:
                started = time.perf_counter()
                frame = dataset_image(image, self.meta_input)
                found = self._to_image(self._tiled(frame, batch_size, conf), frame, image)
                results.append(self._finish(found, params, started))
            return results
        for first in range(0, len(images), batch_size):
            started = time.perf_counter()
            chunk = images[first:first + batch_size]
            frames = [dataset_image(image, self.meta_input) for image in chunk]
            found = [self._to_image(candidates, frame, image)
                     for candidates, frame, image in zip(self._whole(frames, conf), frames, chunk, strict=True)]
            share = (time.perf_counter() - started) / len(chunk)
            for candidates in found:
                results.append(self._finish(candidates, params, time.perf_counter() - share))
        return results

    @staticmethod
    def _to_image(candidates: Candidates, frame: np.ndarray, image: np.ndarray) -> Candidates:
        """Boxes found on ``frame`` (the image at the dataset's size, see :func:`dataset_image`) in ``image``'s
        pixels; unchanged when both have one size."""
        (frame_h, frame_w), (height, width) = frame.shape[:2], np.shape(image)[:2]
        if (frame_h, frame_w) == (height, width):
            return candidates
        return candidates.scaled(width / frame_w, height / frame_h)

    def _whole(self, images: Sequence[np.ndarray], conf: float) -> list[Candidates]:
        batch = np.stack([preprocess(image, self.meta_input, self.roi, self.roi_mask) for image in images])
        outputs = self._outputs(batch)
        width, height = int(self.meta_input["width"]), int(self.meta_input["height"])
        found = []
        for image, out in zip(images, outputs, strict=True):
            x, y, w, h = self._crop(image)
            candidates = decode(out, len(self.categories), conf, self.rotated)
            found.append(candidates.scaled(w / width, h / height).shifted(x, y))
        return found

    def _tiled(self, image: np.ndarray, batch_size: int, conf: float) -> Candidates:
        assert self.settings.tile is not None
        tile_w, tile_h = self.settings.tile
        full = preprocess_full(image, self.meta_input, self.roi, self.roi_mask)
        height, width = full.shape[:2]
        origins = tile_grid(width, height, tile_w, tile_h, self.settings.tile_overlap)
        x0, y0, _, _ = self._crop(image)
        parts: list[Candidates] = []
        for first in range(0, len(origins), batch_size):
            group = origins[first:first + batch_size]
            tiles = np.stack([extract_tile(full, x, y, tile_w, tile_h).transpose(2, 0, 1) for x, y in group])
            for (x, y), out in zip(group, self._outputs(tiles), strict=True):
                candidates = decode(out, len(self.categories), conf, self.rotated)
                parts.append(candidates.shifted(x0 + x, y0 + y))
        if self.settings.whole_image:
            parts.extend(self._whole([image], conf))
        return Candidates.concat(parts, self.rotated)

    def _finish(self, candidates: Candidates, params: tuple[float, int, bool], started: float) -> DetectionPrediction:
        overlap, max_detections, agnostic = params
        kept = select(candidates, overlap, max_detections, agnostic, self.rotated)
        classes = kept.classes.astype(np.int64)
        rotated = None
        if self.rotated:
            g = kept.geometry
            corners = rotated_corners(g)
            boxes = np.concatenate([corners.min(1), corners.max(1)], 1).astype(np.float32)
            angle = np.degrees(g[:, 4]) % 180.0 if len(g) else np.zeros(0)
            rotated = np.concatenate([g[:, :4], angle[:, None]], 1).astype(np.float32) if len(g) else \
                np.zeros((0, 5), np.float32)
        else:
            boxes = kept.geometry.astype(np.float32).reshape(-1, 4)
        return DetectionPrediction(boxes=boxes, classes=classes, scores=kept.scores.astype(np.float32),
                                   labels=[self.categories[int(c)] for c in classes], categories=self.categories,
                                   rotated=rotated, ms=(time.perf_counter() - started) * 1000.0)


class DetectionHead(Detector):
    """The predictor's head for detection packages (see :mod:`astrocyte_lab.runtime.heads`)."""

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], dict[str, np.ndarray]], where: str = "package") -> None:
        output = metadata["outputs"]["predictions"]
        super().__init__(metadata, roi_mask, lambda batch: run(batch)[output], where)

    def predict(self, images: Sequence[np.ndarray], batch_size: int, **options: Any) -> list[DetectionPrediction]:
        return self.detect(images, batch_size, **options)
