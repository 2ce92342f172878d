"""The safety-limit table: defaults, environment overrides, and messages that name the file and the variable."""

from __future__ import annotations

import pytest

from astrocyte_lab.data import limits
from astrocyte_lab.errors import AstrocyteError, LimitError


def test_defaults_apply_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASTROCYTE_MAX_IMAGE_PIXELS", raising=False)
    assert limits.limit("image_pixels") == 1 << 28


def test_the_environment_raises_or_lowers_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "1_000")
    assert limits.limit("image_pixels") == 1000
    limits.check_image_pixels(40, 25, "a.png")
    with pytest.raises(LimitError, match=r"b\.png: image size 40 x 26 .*ASTROCYTE_MAX_IMAGE_PIXELS"):
        limits.check_image_pixels(40, 26, "b.png")


@pytest.mark.parametrize("raw", ["lots", "-5", "0", "1.5"])
def test_a_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ASTROCYTE_MAX_JSON_DEPTH", raw)
    with pytest.raises(LimitError, match="ASTROCYTE_MAX_JSON_DEPTH"):
        limits.limit("json_depth")


def test_non_positive_image_sizes_are_refused() -> None:
    with pytest.raises(LimitError, match="c.tif: image size 0 x 10"):
        limits.check_image_pixels(0, 10, "c.tif")


def test_every_limit_is_a_project_error_with_its_variable_named() -> None:
    for name in limits.DEFAULTS:
        with pytest.raises(AstrocyteError, match=limits.env_name(name)):
            limits.check_limit(name, limits.limit(name) + 1, "file.bin")
