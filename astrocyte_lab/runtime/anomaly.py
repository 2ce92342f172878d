"""Anomaly detection packages: score, Normal/Anomaly label and heatmap of an image (numpy only).

The package's model has one input, ``image`` (see :mod:`astrocyte_lab.runtime.preprocess`), and two or three
outputs named in ``metadata["outputs"]``: ``score`` ``(N,)`` float32 (the model's own image score),
``anomaly_map`` ``(N, 1, h, w)`` float32 (per-pixel anomaly values at the network's input size, in the same
units as the score: the heatmap) and, optionally, ``score_map`` (same shape: the map that ``map_max`` takes
the score from when the heatmap carries a term the score leaves out; without it, ``anomaly_map``). The graph
does all the heavy work: feature extraction, distances to the memory bank (or the Gaussian / PCA model),
upsampling and smoothing. Its metadata holds an ``anomaly`` section::

    {"granularity": "pixel",          # pixel | pixel_low_res | image (informational)
     "algorithm": "patchcore",        # patchcore | padim | dfm (informational)
     "threshold": 2.31,               # score >= threshold -> categories[1] ("Anomaly"), else categories[0]
     "heatmap_ratio": 0.9,            # heatmap pixels shown: anomaly value >= heatmap_ratio * threshold
     "score": "map_max",              # map_max: the image score is the largest score-map value over the
                                      #   pixels the ROI uses; model: the ``score`` output (max over tiles)
     "heatmap": true,                 # false: the map carries no information, predictions have no heatmap
     "tiling": null or {"tile": [w, h], "overlap": 0.25}}   # tile == [input.width, input.height]

Categories are exactly two: ``[normal label, anomaly label]`` (``["Normal", "Anomaly"]``).

**Without tiling** the image is preprocessed whole (crop, scale, channels, resize, normalise, ROI mask), the
map comes back at the input size; the score is taken there (``map_max``: over the ROI-used pixels, the ROI
mask resized by nearest neighbour as in preprocessing) and the map is resized bilinearly to the crop box.
**With tiling** the normalised crop at full resolution is cut into tiles of the input size on the grid of
:func:`~astrocyte_lab.runtime.tiling.tile_grid` (border tiles padded with the tile's mean), the tile maps are
stitched with :func:`~astrocyte_lab.runtime.tiling.blend_weights` and the score is taken on the stitched map
(``model``: the largest tile score). Either way the heatmap is returned at the image's own resolution:
zero outside the crop box and on pixels the ROI mask ignores. With ``input.dataset_resize`` all of this
happens on the image brought to the dataset's size (the frame the crop refers to), and the heatmap is then
resized bilinearly to the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrocyte_lab.runtime.errors import PackageError
from astrocyte_lab.runtime.heads import PackageHead
from astrocyte_lab.runtime.preprocess import (
    _mask_used,
    dataset_image,
    preprocess,
    preprocess_full,
    resize_bilinear,
)
from astrocyte_lab.runtime.tiling import blend_weights, extract_tile, stitch, tile_grid

SCORE_MODES: tuple[str, ...] = ("map_max", "model")
DEFAULT_HEATMAP_RATIO = 0.9


@dataclass
class AnomalyPrediction:
    """One image's anomaly result.

    ``score`` is the anomaly score (higher = more anomalous, arbitrary units set by the training data);
    ``label`` is the anomaly category when ``score >= threshold``, else the normal one. ``heatmap`` ``(H, W)``
    float32 holds the per-pixel anomaly values at the image's resolution (None for models without a map);
    :attr:`region` marks the pixels at or above ``heatmap_ratio * threshold``. ``ms`` is the wall time from
    the call to the result, decoding and preprocessing included.
    """

    label: str
    score: float
    heatmap: np.ndarray | None = field(repr=False)
    threshold: float
    heatmap_ratio: float
    ms: float = 0.0

    @property
    def is_anomaly(self) -> bool:
        return self.score >= self.threshold

    @property
    def region(self) -> np.ndarray | None:
        """``(H, W)`` bool: heatmap pixels at or above the heatmap threshold (None without a heatmap)."""
        if self.heatmap is None:
            return None
        return self.heatmap >= self.heatmap_ratio * self.threshold


@dataclass(frozen=True)
class AnomalySettings:
    """The ``anomaly`` metadata section with defaults filled in."""

    threshold: float
    heatmap_ratio: float = DEFAULT_HEATMAP_RATIO
    score: str = "map_max"
    heatmap: bool = True
    tile: tuple[int, int] | None = None
    overlap: float = 0.0
    granularity: str = "pixel"
    algorithm: str = "patchcore"

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> AnomalySettings:
        section = metadata["anomaly"]
        tiling = section.get("tiling")
        return cls(threshold=float(section["threshold"]),
                   heatmap_ratio=float(section.get("heatmap_ratio", DEFAULT_HEATMAP_RATIO)),
                   score=str(section.get("score", "map_max")), heatmap=bool(section.get("heatmap", True)),
                   tile=None if tiling is None else (int(tiling["tile"][0]), int(tiling["tile"][1])),
                   overlap=0.0 if tiling is None else float(tiling.get("overlap", 0.0)),
                   granularity=str(section.get("granularity", "pixel")),
                   algorithm=str(section.get("algorithm", "patchcore")))


def _number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def validate_metadata(metadata: Mapping[str, Any], where: str = "package") -> None:
    """Raise :class:`PackageError` when the ``anomaly`` section or the outputs cannot be used."""
    def fail(message: str) -> PackageError:
        return PackageError(f"{where}: {message}")

    categories = metadata.get("categories") or []
    if len(categories) != 2:
        raise fail(f"an anomaly package has exactly two categories (normal, anomaly), got {categories!r}")
    section = metadata.get("anomaly")
    if not isinstance(section, Mapping):
        raise fail("an anomaly package needs an 'anomaly' section")
    if not _number(section.get("threshold")):
        raise fail(f"anomaly.threshold must be a finite number, got {section.get('threshold')!r}")
    ratio = section.get("heatmap_ratio", DEFAULT_HEATMAP_RATIO)
    if not _number(ratio) or float(ratio) <= 0:
        raise fail(f"anomaly.heatmap_ratio must be a positive number, got {ratio!r}")
    if section.get("score", "map_max") not in SCORE_MODES:
        raise fail(f"anomaly.score must be one of {', '.join(SCORE_MODES)}, got {section.get('score')!r}")
    if not isinstance(section.get("heatmap", True), bool):
        raise fail("anomaly.heatmap must be true or false")
    outputs = metadata.get("outputs") or {}
    needed = ["score"] + (["anomaly_map"] if section.get("heatmap", True) or
                          section.get("score", "map_max") == "map_max" else [])
    missing = [role for role in needed if role not in outputs]
    if missing:
        raise fail(f"an anomaly package needs the outputs {needed}, missing {missing}")
    tiling = section.get("tiling")
    if tiling is not None:
        if not isinstance(tiling, Mapping):
            raise fail("anomaly.tiling must be an object or null")
        tile = tiling.get("tile")
        if not isinstance(tile, list) or len(tile) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in tile):
            raise fail(f"anomaly.tiling.tile must be [width, height] positive integers, got {tile!r}")
        size = [metadata.get("input", {}).get("width"), metadata.get("input", {}).get("height")]
        if list(tile) != size:
            raise fail(f"anomaly.tiling.tile {tile} must equal the input size {size}")
        overlap = tiling.get("overlap", 0.0)
        if not _number(overlap) or not 0.0 <= float(overlap) < 1.0:
            raise fail(f"anomaly.tiling.overlap must be a number in [0, 1), got {overlap!r}")


def resize_map(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a 2-D float map to ``(height, width)`` bilinearly: :func:`resize_bilinear` on one plane."""
    return resize_bilinear(np.asarray(plane, dtype=np.float32)[:, :, None], width, height)[:, :, 0]


def image_tiles(full: np.ndarray, tile: tuple[int, int], overlap: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Origins and ``(T, C, th, tw)`` tiles of a normalised ``(H, W, C)`` crop (the training side uses it too)."""
    tile_w, tile_h = tile
    origins = tile_grid(full.shape[1], full.shape[0], tile_w, tile_h, overlap)
    tiles = np.stack([extract_tile(full, x, y, tile_w, tile_h).transpose(2, 0, 1) for x, y in origins])
    return origins, np.ascontiguousarray(tiles, dtype=np.float32)


class AnomalyScorer(PackageHead):
    """Scores, labels and heatmaps from a ``run`` that maps an ``(N, C, h, w)`` batch to the outputs.

    ``run`` returns a dict with the ONNX output names of ``metadata["outputs"]`` (the PyTorch evaluation
    passes a function returning the same names, so tests compare the very same post-processing).
    ``threshold`` / ``heatmap_ratio`` start from the metadata and may be changed on the object.
    """

    settings_class = AnomalySettings
    tunable = ("threshold", "heatmap_ratio")

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], Mapping[str, np.ndarray]], where: str = "package") -> None:
        super().__init__(metadata, roi_mask, run, where)
        self.threshold = self.settings.threshold
        self.heatmap_ratio = self.settings.heatmap_ratio
        self._score_name = metadata["outputs"]["score"]
        self._map_name = metadata["outputs"].get("anomaly_map")
        self._score_map_name = metadata["outputs"].get("score_map")

    def label(self, score: float) -> str:
        return self.categories[1] if score >= self.threshold else self.categories[0]

    def predict(self, images: Sequence[np.ndarray], batch_size: int) -> list[AnomalyPrediction]:
        """One prediction per image; untiled images run ``batch_size`` at a time, tiles ``batch_size`` at a time.

        Each image is first brought to the dataset's size (:func:`dataset_image`, a no-op for packages without
        ``input.dataset_resize`` and for images of that size); the heatmap is resized back to the image.
        """
        frames = [dataset_image(image, self.meta_input) for image in images]
        results = self._predict_frames(frames, batch_size)
        for image, result in zip(images, results, strict=True):
            height, width = np.shape(image)[:2]
            if result.heatmap is not None and result.heatmap.shape != (height, width):
                result.heatmap = resize_map(result.heatmap, width, height)
        return results

    def _predict_frames(self, images: Sequence[np.ndarray], batch_size: int) -> list[AnomalyPrediction]:
        if self.tiled:
            return [self._tiled(image, batch_size) for image in images]
        results: list[AnomalyPrediction] = []
        for first in range(0, len(images), batch_size):
            chunk = images[first:first + batch_size]
            batch = np.stack([preprocess(image, self.meta_input, self.roi, self.roi_mask) for image in chunk])
            scores, maps, score_maps = self._outputs(batch)
            for image, score, amap, score_map in zip(chunk, scores, maps, score_maps, strict=True):
                height, width = amap.shape[-2:]
                used = None if self.roi_mask is None else \
                    _mask_used(self.roi_mask, self._mask_shape(image), width, height) > 0.5
                results.append(self._finish(image, float(score), amap, used, resized=False, score_map=score_map))
        return results

    def _outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores ``(N,)``, heatmaps and score maps ``(N, h, w)`` (the same array without a ``score_map``)."""
        outputs = self._run(np.ascontiguousarray(batch, dtype=np.float32))
        scores = np.asarray(outputs[self._score_name], dtype=np.float32).reshape(-1)
        if scores.shape[0] != batch.shape[0]:
            raise PackageError(f"{self.where}: the model gives {scores.shape[0]} scores for {batch.shape[0]} images")
        if self._map_name is None:
            empty = np.zeros((batch.shape[0], batch.shape[2], batch.shape[3]), np.float32)
            return scores, empty, empty
        maps = self._plane(outputs, self._map_name, batch.shape[0])
        score_maps = maps if self._score_map_name is None else self._plane(outputs, self._score_map_name, len(batch))
        if score_maps.shape != maps.shape:
            raise PackageError(f"{self.where}: the score map {score_maps.shape} and the anomaly map {maps.shape} "
                               "must have one shape")
        return scores, maps, score_maps

    def _plane(self, outputs: Mapping[str, np.ndarray], name: str, count: int) -> np.ndarray:
        maps = np.asarray(outputs[name], dtype=np.float32)
        if maps.ndim != 4 or maps.shape[0] != count or maps.shape[1] != 1:
            raise PackageError(f"{self.where}: the output {name!r} must be (N, 1, H, W) for {count} images, "
                               f"got shape {maps.shape}")
        return maps[:, 0]

    def _mask_shape(self, image: np.ndarray) -> tuple[int, int]:
        crop = self.roi.get("crop")
        return (int(crop[3]), int(crop[2])) if crop is not None else (int(image.shape[0]), int(image.shape[1]))

    def _tiled(self, image: np.ndarray, batch_size: int) -> AnomalyPrediction:
        assert self.settings.tile is not None
        tile_w, tile_h = self.settings.tile
        full = preprocess_full(image, self.meta_input, self.roi, self.roi_mask)
        origins, tiles = image_tiles(full, self.settings.tile, self.settings.overlap)
        scores, maps, score_maps = [], [], []
        for first in range(0, len(tiles), batch_size):
            tile_scores, tile_maps, tile_score_maps = self._outputs(tiles[first:first + batch_size])
            scores.extend(tile_scores.tolist())
            maps.extend(resize_map(m, tile_w, tile_h)[None] for m in tile_maps)
            if self._score_map_name is not None:
                score_maps.extend(resize_map(m, tile_w, tile_h)[None] for m in tile_score_maps)
        height, width = full.shape[:2]
        weights = blend_weights(tile_w, tile_h, self.settings.overlap)
        stitched = stitch(maps, origins, width, height, weights)[0]
        score_map = stitch(score_maps, origins, width, height, weights)[0] if score_maps else None
        used = None if self.roi_mask is None else _mask_used(self.roi_mask, (height, width), width, height) > 0.5
        return self._finish(image, float(max(scores)), stitched, used, resized=True, score_map=score_map)

    def _finish(self, image: np.ndarray, model_score: float, amap: np.ndarray, used: np.ndarray | None,
                resized: bool, score_map: np.ndarray | None = None) -> AnomalyPrediction:
        if self.settings.score == "map_max":
            source = amap if score_map is None else score_map
            values = source if used is None else source[used]
            score = float(values.max()) if values.size else 0.0
        else:
            score = model_score
        heatmap = None
        if self.settings.heatmap:
            heatmap = self._canvas(image, amap, resized)
        return AnomalyPrediction(self.label(score), score, heatmap, self.threshold, self.heatmap_ratio)

    def _canvas(self, image: np.ndarray, amap: np.ndarray, resized: bool) -> np.ndarray:
        crop = self.roi.get("crop")
        crop_h, crop_w = self._mask_shape(image)
        inner = amap if resized else resize_map(amap, crop_w, crop_h)
        if self.roi_mask is not None:
            inner = np.where(_mask_used(self.roi_mask, (crop_h, crop_w), crop_w, crop_h) > 0.5, inner, 0.0)
        height, width = int(image.shape[0]), int(image.shape[1])
        x, y = (0, 0) if crop is None else (int(crop[0]), int(crop[1]))
        if (x, y, crop_w, crop_h) == (0, 0, width, height):
            return np.ascontiguousarray(inner, dtype=np.float32)
        canvas = np.zeros((height, width), np.float32)
        canvas[y:y + crop_h, x:x + crop_w] = inner
        return canvas


class AnomalyHead(AnomalyScorer):
    """The predictor's head for anomaly packages (see :mod:`astrocyte_lab.runtime.heads`)."""

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], dict[str, np.ndarray]], where: str = "package") -> None:
        super().__init__(metadata, roi_mask, run, where)
