"""Segmentation packages: from an image to a class mask at the image's own resolution (numpy only).

A segmentation package's model has one output, ``probabilities`` ``(N, K, h, w)`` float32 (softmax already
applied), channel ``k`` for ``categories[k]``. Its metadata may hold a ``segmentation`` section::

    {"background": 0,                                  # category index of "nothing" (default 0)
     "tiling": null or {"tile": [w, h], "overlap": 0.25},
     "colours": [[r, g, b], ...] or null}              # display colours; not used here

**Without tiling** the image goes through :func:`~astrocyte_lab.runtime.preprocess.preprocess` (crop, scale,
channels, resize to the input size, normalise, ROI mask), the model gives ``(K, h, w)`` probabilities and
these are resized back to the crop box's size, bilinearly and per class (:func:`resize_probabilities`, the
same arithmetic as the input resize).

**With tiling** the image is not resized: :func:`~astrocyte_lab.runtime.preprocess.preprocess_full` gives the
normalised crop at full resolution, it is cut into tiles of the input size (``tiling.tile``) on the grid of
:func:`~astrocyte_lab.runtime.tiling.tile_grid`, tiles that pass the border are padded with the tile's own
mean of the *normalised* values per channel, the tiles run through the model in batches and the results are
stitched with :func:`~astrocyte_lab.runtime.tiling.blend_weights` (see :mod:`astrocyte_lab.runtime.tiling`).

Both ways end in :func:`to_canvas`: the crop's probabilities are placed in a ``(K, H, W)`` canvas of the whole
image, where pixels outside the crop box and pixels the ROI mask ignores get probability 1 for the background
category; the mask is the per-pixel arg-max (ties go to the lower index). :func:`summarise` then gives the
label, score and areas (see :class:`SegmentationPrediction`). With ``input.dataset_resize`` all of this
happens on the image brought to the dataset's size (the frame the crop refers to), and :func:`at_size` then
resizes the probabilities to the image and takes mask, areas and label again.
"""

from __future__ import annotations

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

DEFAULT_TILE_BATCH = 8


@dataclass
class SegmentationPrediction:
    """One image's segmentation, at the original image's resolution.

    ``mask`` ``(H, W)`` uint8 holds category indices, ``probabilities`` ``(K, H, W)`` float32 the class
    probabilities (pixels outside the ROI crop box or ignored by the ROI mask: 1 for ``background``).
    ``areas`` counts the mask's pixels per category (all categories listed; the counts sum to ``H * W``).
    ``label`` is the non-background category with the most pixels (the lower index on a tie), or the
    background category when there is none; ``score`` is the mean of the per-pixel highest probability over
    the pixels the model saw (inside the crop box and used by the ROI mask). ``ms`` is the wall time from
    the call to the result, decoding and preprocessing included.
    """

    label: str
    score: float
    mask: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    categories: list[str]
    areas: dict[str, int]
    ms: float
    background: int = 0


@dataclass(frozen=True)
class SegmentationSettings:
    """The ``segmentation`` metadata section with its defaults filled in."""

    background: int = 0
    tile: tuple[int, int] | None = None  # (width, height); None: no tiling
    overlap: float = 0.0
    colours: list[tuple[int, int, int]] | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> SegmentationSettings:
        section = metadata.get("segmentation") or {}
        tiling = section.get("tiling")
        colours = section.get("colours")
        return cls(background=int(section.get("background", 0)),
                   tile=None if tiling is None else (int(tiling["tile"][0]), int(tiling["tile"][1])),
                   overlap=0.0 if tiling is None else float(tiling.get("overlap", 0.0)),
                   colours=None if colours is None else [(int(r), int(g), int(b)) for r, g, b in colours])


def resize_probabilities(probabilities: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``(K, h, w)`` maps to ``(K, height, width)`` float32, bilinearly per class.

    The arithmetic is :func:`~astrocyte_lab.runtime.preprocess.resize_bilinear` (OpenCV's ``INTER_LINEAR``:
    half-pixel centres, edges repeated), so the weights of each output pixel sum to 1 and probabilities
    still sum to 1 (up to float rounding). No copy when the size already matches.
    """
    array = np.asarray(probabilities, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected (K, h, w) maps, got shape {array.shape}")
    if array.shape[1:] == (height, width):
        return array
    out = np.empty((array.shape[0], height, width), dtype=np.float32)
    for k, plane in enumerate(array):  # one contiguous plane at a time: about 4x faster than channels-last
        out[k] = resize_bilinear(plane[:, :, None], width, height)[:, :, 0]
    return out


def roi_used(roi_mask: np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    """The ROI mask as an ``(height, width)`` bool array (True = used); it must already have that size."""
    if roi_mask is None:
        return None
    return _mask_used(roi_mask, expected=(height, width), width=width, height=height) > 0.5


def to_canvas(crop_probabilities: np.ndarray, image_height: int, image_width: int,
              crop: Sequence[int] | None = None, used: np.ndarray | None = None,
              background: int = 0) -> np.ndarray:
    """Place the crop box's ``(K, h, w)`` probabilities in the whole image's ``(K, H, W)`` float32 canvas.

    Pixels outside ``crop`` (``[x, y, w, h]``, or None for the whole image) and pixels where ``used`` (the
    crop-sized ROI mask, bool) is False get probability 1 for ``background`` and 0 for the rest.
    """
    probs = np.asarray(crop_probabilities, dtype=np.float32)
    classes, crop_h, crop_w = probs.shape
    x, y = (0, 0) if crop is None else (int(crop[0]), int(crop[1]))
    if crop is None and (crop_h, crop_w) != (image_height, image_width):
        raise ValueError(f"probabilities are {crop_w}x{crop_h} but the image is {image_width}x{image_height}")
    if used is not None:
        probs = probs.copy()
        ignored = ~np.asarray(used, dtype=bool)
        probs[:, ignored] = 0.0
        probs[background, ignored] = 1.0
    if (x, y, crop_w, crop_h) == (0, 0, image_width, image_height):
        return probs
    canvas = np.zeros((classes, image_height, image_width), dtype=np.float32)
    canvas[background] = 1.0
    canvas[:, y:y + crop_h, x:x + crop_w] = probs
    return canvas


def argmax_classes(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ``(arg-max as uint8, max)`` of ``(K, H, W)`` maps; ties go to the lower class index.

    Equal to ``np.argmax(p, axis=0)`` and ``p.max(axis=0)``, one contiguous plane at a time (faster for the
    handful of classes a segmentation model has).
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError(f"expected (K, H, W) maps with K >= 1, got shape {probs.shape}")
    if probs.shape[0] > 256:
        raise ValueError(f"at most 256 classes fit a uint8 mask, got {probs.shape[0]}")
    mask = np.zeros(probs.shape[1:], dtype=np.uint8)
    top = probs[0].astype(np.float32, copy=True)
    for k in range(1, probs.shape[0]):
        better = probs[k] > top
        np.copyto(mask, np.uint8(k), where=better)
        np.copyto(top, probs[k], where=better)
    return mask, top


def summarise(probabilities: np.ndarray, categories: Sequence[str], background: int = 0,
              seen: np.ndarray | tuple[slice, slice] | None = None) -> SegmentationPrediction:
    """Mask, label, score and areas of ``(K, H, W)`` probabilities (``ms`` left at 0).

    ``seen`` selects the pixels the score averages over: an ``(H, W)`` bool array, a ``(rows, cols)`` pair of
    slices, or None for all pixels.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    classes = probs.shape[0]
    if classes != len(categories):
        raise ValueError(f"{classes} probability maps for {len(categories)} categories")
    mask, top = argmax_classes(probs)
    counts = np.bincount(mask.reshape(-1), minlength=classes)
    areas = {name: int(count) for name, count in zip(categories, counts, strict=True)}
    others = counts.copy()
    others[background] = 0
    best = int(np.argmax(others)) if others.max() > 0 else background
    if seen is None:
        picked = top
    elif isinstance(seen, tuple):
        picked = top[seen]
    else:
        picked = top[np.asarray(seen, dtype=bool)]
    score = float(picked.mean(dtype=np.float64)) if picked.size else 1.0
    return SegmentationPrediction(label=categories[best], score=score, mask=mask, probabilities=probs,
                                  categories=list(categories), areas=areas, ms=0.0, background=background)


def at_size(prediction: SegmentationPrediction, height: int, width: int) -> SegmentationPrediction:
    """``prediction`` at another resolution: probabilities resized bilinearly, then mask, areas and label anew.

    The score stays the one computed where the model saw the pixels. No change when the size already matches.
    """
    if prediction.probabilities.shape[1:] == (height, width):
        return prediction
    probs = resize_probabilities(prediction.probabilities, width, height)
    result = summarise(probs, prediction.categories, prediction.background)
    result.score = prediction.score
    return result


class Segmenter(PackageHead):
    """Segmentation post-processing for a predictor: ``run`` maps an ``(N, C, h, w)`` batch to probabilities.

    ``run`` must return the model's ``(N, K, h, w)`` probabilities (any ``h, w``: they are resized to the
    input or tile size as needed). Images are ``(H, W)`` or ``(H, W, C)`` arrays.
    """

    settings_class = SegmentationSettings

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], np.ndarray], where: str = "package") -> None:
        super().__init__(metadata, roi_mask, run, where)

    def segment(self, images: Sequence[np.ndarray], batch_size: int) -> list[SegmentationPrediction]:
        """Segment ``images``; untiled images run ``batch_size`` at a time, tiles ``batch_size`` at a time.

        Each image is first brought to the dataset's size (:func:`dataset_image`, a no-op for packages without
        ``input.dataset_resize`` and for images of that size); the result is then resized back to the image.
        """
        frames = [dataset_image(image, self.meta_input) for image in images]
        results = self._segment_frames(frames, batch_size)
        return [at_size(result, *np.shape(image)[:2]) for image, result in zip(images, results, strict=True)]

    def _segment_frames(self, images: Sequence[np.ndarray], batch_size: int) -> list[SegmentationPrediction]:
        if self.tiled:
            return [self._tiled(image, batch_size) for image in images]
        results: list[SegmentationPrediction] = []
        for first in range(0, len(images), batch_size):
            chunk = images[first:first + batch_size]
            batch = np.stack([preprocess(image, self.meta_input, self.roi, self.roi_mask) for image in chunk])
            probabilities = self._probabilities(batch)
            for image, probs in zip(chunk, probabilities, strict=True):
                results.append(self._finish(image, probs))
        return results

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        probs = np.asarray(self._run(batch))
        if probs.ndim != 4 or probs.shape[0] != batch.shape[0]:
            raise PackageError(f"{self.where}: the model's probabilities must be (N, K, H, W) for "
                               f"{batch.shape[0]} images, got shape {probs.shape}")
        if probs.shape[1] != len(self.categories):
            raise PackageError(f"{self.where}: the model gives {probs.shape[1]} probability maps for "
                               f"{len(self.categories)} categories")
        return probs

    def _crop_box(self, image: np.ndarray) -> tuple[int, int, Sequence[int] | None]:
        """``(crop height, crop width, crop)`` of an image (preprocessing has already checked the box)."""
        crop = self.roi.get("crop")
        if crop is None:
            return int(image.shape[0]), int(image.shape[1]), None
        return int(crop[3]), int(crop[2]), crop

    def _tiled(self, image: np.ndarray, batch_size: int) -> SegmentationPrediction:
        assert self.settings.tile is not None
        tile_w, tile_h = self.settings.tile
        full = preprocess_full(image, self.meta_input, self.roi, self.roi_mask)
        height, width = full.shape[:2]
        origins = tile_grid(width, height, tile_w, tile_h, self.settings.overlap)
        outputs: list[np.ndarray] = []
        for first in range(0, len(origins), batch_size):
            tiles = [extract_tile(full, x, y, tile_w, tile_h).transpose(2, 0, 1)
                     for x, y in origins[first:first + batch_size]]
            for probs in self._probabilities(np.ascontiguousarray(np.stack(tiles))):
                outputs.append(resize_probabilities(probs, tile_w, tile_h))
        weights = blend_weights(tile_w, tile_h, self.settings.overlap)
        return self._finish(image, stitch(outputs, origins, width, height, weights), resized=True)

    def _finish(self, image: np.ndarray, probs: np.ndarray, resized: bool = False) -> SegmentationPrediction:
        crop_h, crop_w, crop = self._crop_box(image)
        if not resized:
            probs = resize_probabilities(probs, crop_w, crop_h)
        used = roi_used(self.roi_mask, crop_h, crop_w)
        background = self.settings.background
        canvas = to_canvas(probs, int(image.shape[0]), int(image.shape[1]), crop, used, background)
        x, y = (0, 0) if crop is None else (int(crop[0]), int(crop[1]))
        box = (slice(y, y + crop_h), slice(x, x + crop_w))
        if used is None:
            seen: np.ndarray | tuple[slice, slice] = box
        else:
            seen = np.zeros(canvas.shape[1:], dtype=bool)
            seen[box] = used
        return summarise(canvas, self.categories, background, seen)


class SegmentationHead(Segmenter):
    """The predictor's head for segmentation packages (see :mod:`astrocyte_lab.runtime.heads`)."""

    def __init__(self, metadata: Mapping[str, Any], roi_mask: np.ndarray | None,
                 run: Callable[[np.ndarray], dict[str, np.ndarray]], where: str = "package") -> None:
        output = metadata["outputs"]["probabilities"]
        super().__init__(metadata, roi_mask, lambda batch: run(batch)[output], where)

    def predict(self, images: Sequence[np.ndarray], batch_size: int) -> list[SegmentationPrediction]:
        return self.segment(images, batch_size)
