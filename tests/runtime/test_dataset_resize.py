"""Train/deploy parity when the dataset was generated smaller than its source images (issue 20).

Generation shrinks with OpenCV's ``INTER_AREA``; a package records that size (``input.dataset_resize``) and its
runtime repeats the shrink with :func:`resize_area` before the ROI crop, so the original camera-size files give
the pixels the model was trained and tested on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.data.correction import resize as generation_resize
from astrocyte_lab.runtime import PackageError, load_package, read_package, write_package
from astrocyte_lab.runtime.anomaly import AnomalyScorer
from astrocyte_lab.runtime.detection import DetectionHead
from astrocyte_lab.runtime.preprocess import area_factor, dataset_image, preprocess, preprocess_full, resize_area
from astrocyte_lab.runtime.segmentation import at_size

from .conftest import classification_metadata, pointwise_model, segmentation_metadata, tiny_model

RESIZED = {"width": 40, "height": 30, "method": "area"}


def _sizes() -> list[tuple[int, int, int, int]]:
    """``(src_w, src_h, w, h)``: random fractional ratios, whole factors (OpenCV's box-sum path), one side kept."""
    rng = np.random.default_rng(20)
    cases = []
    for _ in range(40):
        src_w, src_h = (int(v) for v in rng.integers(2, 300, 2))
        cases.append((src_w, src_h, int(rng.integers(1, src_w + 1)), int(rng.integers(1, src_h + 1))))
    cases += [(37 * fx, 23 * fy, 37, 23) for fx, fy in [(2, 2), (3, 3), (2, 3), (4, 4), (3, 2), (6, 4), (8, 8),
                                                        (1, 2), (2, 1)]]
    cases += [(2592, 2048, 1024, 809), (800, 600, 256, 192), (600, 800, 256, 341), (101, 7, 100, 3)]
    return [case for case in cases if case[:2] != case[2:]]


def _image(rng: np.random.Generator, height: int, width: int, channels: int, dtype: type) -> np.ndarray:
    if dtype is np.float32:
        return rng.random((height, width, channels), dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, (height, width, channels)).astype(dtype)


# ------------------------------------------------------------------------------------------------- resize_area

@pytest.mark.parametrize("size", _sizes(), ids=lambda s: "{}x{}-{}x{}".format(*s))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_area_resize_equals_opencv(size: tuple[int, int, int, int], channels: int, dtype: type) -> None:
    """Bit-exact for 8 and 16 bits (OpenCV's rounding: half to even, ``(sum + 2) >> 2`` for 2 x 2)."""
    src_w, src_h, width, height = size
    image = _image(np.random.default_rng(sum(size) + channels), src_h, src_w, channels, dtype)
    expected = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, channels)
    got = resize_area(image, width, height)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if dtype is np.float32:
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)


def test_area_resize_whole_factors_take_the_box_sum_path() -> None:
    assert area_factor(74, 37) == 2 and area_factor(2592, 864) == 3 and area_factor(2592, 1024) == 0
    assert area_factor(10, 10) == 1


def test_area_resize_bands_on_threads_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    preprocess_module = sys.modules[resize_area.__module__]
    image = _image(np.random.default_rng(3), 700, 900, 3, np.uint8)
    threaded = resize_area(image, 333, 257)
    monkeypatch.setattr(preprocess_module, "PARALLEL_MIN_VALUES", 1 << 60)
    monkeypatch.setattr(preprocess_module, "AREA_BAND_ROWS", 10_000)
    np.testing.assert_array_equal(threaded, resize_area(image, 333, 257))


def test_area_resize_keeps_the_size_and_refuses_to_enlarge() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    assert resize_area(image, 4, 3) is image
    with pytest.raises(ValueError, match="only shrinks"):
        resize_area(image, 5, 2)


# ----------------------------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize(("shape", "dtype"), [((90, 120, 3), np.uint8), ((90, 120), np.uint16),
                                              ((30, 50, 3), np.uint8), ((20, 80, 1), np.uint8)])
def test_dataset_image_repeats_the_generation_resize(shape: tuple[int, ...], dtype: type) -> None:
    """Shrinking both sides is OpenCV's area resize, exactly; otherwise bilinear, within one grey level."""
    channels = shape[2] if len(shape) == 3 else 1
    image = _image(np.random.default_rng(4), shape[0], shape[1], channels, dtype).reshape(shape)
    got = dataset_image(image, {"dataset_resize": RESIZED})
    expected = generation_resize(image.reshape(shape[0], shape[1], channels), (40, 30))
    assert got.shape[:2] == (30, 40) and got.dtype == dtype
    difference = np.abs(got.astype(int) - expected.reshape(got.shape).astype(int)).max()
    assert difference == 0 if shape[0] > 30 and shape[1] > 40 else difference <= 1


def test_without_dataset_resize_the_image_is_kept() -> None:
    """Packages made before ``input.dataset_resize`` resize straight to the input size, as they always did."""
    image = _image(np.random.default_rng(5), 90, 120, 3, np.uint8)
    meta = classification_metadata()["input"]
    assert dataset_image(image, meta) is image
    scaled = cv2.resize(image.astype(np.float32) / 255, (24, 16), interpolation=cv2.INTER_LINEAR)
    expected = ((scaled - 0.5) / 0.25).transpose(2, 0, 1)
    np.testing.assert_allclose(preprocess(image, meta), expected, atol=1e-5)


def test_the_roi_crop_and_mask_apply_after_the_dataset_resize() -> None:
    """Generation shrinks first and the ROI is drawn on the stored image: the runtime keeps that order."""
    source = _image(np.random.default_rng(6), 75, 100, 3, np.uint8)
    stored = cv2.resize(source, (40, 30), interpolation=cv2.INTER_AREA)
    meta = {**classification_metadata()["input"], "dataset_resize": RESIZED}
    roi = {"crop": [6, 4, 24, 16], "mask": "roi_mask.png"}
    mask = np.full((16, 24), 255, np.uint8)
    mask[:5, :7] = 0
    np.testing.assert_array_equal(preprocess(source, meta, roi, mask), preprocess(stored, meta, roi, mask))
    np.testing.assert_array_equal(preprocess_full(source, meta, roi, mask), preprocess_full(stored, meta, roi, mask))
    whole = np.full((30, 40), 255, np.uint8)  # without a crop the ROI mask has the dataset's size
    np.testing.assert_array_equal(preprocess(source, meta, None, whole), preprocess(stored, meta, None, whole))


# ------------------------------------------------------------------------------------------------------ package

def test_packages_with_dataset_resize_are_format_version_2(tmp_path: Path) -> None:
    """Older readers refuse them (they would skip the resize); packages without it stay readable as version 1."""
    model = tiny_model()
    meta = classification_metadata()
    meta["input"]["dataset_resize"] = RESIZED
    metadata, _ = read_package(write_package(tmp_path / "new.astromodel", model.onnx_bytes, meta))
    assert metadata["format_version"] == 2 and metadata["input"]["dataset_resize"] == RESIZED
    metadata, _ = read_package(write_package(tmp_path / "old.astromodel", model.onnx_bytes, classification_metadata()))
    assert metadata["format_version"] == 1


@pytest.mark.parametrize(("section", "message"), [
    ([40, 30], "must be an object"),
    ({"width": 0, "height": 30, "method": "area"}, "dataset_resize.width must be a positive integer"),
    ({"width": 40, "height": 2.5, "method": "area"}, "dataset_resize.height must be a positive integer"),
    ({"width": 40, "height": 30, "method": "lanczos"}, "method 'lanczos' is not supported"),
    ({"width": 10**6, "height": 10**6, "method": "area"}, "dataset_resize"),
])
def test_bad_dataset_resize_is_refused(tmp_path: Path, section: object, message: str) -> None:
    meta = classification_metadata()
    meta["input"]["dataset_resize"] = section
    with pytest.raises(PackageError, match=message):
        write_package(tmp_path / "bad.astromodel", tiny_model().onnx_bytes, meta)


# -------------------------------------------------------------------------------------------------------- heads

@pytest.mark.parametrize("tiling", [None, {"tile": [16, 12], "overlap": 0.25}])
def test_segmentation_works_on_the_dataset_frame_and_answers_at_the_image_size(tmp_path: Path,
                                                                                tiling: dict | None) -> None:
    model = pointwise_model()
    meta = segmentation_metadata(width=16, height=12, tiling=tiling, roi={"crop": [4, 3, 32, 24], "mask": None})
    meta["input"]["dataset_resize"] = RESIZED
    predictor = load_package(write_package(tmp_path / "seg.astromodel", model.onnx_bytes, meta))
    source = _image(np.random.default_rng(7), 75, 100, 3, np.uint8)
    got = predictor.predict(source)
    on_stored = predictor.predict(cv2.resize(source, (40, 30), interpolation=cv2.INTER_AREA))
    assert got.mask.shape == (75, 100) and got.probabilities.shape == (3, 75, 100)
    assert got.score == on_stored.score
    np.testing.assert_array_equal(got.probabilities, at_size(on_stored, 75, 100).probabilities)
    assert np.all(got.mask[:5] == 0) and np.all(got.mask[:, :8] == 0)  # above / left of the crop (4, 3) * 2.5


@pytest.mark.parametrize("tiling", [None, {"tile": [20, 16], "overlap": 0.25}])
def test_detection_boxes_come_back_in_the_image_pixels(tiling: dict | None) -> None:
    from .test_detection import BrightSpot, metadata

    meta = metadata(width=20, height=16, tiling=tiling, crop=[4, 2, 32, 24])
    meta["input"]["dataset_resize"] = RESIZED
    source = np.zeros((75, 100, 3), np.uint8)
    source[40:45, 60:65] = 255  # stored at about (24.8, 16.8): inside the crop
    box = DetectionHead(meta, None, BrightSpot()).predict([source], 4)[0].boxes[0]
    assert (box[0] + box[2]) / 2 == pytest.approx(62.5, abs=2.5) and (box[1] + box[3]) / 2 == pytest.approx(42.5,
                                                                                                             abs=2.5)


def test_anomaly_heatmap_comes_back_at_the_image_size() -> None:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        maps = batch.mean(axis=1, keepdims=True)
        return {"score": maps.max(axis=(1, 2, 3)), "anomaly_map": maps}

    meta = {"categories": ["Normal", "Anomaly"], "outputs": {"score": "score", "anomaly_map": "anomaly_map"},
            "input": {**classification_metadata(width=20, height=15)["input"], "dataset_resize": RESIZED},
            "roi": {"crop": [4, 2, 32, 24], "mask": None}, "anomaly": {"threshold": 0.5}}
    scorer = AnomalyScorer(meta, None, run)
    source = _image(np.random.default_rng(8), 75, 100, 3, np.uint8)
    got = scorer.predict([source], 1)[0]
    on_stored = scorer.predict([cv2.resize(source, (40, 30), interpolation=cv2.INTER_AREA)], 1)[0]
    assert got.score == on_stored.score and got.heatmap.shape == (75, 100)
    assert np.all(got.heatmap[:4] == 0) and np.all(got.heatmap[:, :9] == 0)  # outside the crop, scaled by 2.5


# ----------------------------------------------------------------------------------------- train, export, deploy

def _anomaly_helpers():
    path = Path(__file__).resolve().parents[1] / "modules" / "anomaly" / "conftest.py"
    spec = importlib.util.spec_from_file_location("anomaly_test_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("anomaly_test_data", module)
    spec.loader.exec_module(module)
    return module


def test_package_fed_the_source_files_matches_the_workspace_on_a_shrunk_dataset(tmp_path: Path) -> None:
    """160 x 160 sources generated at 64 x 64 (a fractional 2.5 area shrink), a ROI crop on the stored images;
    the package fed the original files scores like the workspace's own test on the stored images."""
    from astrocyte_lab import Workspace
    from astrocyte_lab.data.generate import GenerationOptions
    from astrocyte_lab.data.sources import Location, NamedSet
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import load_network, torch_scorer, train

    source = _anomaly_helpers().write_images(tmp_path / "images", normal=12, anomalies=4, size=160)
    ws = Workspace(tmp_path / "ws")
    dataset = ws.create_dataset("big", "anomaly", [
        NamedSet("good", [Location(source / "good", category="Normal")]),
        NamedSet("bad", [Location(source / "bad", category="Anomaly")], masks=Location(source / "masks"))],
        options=GenerationOptions(max_size=(64, 64)), seed=0)
    ignored = np.zeros((64, 64), bool)
    ignored[:, :5] = True  # a ROI on the stored images: crop [5, 0, 59, 64]
    dataset.set_roi(ignored)
    dataset.save()
    train(ws, "big", "pc", AnomalyConfig(seed=0, pretrained=False, layout_model=False, defect_segmenter=False))
    predictor = load_package(export_package(ws, "pc", tmp_path / "pc.astromodel"))
    net, record, spec = load_network(ws, "pc")
    workspace = torch_scorer(net, spec, record["anomaly"])
    ids = [int(i) for i in dataset.ids]
    stored = [dataset.image(i) for i in ids]
    files = [Path(dataset.table.loc[i, "source"]) for i in ids]
    assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape[:2] == (160, 160) for f in files)
    from_files = predictor.predict_batch(files, batch_size=4)
    from_stored = predictor.predict_batch(stored, batch_size=4)
    tested = workspace.predict(stored, 4)
    for file, stored_result, test in zip(from_files, from_stored, tested, strict=True):
        assert file.score == pytest.approx(stored_result.score, rel=1e-4, abs=1e-4)
        assert file.score == pytest.approx(test.score, rel=1e-3, abs=1e-3)
        assert file.label == stored_result.label and file.heatmap.shape == (160, 160)
        assert np.all(file.heatmap[:, :10] == 0)  # left of the crop (x < 5 stored, 12.5 source; the edge blends)
    assert predictor.metadata["input"]["dataset_resize"] == {"width": 64, "height": 64, "method": "area"}
    assert predictor.metadata["format_version"] == 2
