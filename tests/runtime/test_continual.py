"""Continual learning: prototype labels, Undefined, learn, save/reload, the class limit.

The model's embedding here is the normalised mean colour (identity projection), so with mean 0.5 and
std 0.25 a red image embeds to (2, -2, -2), green to (-2, 2, -2) and blue to (-2, -2, 2): pairwise cosine
similarity -1/3, far below the 0.6 threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from astrocyte_lab.runtime import ContinualError, Predictor, load_package, preprocess, read_package
from astrocyte_lab.runtime.package import decode_prototypes

from .conftest import colour_image, continual_metadata, tiny_model

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def embed(image: np.ndarray, predictor: Predictor) -> np.ndarray:
    return preprocess(image, predictor.metadata["input"]).astype(np.float64).mean(axis=(1, 2))


@pytest.fixture
def continual(make_package: Callable[..., Any]) -> Callable[..., Predictor]:
    """A continual package over the identity-embedding model, with given categories and prototypes."""

    def make(categories: list[str], prototypes: np.ndarray, counts: list[int] | None = None, **changes: Any
             ) -> Predictor:
        model = tiny_model(w=np.eye(3), b=np.zeros(3))
        meta = continual_metadata(categories, counts or [1] * len(categories), **changes)
        path, _ = make_package("continual.astromodel", model=model, metadata=meta,
                               prototypes=np.asarray(prototypes, dtype=np.float32).reshape(len(categories), 3))
        return load_package(path)

    return make


def test_labels_come_from_prototypes(continual: Callable[..., Predictor]) -> None:
    predictor = continual(["red", "green"], [unit(np.array([2, -2, -2.0])), unit(np.array([-2, 2, -2.0]))])
    assert predictor.is_continual and predictor.undefined_label == "Undefined"
    red = predictor.predict(colour_image(RED))
    assert red.label == "red" and red.similarity is not None and red.similarity > 0.99
    assert predictor.predict(colour_image(GREEN, seed=1)).label == "green"
    blue = predictor.predict(colour_image(BLUE, seed=2))
    assert blue.label == "Undefined" and blue.similarity is not None and blue.similarity < 0
    assert set(blue.scores) == {"red", "green"}  # scores stay over the known categories
    # scores are softmax(10 * cosine similarity)
    similarities = np.array([unit(embed(colour_image(RED), predictor)) @ unit(np.array(p)) for p in
                             ([2, -2, -2.0], [-2, 2, -2.0])])
    expected = np.exp(10 * similarities) / np.exp(10 * similarities).sum()
    assert np.allclose(list(red.scores.values()), expected, atol=1e-5)
    assert red.score == pytest.approx(expected[0], abs=1e-5)


def test_temperature_and_threshold_come_from_metadata(continual: Callable[..., Predictor]) -> None:
    prototypes = [unit(np.array([2, -2, -2.0])), unit(np.array([-2, 2, -2.0]))]
    soft = continual(["red", "green"], prototypes, threshold=-0.5, temperature=1.0)
    result = soft.predict(colour_image(BLUE))
    assert result.label in ("red", "green")  # the threshold -0.5 accepts a -1/3 similarity
    assert max(result.scores.values()) < 0.6  # temperature 1: a flat distribution


def test_learn_adds_classes_and_keeps_running_means(continual: Callable[..., Predictor], tmp_path: Path) -> None:
    predictor = continual(["red"], [unit(np.array([2, -2, -2.0]))], counts=[1])
    assert predictor.predict(colour_image(GREEN)).label == "Undefined"
    greens = [colour_image(GREEN, seed=s, noise=0.1) for s in range(3)]
    assert predictor.learn(greens[0], "green") == 1
    assert predictor.categories == ["red", "green"] and predictor.counts == [1, 1]
    assert predictor.learn(greens[1:], "green") == 3
    assert predictor.counts == [1, 3]
    expected = np.mean([unit(embed(g, predictor)) for g in greens], axis=0)
    assert np.allclose(predictor._prototypes[1], expected, atol=1e-6)
    assert predictor.predict(colour_image(GREEN, seed=9)).label == "green"
    assert predictor.learn(colour_image(RED, seed=3), "red") == 2
    assert predictor.predict(colour_image(BLUE)).label == "Undefined"

    saved = predictor.save(tmp_path / "learned.astromodel")
    metadata, files = read_package(saved)
    assert metadata["categories"] == ["red", "green"] and metadata["continual"]["counts"] == [2, 3]
    assert metadata["modified"] and metadata["created"]
    assert np.allclose(decode_prototypes(files["prototypes.npy"]), predictor._prototypes, atol=1e-6)
    reloaded = load_package(saved)
    for colour in (RED, GREEN, BLUE):
        image = colour_image(colour, seed=4)
        before, after = predictor.predict(image), reloaded.predict(image)
        assert before.label == after.label
        assert np.allclose(list(before.scores.values()), list(after.scores.values()), atol=1e-5)
    assert reloaded.learn(colour_image(BLUE), "blue") == 1  # learning goes on after a reload


def test_max_classes_is_enforced(continual: Callable[..., Predictor]) -> None:
    predictor = continual(["red"], [unit(np.array([2, -2, -2.0]))], max_classes=2)
    predictor.learn(colour_image(GREEN), "green")
    with pytest.raises(ContinualError, match="at most 2 classes"):
        predictor.learn(colour_image(BLUE), "blue")
    assert predictor.categories == ["red", "green"]
    assert predictor.learn(colour_image(RED), "red") == 2  # known categories still learn


def test_empty_continual_package(continual: Callable[..., Predictor]) -> None:
    predictor = continual([], np.zeros((0, 3)))
    result = predictor.predict(colour_image(RED))
    assert result.label == "Undefined" and result.scores == {} and result.score == 0.0
    predictor.learn(colour_image(RED), "red")
    assert predictor.predict(colour_image(RED, seed=5)).label == "red"


def test_learn_refuses_bad_categories(continual: Callable[..., Predictor]) -> None:
    predictor = continual(["red"], [unit(np.array([2, -2, -2.0]))])
    for bad in ("Undefined", "", "  ", None):
        with pytest.raises(ContinualError):
            predictor.learn(colour_image(RED), bad)  # type: ignore[arg-type]
    with pytest.raises(ContinualError, match="at least one image"):
        predictor.learn([], "red")
    grey = np.full((30, 40, 3), 128, np.uint8)  # mean colour: embedding (0.04, ...) is fine, not zero
    predictor.learn(grey, "grey")
    assert predictor.categories == ["red", "grey"]


def test_undefined_label_is_configurable(make_package: Callable[..., Any]) -> None:
    meta = continual_metadata(["red"], [1])
    meta["continual"]["undefined_label"] = "Unknown"
    meta["continual"]["temperature"] = 5
    path, _ = make_package(model=tiny_model(w=np.eye(3), b=np.zeros(3)), metadata=meta,
                           prototypes=unit(np.array([2, -2, -2.0]))[None])
    predictor = load_package(path)
    assert predictor.predict(colour_image(BLUE)).label == "Unknown"
    with pytest.raises(ContinualError, match="unknown images"):
        predictor.learn(colour_image(BLUE), "Unknown")
