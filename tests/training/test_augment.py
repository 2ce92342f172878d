"""Augmentation settings and pipelines: every transform on grey and colour, probabilities, seeds, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from astrocyte_lab.training.augment import (
    AugmentationConfig,
    Blur,
    GaussianNoise,
    HorizontalFlip,
    RandomBrightness,
    RandomContrast,
    RandomHue,
    RandomResizedCrop,
    RandomRotate,
    VerticalFlip,
    build_pipeline,
    default_classification,
    preview,
    reseed,
    to_unit_float,
)

# Each transform switched on with settings strong enough to always show.
STRONG = {
    "brightness": RandomBrightness(enabled=True, limit=0.5),
    "contrast": RandomContrast(enabled=True, limit=0.5),
    "hue": RandomHue(enabled=True, shift_limit=0.3),
    "horizontal_flip": HorizontalFlip(enabled=True),
    "vertical_flip": VerticalFlip(enabled=True),
    "resized_crop": RandomResizedCrop(enabled=True, scale=(0.3, 0.6)),
    "rotate": RandomRotate(enabled=True, limit=30),
    "noise": GaussianNoise(enabled=True, std_limit=0.2),
    "blur": Blur(enabled=True, max_kernel=7),
}


def only(name: str, probability: float, **changes) -> AugmentationConfig:
    transform = STRONG[name].model_copy(update={"probability": probability, **changes})
    return AugmentationConfig(**{name: transform})


def make_image(channels: int, height: int = 36, width: int = 48) -> np.ndarray:
    """Smooth, asymmetric, colourful float image in [0.1, 0.9] (no flip or rotation leaves it unchanged)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [0.1 + 0.8 * (x / width) * (y / height) ** 0.5,
              0.1 + 0.8 * (1 - x / width) ** 2 * (0.5 + 0.5 * (y / height)),
              0.1 + 0.8 * ((x + 2 * y) % 17) / 17]
    return np.stack(planes[:channels], axis=2).astype(np.float32)


def run(config: AugmentationConfig, image: np.ndarray, seed: int = 0, size=None) -> np.ndarray:
    return build_pipeline(config, size, image.shape[2], seed=seed)(image=image)["image"]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(STRONG))
def test_each_transform_keeps_layout_and_range_and_changes_image(name, channels):
    image = make_image(channels)
    out = run(only(name, 1.0), image)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    if name == "hue" and channels == 1:
        np.testing.assert_array_equal(out, image)  # skipped silently
    else:
        assert not np.allclose(out, image, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(STRONG))
def test_probability_zero_is_identity(name, channels):
    image = make_image(channels)
    for seed in range(3):
        np.testing.assert_array_equal(run(only(name, 0.0), image, seed=seed), image)


@pytest.mark.parametrize("channels", [1, 3])
def test_disabled_transforms_are_identity(channels):
    image = make_image(channels)
    config = AugmentationConfig(**{n: t.model_copy(update={"enabled": False, "probability": 1.0})
                                   for n, t in STRONG.items()})
    assert build_pipeline(config, None, channels).transforms == []
    np.testing.assert_array_equal(run(config, image), image)


def test_hue_left_out_of_grey_pipelines():
    config = only("hue", 1.0)
    assert build_pipeline(config, None, 1).transforms == []
    assert len(build_pipeline(config, None, 3).transforms) == 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("crop", [False, True])
def test_size_gives_exact_output_size(channels, crop):
    config = default_classification()
    config.resized_crop = RandomResizedCrop(enabled=crop, probability=0.5)
    pipeline = build_pipeline(config, (40, 24), channels, seed=3)
    for _ in range(6):
        out = pipeline(image=make_image(channels, 50, 70))["image"]
        assert out.shape == (24, 40, channels) and out.dtype == np.float32


def test_crop_without_size_keeps_input_size():
    image = make_image(1, 30, 44)
    out = run(only("resized_crop", 1.0), image)
    assert out.shape == image.shape


def test_brightness_limit_zero_is_identity_and_full_limit_spans_range():
    image = make_image(3)
    np.testing.assert_array_equal(run(only("brightness", 1.0, limit=0.0), image), image)
    pipeline = build_pipeline(only("brightness", 1.0, limit=1.0), None, 3, seed=0)
    means = [pipeline(image=image)["image"].mean() for _ in range(40)]
    assert min(means) < 0.15 and max(means) > 0.85


def test_contrast_is_a_gain_within_the_limit():
    image = make_image(1)
    pipeline = build_pipeline(only("contrast", 1.0, limit=0.2), None, 1, seed=0)
    for _ in range(10):
        out = pipeline(image=image)["image"]
        gain = (out / image)[out < 1.0]  # saturated pixels are clipped
        assert np.allclose(gain, gain[0], atol=1e-4)
        assert 0.8 - 1e-4 <= gain[0] <= 1.2 + 1e-4


def test_flip_is_exact_mirror():
    image = make_image(3)
    np.testing.assert_array_equal(run(only("horizontal_flip", 1.0), image), image[:, ::-1])
    np.testing.assert_array_equal(run(only("vertical_flip", 1.0), image), image[::-1])


def test_rotate_constant_border_fills_black_corners_and_reflect_does_not():
    image = make_image(1)
    constant = run(only("rotate", 1.0, limit=45, border="constant"), image, seed=1)
    reflect = run(only("rotate", 1.0, limit=45, border="reflect"), image, seed=1)
    assert constant[0, 0, 0] == 0.0 or constant[0, -1, 0] == 0.0
    assert reflect[0, 0, 0] > 0.0 and reflect[0, -1, 0] > 0.0


def test_pipeline_seed_reproducible_and_transforms_independent():
    config = only("horizontal_flip", 0.5)
    config.vertical_flip = VerticalFlip(enabled=True, probability=0.5)
    image = make_image(1)
    a, b = build_pipeline(config, None, 1, seed=5), build_pipeline(config, None, 1, seed=5)
    outs_a = [a(image=image)["image"] for _ in range(12)]
    outs_b = [b(image=image)["image"] for _ in range(12)]
    for x, y in zip(outs_a, outs_b, strict=True):
        np.testing.assert_array_equal(x, y)
    # the two flips must not always fire together (one shared random stream, not two equal ones)
    kinds = {(bool(np.array_equal(o, image[:, ::-1])), bool(np.array_equal(o, image[::-1]))) for o in outs_a}
    assert (True, False) in kinds or (False, True) in kinds


def test_reseed_restarts_the_sequence():
    image = make_image(3)
    pipeline = build_pipeline(default_classification(), None, 3, seed=1)
    first = [pipeline(image=image)["image"] for _ in range(4)]
    reseed(pipeline, 1)
    again = [pipeline(image=image)["image"] for _ in range(4)]
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_dataloader_workers_get_distinct_streams(monkeypatch):
    torch = pytest.importorskip("torch")
    image = make_image(1)
    config = only("brightness", 1.0)

    def outputs_in_worker(worker_id: int) -> list[np.ndarray]:
        pipeline = build_pipeline(config, None, 1, seed=0)  # every worker gets an identical copy
        info = type("Info", (), {"id": worker_id, "seed": 1000 + worker_id})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        return [pipeline(image=image)["image"] for _ in range(3)]

    worker0, worker1, worker0_again = outputs_in_worker(0), outputs_in_worker(1), outputs_in_worker(0)
    assert not np.array_equal(worker0[0], worker1[0])
    np.testing.assert_array_equal(worker0[0], worker0_again[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(30, 40), (30, 40, 1), (30, 40, 3)])
def test_preview_layout_and_determinism(dtype, shape):
    rng = np.random.default_rng(0)
    top = {np.uint8: 255, np.uint16: 4095, np.float32: 1}[dtype]
    image = (rng.random(shape) * top).astype(dtype)
    config = default_classification()
    a = preview(image, config, count=5, seed=7)
    b = preview(image, config, count=5, seed=7)
    c = preview(image, config, count=5, seed=8)
    channels = shape[2] if len(shape) == 3 else 1
    assert len(a) == 5
    assert all(x.shape == (30, 40, channels) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_preview_with_size_and_identity():
    image = (make_image(3) * 255).round().astype(np.uint8)
    resized = preview(image, default_classification(), count=2, size=(20, 10))
    assert all(x.shape == (10, 20, 3) for x in resized)
    same = preview(image, AugmentationConfig(), count=2)
    assert all(np.array_equal(x, image) for x in same)


def test_to_unit_float_scales_by_depth():
    assert to_unit_float(np.array([[255]], np.uint8)).max() == 1.0
    assert to_unit_float(np.array([[4095]], np.uint16)).max() == 1.0  # 12-bit sensor
    assert to_unit_float(np.array([[65535]], np.uint16)).max() == 1.0
    assert to_unit_float(np.array([[2.0, -1.0]], np.float64)).tolist() == [[[1.0], [0.0]]]
    with pytest.raises(ValueError, match="dtype"):
        to_unit_float(np.zeros((2, 2), np.int32))


@pytest.mark.parametrize(("factory", "field", "value", "message"), [
    (RandomBrightness, "probability", 1.5, "less than or equal to 1"),
    (HorizontalFlip, "probability", -0.1, "greater than or equal to 0"),
    (RandomBrightness, "limit", -0.2, "greater than or equal to 0"),
    (RandomContrast, "limit", -1, "greater than or equal to 0"),
    (RandomHue, "shift_limit", 0.7, "less than or equal to 0.5"),
    (RandomRotate, "limit", -10, "greater than or equal to 0"),
    (RandomRotate, "border", "wrap", "'reflect' or 'constant'"),
    (RandomResizedCrop, "scale", (0.9, 0.5), "0 < min <= max <= 1"),
    (RandomResizedCrop, "ratio", (0.0, 1.0), "0 < min <= max"),
    (GaussianNoise, "std_limit", -0.1, "greater than or equal to 0"),
    (Blur, "max_kernel", 4, "must be odd"),
])
def test_validation_errors_name_field_and_rule(factory, field, value, message):
    with pytest.raises(ValidationError) as error:
        factory(**{field: value})
    assert field in str(error.value) and message in str(error.value)


def test_assignment_is_validated_too():
    config = default_classification()
    with pytest.raises(ValidationError, match="probability"):
        config.rotate.probability = 2.0
    with pytest.raises(ValidationError, match="extra"):
        AugmentationConfig.from_dict({"sharpen": {"enabled": True}})


def test_pipeline_argument_errors():
    with pytest.raises(ValueError, match="channels"):
        build_pipeline(AugmentationConfig(), None, 4)
    with pytest.raises(ValueError, match="size"):
        build_pipeline(AugmentationConfig(), (0, 10), 3)


def test_defaults_follow_manual():
    config = AugmentationConfig()
    assert not config.enabled_transforms()
    assert (config.brightness.limit, config.brightness.probability) == (0.2, 0.5)
    assert (config.contrast.limit, config.contrast.probability) == (0.2, 0.5)
    assert (config.rotate.limit, config.rotate.probability) == (10.0, 0.75)
    assert config.horizontal_flip.probability == config.resized_crop.probability == 0.5
    assert set(default_classification().enabled_transforms()) == {"brightness", "contrast", "horizontal_flip",
                                                                  "rotate"}
    assert AugmentationConfig.default_classification() == default_classification()


def test_round_trip_through_dict_and_json():
    config = default_classification()
    config.resized_crop = RandomResizedCrop(enabled=True, scale=(0.5, 0.9), ratio=(0.8, 1.25), probability=0.3)
    config.rotate = RandomRotate(enabled=True, limit=25, border="constant")
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert AugmentationConfig.from_dict(json.loads(json.dumps(data))) == config
    assert AugmentationConfig.from_json(config.to_json()) == config
    assert AugmentationConfig.from_dict({}) == AugmentationConfig() == AugmentationConfig.from_dict(None)
    partial = AugmentationConfig.from_dict({"blur": {"enabled": True}})
    assert partial.blur.enabled and partial.blur.max_kernel == 5
