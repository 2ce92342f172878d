"""Image correction primitives: fitting, resizing, keep-aspect padding, cropping, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab.data.correction import check_correction, correct, fit_within, majority, resize
from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.errors import AstrocyteError


def test_fit_within_shrinks_keeping_aspect_and_never_enlarges():
    assert fit_within((640, 480), (320, 320)) == (320, 240)
    assert fit_within((480, 640), (320, 320)) == (240, 320)
    assert fit_within((100, 50), (320, 320)) == (100, 50)
    assert fit_within((100, 50), None) == (100, 50)
    assert fit_within((1000, 3), (10, 10)) == (10, 1)  # never zero
    with pytest.raises(AstrocyteError, match="positive"):
        fit_within((10, 10), (0, 10))


def test_majority_prefers_first_seen_on_ties():
    assert majority([3, 1, 1, 3]) == 3
    assert majority([(2, 2), (1, 1), (1, 1)]) == (1, 1)


def test_resize_exact_size_and_keeps_channel_axis():
    image = np.arange(24 * 32 * 1, dtype=np.uint8).reshape(24, 32, 1)
    out = resize(image, (16, 12))
    assert out.shape == (12, 16, 1)
    assert resize(image, (32, 24)) is image


def test_resize_nearest_keeps_only_existing_values():
    mask = np.zeros((24, 32), np.uint16)
    mask[::2] = 3
    mask[:, ::5] = 7
    out = resize(mask, (13, 11), nearest=True)
    assert out.shape == (11, 13)
    assert set(np.unique(out).tolist()) <= {0, 3, 7}


def test_correct_resize_stretches_to_size():
    image = np.zeros((40, 40, 3), np.uint8)
    out = correct(image, (32, 24), "resize")
    assert out.shape == (24, 32, 3)


def test_correct_keep_aspect_pads_with_mean_and_centres():
    image = np.full((40, 40, 1), 100, np.uint8)
    image[:20] = 200  # mean 150
    out = correct(image, (32, 24), "resize_keep_aspect")
    assert out.shape == (24, 32, 1)
    # 40x40 scaled by 0.6 -> 24x24 centred: 4 padding columns each side
    assert (out[:, :4] == 150).all() and (out[:, 28:] == 150).all()
    assert out[2, 16, 0] == 200 and out[21, 16, 0] == 100


def test_correct_keep_aspect_mask_pads_with_background():
    mask = np.full((40, 40), 5, np.uint16)
    out = correct(mask, (32, 24), "resize_keep_aspect", nearest=True)
    assert out.shape == (24, 32)
    assert (out[:, :4] == 0).all() and (out[:, 4:28] == 5).all() and (out[:, 28:] == 0).all()


def test_correct_crop_takes_the_centre():
    image = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40, 1)
    out = correct(image, (32, 24), "crop")
    np.testing.assert_array_equal(out, image[8:32, 4:36])


def test_correct_crop_of_smaller_image_pads():
    image = np.full((10, 20, 3), 9, np.uint8)
    out = correct(image, (32, 24), "crop")
    assert out.shape == (24, 32, 3)
    assert (out[7:17, 6:26] == 9).all()
    mask = correct(np.full((10, 20), 4, np.uint16), (32, 24), "crop", nearest=True)
    assert mask.sum() == 4 * 200 and mask[0, 0] == 0


def test_unknown_correction_is_rejected():
    assert check_correction("crop") == "crop"
    with pytest.raises(AstrocyteError, match="unknown image correction"):
        check_correction("stretch")
    with pytest.raises(AstrocyteError):
        correct(np.zeros((4, 4)), (2, 2), "exclude")
    with pytest.raises(AstrocyteError):
        GenerationOptions(correction="stretch")
    with pytest.raises(AstrocyteError, match="odd.png"):
        GenerationOptions(corrections={"odd.png": "stretch"})
    with pytest.raises(AstrocyteError, match="positive"):
        GenerationOptions(max_size=(0, 10))


def test_options_method_for_path_then_name_then_global(tmp_path):
    a, b = tmp_path / "x" / "odd.png", tmp_path / "y" / "odd.png"
    options = GenerationOptions(correction="exclude", corrections={str(a): "crop", "odd.png": "resize"})
    assert options.method_for(a) == "crop"
    assert options.method_for(b) == "resize"
    assert options.method_for(tmp_path / "other.png") == "exclude"


def test_options_method_for_relative_key(tmp_path, monkeypatch):
    """A key written the way the user wrote the location (relative) still names the file."""
    monkeypatch.chdir(tmp_path)
    options = GenerationOptions(corrections={"x/odd.png": "crop"})
    assert options.method_for((tmp_path / "x" / "odd.png").resolve()) == "crop"
    assert options.method_for(Path(tmp_path / "y" / "odd.png")) == "exclude"
