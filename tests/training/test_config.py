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


@pytest.mark.parametrize(("config", "field", "value", "message"), [
    ("train", "region_size", (100_000, 512), r"region size 100000 x 512 is above the limit of 8192 pixels a side"),
    ("train", "region_size", (512, 8193), r"region size 512 x 8193 is above the limit of 8192"),
    ("segmentation", "tile_size", (65_536, 65_536), r"tile size 65536 x 65536 is above the limit of 8192"),
    ("anomaly", "tile_size", (256, 10 ** 9), r"tile size 256 x 1000000000 is above the limit"),
    ("detection", "tile_size", (16_384, 512), r"detection input size 16384 x 512 is above the limit"),
    ("detection", "region_size", (8_224, 8_224), r"8224 x 8224 is above the limit"),
    ("anomaly", "coreset_candidates", 10 ** 12, "coreset_candidates"),
    ("detection", "teacher_epochs", 10 ** 9, "teacher_epochs"),
])
def test_absurd_sizes_are_refused_at_config_time(config: str, field: str, value: object, message: str) -> None:
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.detection.config import DetectionConfig
    from astrocyte_lab.modules.segmentation.config import SegmentationConfig

    kind = {"train": TrainConfig, "segmentation": SegmentationConfig, "anomaly": AnomalyConfig,
            "detection": DetectionConfig}[config]
    with pytest.raises(ValidationError, match=message) as raised:
        kind(**{field: value})
    assert field in str(raised.value)
    kind()  # the defaults stay valid
    with pytest.raises(ValidationError, match=field):
        setattr(kind(), field, value)


def test_size_bound_follows_the_runtime_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ASTROCYTE_MAX_INPUT_SIDE"):
        TrainConfig(region_size=(10_000, 512))
    monkeypatch.setenv("ASTROCYTE_MAX_INPUT_SIDE", "12000")
    assert TrainConfig(region_size=(10_000, 512)).region_size == (10_000, 512)
