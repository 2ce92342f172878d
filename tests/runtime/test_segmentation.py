"""Segmentation packages: untiled and tiled prediction against a numpy reference of a per-pixel model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from astrocyte_lab.runtime import (
    PackageError,
    SegmentationPrediction,
    load_package,
    preprocess,
    preprocess_full,
    write_package,
)
from astrocyte_lab.runtime.segmentation import Segmenter, resize_probabilities, summarise, to_canvas

from .conftest import PointwiseModel, pointwise_model, segmentation_metadata

CATEGORIES = ["background", "scratch", "dent"]


def random_image(seed: int, height: int = 37, width: int = 53, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write(tmp_path: Path, name: str, model: PointwiseModel, metadata: dict[str, Any], **kwargs: Any) -> Path:
    return write_package(tmp_path / name, model.onnx_bytes, metadata, **kwargs)


def untiled_reference(model: PointwiseModel, meta: dict[str, Any], image: np.ndarray,
                      mask: np.ndarray | None = None) -> np.ndarray:
    """Probabilities at the crop box's size: the model on the preprocessed image, resized back."""
    x = preprocess(image, meta["input"], meta["roi"], mask)
    probs = model.reference(x[None])[0].astype(np.float32)
    crop = meta["roi"]["crop"]
    height, width = (image.shape[0], image.shape[1]) if crop is None else (crop[3], crop[2])
    return resize_probabilities(probs, width, height)


def test_untiled_prediction_matches_the_reference(tmp_path: Path) -> None:
    model = pointwise_model()
    meta = segmentation_metadata(CATEGORIES)
    predictor = load_package(write(tmp_path, "seg.astromodel", model, meta))
    assert predictor.module == "segmentation" and predictor.categories == CATEGORIES
    image = random_image(0)
    result = predictor.predict(image)
    assert isinstance(result, SegmentationPrediction)
    assert result.mask.shape == (37, 53) and result.mask.dtype == np.uint8
    assert result.probabilities.shape == (3, 37, 53) and result.probabilities.dtype == np.float32
    expected = untiled_reference(model, predictor.metadata, image)
    assert np.allclose(result.probabilities, expected, atol=1e-5)
    assert np.allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(result.mask, np.argmax(result.probabilities, axis=0))
    assert result.categories == CATEGORIES and list(result.areas) == CATEGORIES
    assert sum(result.areas.values()) == 37 * 53
    assert result.areas == {name: int((result.mask == k).sum()) for k, name in enumerate(CATEGORIES)}
    assert np.isclose(result.score, expected.max(axis=0).mean(), atol=1e-5)
    assert result.ms > 0
    assert "mask" not in repr(result) and "areas" in repr(result)


def test_output_at_the_input_size_needs_no_resize(tmp_path: Path) -> None:
    model = pointwise_model(seed=1)
    meta = segmentation_metadata(CATEGORIES, width=53, height=37)
    predictor = load_package(write(tmp_path, "same.astromodel", model, meta))
    image = random_image(1)
    x = preprocess(image, meta["input"], meta["roi"])
    result = predictor.predict(image)
    assert np.allclose(result.probabilities, model.reference(x[None])[0], atol=1e-6)


def test_coarse_model_output_is_resized_to_the_image(tmp_path: Path) -> None:
    model = pointwise_model(seed=2, pool=2)
    predictor = load_package(write(tmp_path, "coarse.astromodel", model, segmentation_metadata(CATEGORIES)))
    result = predictor.predict(random_image(2))
    assert result.probabilities.shape == (3, 37, 53) and result.mask.shape == (37, 53)
    assert np.allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_resize_probabilities_keeps_the_sum_and_matches_the_image_resize() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random((4, 6, 9)).astype(np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    out = resize_probabilities(probs, 31, 17)
    assert out.shape == (4, 17, 31) and out.dtype == np.float32
    assert np.allclose(out.sum(axis=0), 1.0, atol=1e-5)
    from astrocyte_lab.runtime.preprocess import resize_bilinear

    for k in range(4):
        assert np.array_equal(out[k], resize_bilinear(probs[k][:, :, None], 31, 17)[:, :, 0])
    assert resize_probabilities(probs, 9, 6) is probs


def test_roi_crop_outside_and_ignored_pixels_are_background(tmp_path: Path) -> None:
    model = pointwise_model(seed=4, scale=4.0)
    crop = [5, 4, 30, 20]
    mask = np.full((20, 30), 255, np.uint8)
    mask[:, :10] = 0  # the crop's left third is ignored
    meta = segmentation_metadata(CATEGORIES, background=0, roi={"crop": crop, "mask": None})
    path = write(tmp_path, "roi.astromodel", model, meta, roi_mask=mask)
    predictor = load_package(path)
    image = random_image(4)
    result = predictor.predict(image)
    probs = result.probabilities
    assert probs.shape == (3, 37, 53)
    inside = np.zeros((37, 53), bool)
    inside[4:24, 5:35] = True
    used = np.zeros((37, 53), bool)
    used[4:24, 15:35] = True
    assert np.all(result.mask[~used] == 0)
    assert np.all(probs[0][~used] == 1.0) and np.all(probs[1:][:, ~used] == 0.0)
    meta = predictor.metadata
    expected = untiled_reference(model, meta, image, mask)
    assert np.allclose(probs[:, 4:24, 15:35], expected[:, :, 10:], atol=1e-5)
    assert np.isclose(result.score, expected[:, :, 10:].max(axis=0).mean(), atol=1e-5)  # the used pixels only
    assert sum(result.areas.values()) == 37 * 53
    assert result.areas["background"] >= int((~used).sum())
    assert len(np.unique(result.mask[used])) > 1  # the model does say something inside the ROI


def test_background_index_other_than_zero(tmp_path: Path) -> None:
    model = pointwise_model(seed=5)
    meta = segmentation_metadata(["scratch", "dent", "clean"], background=2,
                                 roi={"crop": [10, 10, 20, 15], "mask": None})
    result = load_package(write(tmp_path, "bg2.astromodel", model, meta)).predict(random_image(5))
    outside = np.ones((37, 53), bool)
    outside[10:25, 10:30] = False
    assert np.all(result.mask[outside] == 2) and np.all(result.probabilities[2][outside] == 1.0)


def test_tiled_and_untiled_agree_for_a_pointwise_model(tmp_path: Path) -> None:
    model = pointwise_model(seed=6, scale=3.0)
    tile_w, tile_h = 16, 12
    static = pointwise_model(seed=6, scale=3.0, height=tile_h, width=tile_w)  # same weights, fixed tile shape
    crop = [3, 2, 47, 33]
    roi = {"crop": crop, "mask": None}
    mask = np.full((33, 47), 255, np.uint8)
    mask[20:, 30:] = 0
    untiled = load_package(write(tmp_path, "untiled.astromodel", model,
                                 segmentation_metadata(CATEGORIES, width=47, height=33, roi=roi), roi_mask=mask))
    image = random_image(6, height=40, width=55)
    plain = untiled.predict(image)
    for overlap in (0.0, 0.25, 0.5):
        tiling = {"tile": [tile_w, tile_h], "overlap": overlap}
        meta = segmentation_metadata(CATEGORIES, width=tile_w, height=tile_h, tiling=tiling, roi=roi)
        tiled = load_package(write(tmp_path, f"tiled{overlap}.astromodel", static, meta, roi_mask=mask))
        result = tiled.predict(image)
        assert result.probabilities.shape == (3, 40, 55)
        assert np.allclose(result.probabilities, plain.probabilities, atol=2e-6)
        assert np.array_equal(result.mask, plain.mask)
        assert result.areas == plain.areas and result.label == plain.label
        assert np.isclose(result.score, plain.score, atol=1e-6)


def test_tiled_single_tile_larger_than_the_image(tmp_path: Path) -> None:
    model = pointwise_model(seed=7, height=64, width=64)
    meta = segmentation_metadata(CATEGORIES, width=64, height=64, tiling={"tile": [64, 64], "overlap": 0.25})
    predictor = load_package(write(tmp_path, "big.astromodel", model, meta))
    image = random_image(7, height=20, width=30)
    result = predictor.predict(image)
    full = preprocess_full(image, meta["input"], meta["roi"])
    expected = model.reference(full.transpose(2, 0, 1)[None])[0]
    assert result.mask.shape == (20, 30)
    assert np.allclose(result.probabilities, expected, atol=1e-6)


def test_predict_batch_equals_predict(tmp_path: Path) -> None:
    images = [random_image(10 + i, height=30 + i, width=41 + 2 * i) for i in range(5)]
    untiled = load_package(write(tmp_path, "u.astromodel", pointwise_model(seed=8), segmentation_metadata()))
    tiling = {"tile": [16, 16], "overlap": 0.25}
    tiled = load_package(write(tmp_path, "t.astromodel", pointwise_model(seed=8, height=16, width=16),
                               segmentation_metadata(width=16, height=16, tiling=tiling)))
    for predictor in (untiled, tiled):
        batch = predictor.predict_batch(images, batch_size=2)
        assert len(batch) == 5
        for image, result in zip(images, batch, strict=True):
            single = predictor.predict(image)
            assert result.mask.shape == image.shape[:2]
            assert np.allclose(result.probabilities, single.probabilities, atol=1e-6)
            assert result.areas == single.areas and result.ms > 0
    assert untiled.predict_batch([]) == []


def test_grey_model_and_inputs(tmp_path: Path) -> None:
    model = pointwise_model(channels=1, classes=2, seed=9)
    meta = segmentation_metadata(["background", "defect"], channels=1)
    predictor = load_package(write(tmp_path, "grey.astromodel", model, meta))
    for image in (random_image(9, channels=1), random_image(9), Path(tmp_path / "x.png")):
        if isinstance(image, Path):
            from PIL import Image

            Image.fromarray(random_image(9, channels=1)).save(image)
        result = predictor.predict(image)
        assert result.mask.shape == (37, 53) and result.probabilities.shape == (2, 37, 53)


def test_label_and_score_rules() -> None:
    probs = np.zeros((3, 4, 5), np.float32)
    probs[0] = 1.0
    result = summarise(probs, CATEGORIES)
    assert result.label == "background" and result.score == 1.0
    assert result.areas == {"background": 20, "scratch": 0, "dent": 0}
    probs[:, 0, :3] = [[0.2], [0.8], [0.0]]  # 3 scratch pixels
    probs[:, 1, :2] = [[0.1], [0.3], [0.6]]  # 2 dent pixels
    result = summarise(probs, CATEGORIES)
    assert result.label == "scratch" and result.areas == {"background": 15, "scratch": 3, "dent": 2}
    assert np.isclose(result.score, (15 + 3 * 0.8 + 2 * 0.6) / 20)
    probs[:, 1, 2] = [0.1, 0.3, 0.6]  # a tie, 3 and 3: the lower index wins
    assert summarise(probs, CATEGORIES).label == "scratch"
    assert summarise(probs, CATEGORIES, background=1).label == "background"  # most non-"scratch" pixels
    with pytest.raises(ValueError, match="categories"):
        summarise(probs, CATEGORIES[:2])


def test_to_canvas() -> None:
    crop_probs = np.full((2, 2, 3), 0.5, np.float32)
    canvas = to_canvas(crop_probs, 4, 6, crop=[1, 2, 3, 2], used=np.array([[True, False, True]] * 2))
    assert canvas.shape == (2, 4, 6)
    assert np.all(canvas[0, :2] == 1) and np.all(canvas[1, :2] == 0)
    assert np.all(canvas[:, 2:, 1] == 0.5) and np.all(canvas[0, 2:, 2] == 1) and np.all(canvas[1, 2:, 2] == 0)
    assert np.all(crop_probs == 0.5)  # the input is not modified
    with pytest.raises(ValueError, match="image"):
        to_canvas(crop_probs, 4, 6)


def test_preprocess_full_is_preprocess_without_the_resize() -> None:
    meta = segmentation_metadata(width=30, height=20)
    roi = {"crop": [5, 4, 30, 20], "mask": None}
    mask = np.full((20, 30), 255, np.uint8)
    mask[3:9, 7:12] = 0
    image = random_image(11)
    full = preprocess_full(image, meta["input"], roi, mask)
    assert full.shape == (20, 30, 3) and full.dtype == np.float32 and full.flags.c_contiguous
    assert np.array_equal(full.transpose(2, 0, 1), preprocess(image, meta["input"], roi, mask))
    assert np.all(full[3:9, 7:12] == 0)
    with pytest.raises(ValueError, match="ROI mask"):
        preprocess_full(image, meta["input"], roi, mask[:10])


@pytest.mark.parametrize(("change", "message"), [
    ({"outputs": {"logits": "probabilities"}}, "'probabilities' output"),
    ({"categories": []}, "at least one category"),
    ({"categories": [f"c{i}" for i in range(257)]}, "at most 256"),
    ({"segmentation": {"background": 3}}, "segmentation.background"),
    ({"segmentation": {"background": None}}, "segmentation.background"),
    ({"segmentation": {"tiling": {"tile": [16, 16], "overlap": 0.25}}}, "must equal the input size"),
    ({"segmentation": {"tiling": {"tile": [24], "overlap": 0.25}}}, "tiling.tile"),
    ({"segmentation": {"tiling": {"tile": [24, 16], "overlap": 1.0}}}, "tiling.overlap"),
    ({"segmentation": {"tiling": [24, 16]}}, "tiling must be an object"),
    ({"segmentation": {"colours": [[0, 0, 0]]}}, "segmentation.colours"),
    ({"segmentation": {"colours": [[0, 0, 0], [1, 2, 3], [4, 5, 256]]}}, "segmentation.colours"),
    ({"segmentation": "tiled"}, "segmentation must be an object"),
])
def test_metadata_validation(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    meta = segmentation_metadata(CATEGORIES)
    meta.update(change)
    with pytest.raises(PackageError, match=message):
        write(tmp_path, "bad.astromodel", pointwise_model(), meta)


def test_segmentation_section_is_optional(tmp_path: Path) -> None:
    meta = segmentation_metadata(CATEGORIES)
    del meta["segmentation"]
    result = load_package(write(tmp_path, "plain.astromodel", pointwise_model(), meta)).predict(random_image(12))
    assert result.background == 0 and result.mask.shape == (37, 53)


def test_model_must_match_the_categories(tmp_path: Path) -> None:
    meta = segmentation_metadata(["background", "scratch"])
    path = write(tmp_path, "k.astromodel", pointwise_model(classes=3), meta)
    with pytest.raises(PackageError, match="3 probability maps but the metadata lists 2"):
        load_package(path)
    # a model whose K is not known before running (onnxruntime infers it for the Conv graph, so fake the run)
    wrong = Segmenter(meta, None, lambda batch: np.zeros((batch.shape[0], 3, 16, 24), np.float32), "dyn")
    with pytest.raises(PackageError, match="dyn: the model gives 3 probability maps for 2 categories"):
        wrong.segment([random_image(13)], 8)
    flat = Segmenter(meta, None, lambda batch: np.zeros((batch.shape[0], 2), np.float32), "flat")
    with pytest.raises(PackageError, match=r"must be \(N, K, H, W\)"):
        flat.segment([random_image(13)], 8)
