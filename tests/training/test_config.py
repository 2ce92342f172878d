"""Hyper parameters are validated where they are set and survive a JSON round trip."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from astrocyte_lab.modules.classification.config import ClassificationConfig
from astrocyte_lab.training.config import TrainConfig


@pytest.mark.parametrize(("field", "value"), [("learning_rate", 2.0), ("learning_rate", 1e-9), ("batch_size", 0),
                                              ("patience", 0), ("scheduler", "cosine"), ("optimizer", "rmsprop"),
                                              ("seed", -2), ("region_size", (4, 4))])
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainConfig(**{field: value})


def test_assignment_is_validated_too() -> None:
    config = TrainConfig()
    with pytest.raises(ValidationError, match="learning_rate"):
        config.learning_rate = 5.0


def test_warmup_must_leave_room_for_early_stopping() -> None:
    with pytest.raises(ValidationError, match="warmup_epochs"):
        TrainConfig(epochs=5, early_stopping=True, warmup_epochs=5)


def test_round_trip_and_architecture_check() -> None:
    config = ClassificationConfig(architecture="resnet18", epochs=3, region_size=(64, 48), continual=True)
    again = ClassificationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValidationError, match="unknown architecture"):
        ClassificationConfig(architecture="vgg11")
