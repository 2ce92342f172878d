"""Display pixels, mask / ROI composition and the zoom-pan mapping."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.annotate.view import ROI_TINT, Viewport, category_colour, compose, display_pixels, rgb


def test_display_pixels_grey_16_bit_and_rgb() -> None:
    twelve = np.array([[0, 4095], [2048, 1024]], np.uint16)[:, :, None]
    shown = display_pixels(twelve, bit_depth=12)
    assert shown.dtype == np.uint8 and shown.shape == (2, 2, 3)
    assert shown[0, 1].tolist() == [255, 255, 255] and shown[1, 0, 0] == 127
    assert display_pixels(np.full((2, 2), 65535, np.uint16), 16).max() == 255
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 2] = 200
    assert (display_pixels(colour) == colour).all()


def test_compose_fills_outlines_and_greys_out() -> None:
    pixels = np.full((10, 10, 3), 100, np.uint8)
    mask = np.zeros((10, 10), np.uint8)
    mask[2:8, 2:8] = 1
    active = np.ones((10, 10), bool)
    active[:, 9] = False
    out = compose(pixels, mask, None, active, background=0)
    assert out.shape == (10, 10, 4) and (out[..., 3] == 255).all()
    assert out[2, 2, :3].tolist() == list(rgb(category_colour(1)))  # outline in the category colour
    inside = out[5, 5, :3].astype(int)
    expected = np.round(100 * 0.6 + np.array(rgb(category_colour(1))) * 0.4)
    assert inside == pytest.approx(expected, abs=1)
    assert out[0, 0, :3].tolist() == [100, 100, 100]
    assert out[0, 9, :3].tolist() == [int(100 * 0.3 + t * 0.7) for t in ROI_TINT]
    hidden = compose(pixels, mask, None, None, show_truth=False)
    assert (hidden[..., :3] == 100).all()
    predicted = compose(pixels, None, mask.astype(bool), None)
    assert (predicted[5, 5, :3] == 100).all() and (predicted[..., :3] != 100).any()  # outline only


def test_viewport_fit_zoom_pan_render() -> None:
    vp = Viewport(100, 50, 200, 200)
    vp.fit()
    assert vp.zoom == 2 and vp.to_screen(0, 0) == (0, 50) and vp.placement() == (0, 50, 200, 100)
    vp.zoom_at(2, 20, 60)
    assert vp.to_image(20, 60) == pytest.approx((10, 5)) and vp.zoom == 4
    vp.pan(8, 0)
    assert vp.to_image(28, 60) == pytest.approx((10, 5))
    image = np.zeros((50, 100, 3), np.uint8)
    image[5, 10] = 255
    vp = Viewport(100, 50, 40, 40, zoom=4, x0=10, y0=5)
    view = vp.render(image)
    assert view.shape == (40, 40, 3) and (view[:4, :4] == 255).all() and view[4:, 4:].max() == 0
    vp = Viewport(100, 50, 50, 25, zoom=0.5)
    assert vp.render(np.full((50, 100, 3), 80, np.uint8)).mean() == pytest.approx(80)
    vp.zoom_at(1e-6)
    assert vp.zoom == vp.min_zoom
