"""Training a classifier end to end on tiny data: saved model, metrics, resume, fast training, continual."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation.classification import evaluate_classifier
from astrocyte_lab.modules.classification.config import ClassificationConfig
from astrocyte_lab.modules.classification.trainer import load_network, train_job

FAST = {"architecture": "resnet18", "pretrained": False, "batch_size": 8, "learning_rate": 3e-3, "seed": 0,
        "region_size": (32, 32)}


def test_train_then_test_writes_predictions_back(shapes) -> None:
    ws, name = shapes
    job = train_job(ws, name, "m1", ClassificationConfig(epochs=4, **FAST), description="tiny")
    assert job.result(timeout=300) == "m1"
    info = ws.model_store.info("m1")
    assert info.categories == ("blue", "red") and (info.width, info.height, info.channels) == (32, 32, 3)
    record = ws.model_store.record("m1")
    assert record["seed"] == 0 and len(record["history"]) == 4 and record["description"] == "tiny"
    assert record["config"]["augmentation"]  # augmentations are part of the details
    report = evaluate_classifier(ws, "m1", name, "all")
    assert report.accuracy >= 0.8
    assert report.confusion.sum() == len(ws.dataset(name))
    table = ws.dataset(name).table
    assert (table["prediction"] != "").all() and table["score"].between(0, 1).all()


def test_resume_and_fast_training(shapes) -> None:
    ws, name = shapes
    train_job(ws, name, "base", ClassificationConfig(epochs=2, **FAST)).result(timeout=300)
    before = load_network(ws, "base")[0].state_dict()["backbone.conv1.weight"].clone()
    config = ClassificationConfig(epochs=1, resume_from="base", fast_training=True, **FAST)
    train_job(ws, name, "tuned", config).result(timeout=300)
    after = load_network(ws, "tuned")[0].state_dict()
    assert np.allclose(after["backbone.conv1.weight"].numpy(), before.numpy())  # backbone frozen
    with pytest.raises(AstrocyteError, match="already exists"):
        train_job(ws, name, "tuned", config)


def test_no_common_category_is_refused(shapes, tmp_path) -> None:
    ws, name = shapes
    train_job(ws, name, "m", ClassificationConfig(epochs=1, **FAST)).result(timeout=300)
    dataset = ws.dataset(name)
    dataset.rename_category("red", "green")
    dataset.rename_category("blue", "yellow")
    dataset.save()
    with pytest.raises(AstrocyteError, match="no category in common"):
        evaluate_classifier(ws, "m", name)


def test_continual_model_keeps_prototypes_and_threshold(shapes) -> None:
    ws, name = shapes
    train_job(ws, name, "c", ClassificationConfig(epochs=3, continual=True, **FAST)).result(timeout=300)
    record = ws.model_store.record("c")
    assert 0.0 <= record["continual"]["threshold"] < 1.0
    tensors = ws.model_store.tensors("c")
    assert tensors["continual.prototypes"].shape[0] == 2
    report = evaluate_classifier(ws, "c", name, "all")
    assert "Undefined" in report.columns and report.accuracy >= 0.7
