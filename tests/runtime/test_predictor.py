"""The classification predictor against a numpy reference of the tiny model."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from astrocyte_lab.runtime import ContinualError, PackageError, Prediction, Predictor, load_package, preprocess
from astrocyte_lab.runtime.package import decode_mask

from .conftest import TinyModel, classification_metadata, tiny_model


def softmax(values: np.ndarray) -> np.ndarray:
    exp = np.exp(values - values.max())
    return exp / exp.sum()


def expected_scores(model: TinyModel, predictor: Predictor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    meta = predictor.metadata
    mask = None
    if meta["roi"]["mask"]:
        with zipfile.ZipFile(predictor.path) as archive:
            mask = decode_mask(archive.read(meta["roi"]["mask"]))
    x = preprocess(image, meta["input"], meta["roi"], mask)
    embedding, logits = model.reference(x[None])
    return softmax(logits[0]), embedding[0]


def random_image(seed: int, height: int = 37, width: int = 53, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_predict_matches_numpy_reference(make_package: Callable[..., Any]) -> None:
    path, model = make_package()
    predictor = load_package(path)
    assert predictor.categories == ["a", "b"] and predictor.module == "classification"
    assert predictor.input_size == (24, 16) and not predictor.is_continual
    for seed in range(4):
        image = random_image(seed)
        result = predictor.predict(image)
        probabilities, embedding = expected_scores(model, predictor, image)
        assert isinstance(result, Prediction)
        assert result.label == ["a", "b"][int(np.argmax(probabilities))]
        assert list(result.scores) == ["a", "b"]
        assert np.allclose(list(result.scores.values()), probabilities, atol=1e-5)
        assert abs(sum(result.scores.values()) - 1.0) < 1e-9
        assert result.score == max(result.scores.values())
        assert result.ms > 0 and result.similarity is None
        assert result.embedding is not None and np.allclose(result.embedding, embedding, atol=1e-5)


def test_inputs_path_pil_and_array_agree(make_package: Callable[..., Any], tmp_path: Path) -> None:
    path, _ = make_package()
    predictor = load_package(path)
    image = random_image(5)
    Image.fromarray(image).save(tmp_path / "img.png")
    from_array = predictor.predict(image)
    from_path = predictor.predict(tmp_path / "img.png")
    from_str = predictor.predict(str(tmp_path / "img.png"))
    with Image.open(tmp_path / "img.png") as pil:
        from_pil = predictor.predict(pil)
    for other in (from_path, from_str, from_pil):
        assert other.label == from_array.label and other.scores == from_array.scores
    with pytest.raises(ValueError, match="expected an image array"):
        predictor.predict(42)


def test_predict_batch_equals_single_predictions(make_package: Callable[..., Any]) -> None:
    path, _ = make_package()
    predictor = load_package(path)
    images = [random_image(seed, 30 + seed, 40 + 3 * seed) for seed in range(5)]
    batch = predictor.predict_batch(images, batch_size=2)
    assert len(batch) == 5
    for image, result in zip(images, batch, strict=True):
        single = predictor.predict(image)
        assert result.label == single.label
        assert np.allclose(list(result.scores.values()), list(single.scores.values()), atol=1e-6)
        assert result.ms > 0
    assert predictor.predict_batch([]) == []
    with pytest.raises(ValueError, match="batch_size"):
        predictor.predict_batch(images, batch_size=0)


def test_grey_model_takes_colour_and_grey_images(make_package: Callable[..., Any]) -> None:
    meta = classification_metadata(channels=1)
    path, model = make_package(model=tiny_model(channels=1), metadata=meta)
    predictor = load_package(path)
    colour = random_image(6)
    grey = random_image(7, channels=1)
    for image in (colour, grey, grey.astype(np.uint16) * 257):
        result = predictor.predict(image)
        probabilities, _ = expected_scores(model, predictor, image)
        assert np.allclose(list(result.scores.values()), probabilities, atol=1e-5)


def test_roi_package_uses_crop_and_mask(make_package: Callable[..., Any]) -> None:
    mask = np.full((16, 24), 255, np.uint8)
    mask[:, :8] = 0
    meta = classification_metadata(roi={"crop": [5, 3, 24, 16], "mask": None})
    path, model = make_package(metadata=meta, roi_mask=mask)
    predictor = load_package(path)
    image = random_image(8, 40, 50)
    result = predictor.predict(image)
    probabilities, _ = expected_scores(model, predictor, image)
    assert np.allclose(list(result.scores.values()), probabilities, atol=1e-5)
    changed = image.copy()
    changed[3:19, 5:13] = 0  # only ignored pixels change: the prediction does not
    assert predictor.predict(changed).scores == result.scores
    with pytest.raises(ValueError, match="does not fit"):
        predictor.predict(random_image(9, 10, 10))


def test_providers_and_threads(make_package: Callable[..., Any]) -> None:
    path, _ = make_package()
    assert load_package(path).providers == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in load_package(path, providers="auto", threads=1).providers
    with pytest.warns(RuntimeWarning, match="NoSuchExecutionProvider"):
        predictor = load_package(path, providers=["NoSuchExecutionProvider"])
    assert predictor.providers == ["CPUExecutionProvider"]
    assert "Predictor('tiny', classification, 2 categories, input 24x16" in repr(predictor)


def test_a_module_without_its_head_is_refused_by_name(make_package: Callable[..., Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from astrocyte_lab.runtime import heads

    monkeypatch.setitem(heads.HEADS, "detection", "astrocyte_lab.runtime.segmentation:SegmentationHead")
    meta = classification_metadata(module="detection", outputs={"boxes": "logits", "probabilities": "logits"})
    path, _ = make_package(metadata=meta)
    monkeypatch.setitem(heads.HEADS, "detection", "astrocyte_lab.runtime.no_such_head:Head")
    with pytest.raises(PackageError, match="cannot run detection packages"):
        load_package(path)


def test_metadata_is_a_copy(make_package: Callable[..., Any]) -> None:
    predictor = load_package(make_package()[0])
    predictor.metadata["categories"].append("x")
    predictor.categories.append("y")
    assert predictor.categories == ["a", "b"]


def test_learn_needs_a_continual_package(make_package: Callable[..., Any]) -> None:
    predictor = load_package(make_package()[0])
    with pytest.raises(ContinualError, match="no continual-learning state"):
        predictor.learn(random_image(11), "c")


def test_save_copies_a_plain_package(make_package: Callable[..., Any], tmp_path: Path) -> None:
    path, _ = make_package(extra_files={"extra.txt": b"kept"})
    predictor = load_package(path)
    copy_path = predictor.save(tmp_path / "sub" / "copy.astromodel")
    again = load_package(copy_path)
    image = random_image(12)
    assert again.predict(image).scores == predictor.predict(image).scores
    with zipfile.ZipFile(copy_path) as archive:
        assert archive.read("extra.txt") == b"kept"
