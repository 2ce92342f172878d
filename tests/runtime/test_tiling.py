"""The tiling rule: origins, grid, padding with the tile mean, blending weights and stitching."""

from __future__ import annotations

import numpy as np
import pytest

from astrocyte_lab.runtime.tiling import (
    blend_weights,
    extract_tile,
    overlap_pixels,
    stitch,
    tile_grid,
    tile_origins,
    tile_step,
)


def test_origins_exact_fit_and_overshoot() -> None:
    assert tile_origins(12, 4, 0.0) == [0, 4, 8]  # exact fit, no overlap
    assert tile_origins(10, 4, 0.0) == [0, 4, 8]  # the last tile runs 2 pixels past the end
    assert tile_origins(20, 8, 0.25) == [0, 6, 12]  # 12 + 8 reaches the end exactly
    assert tile_origins(21, 8, 0.25) == [0, 6, 12, 18]
    assert tile_origins(10, 4, 0.5) == [0, 2, 4, 6]


def test_origins_single_tile_when_not_longer_than_the_tile() -> None:
    assert tile_origins(3, 4, 0.25) == [0]
    assert tile_origins(4, 4, 0.25) == [0]
    assert tile_origins(1, 256, 0.0) == [0]
    assert tile_origins(5, 4, 0.0) == [0, 4]


def test_step_rounds_halves_up_and_is_at_least_one() -> None:
    assert tile_step(10, 0.25) == 7  # 2.5 shared pixels round to 3
    assert tile_step(8, 0.25) == 6 and overlap_pixels(8, 0.25) == 2
    assert tile_step(4, 0.0) == 4 and overlap_pixels(4, 0.0) == 0
    assert tile_step(2, 0.75) == 1  # 1.5 rounds to 2 = the whole tile: the step is still 1
    assert tile_step(1, 0.9) == 1
    assert tile_origins(4, 2, 0.75) == [0, 1, 2]


@pytest.mark.parametrize("bad", [(10, 4, 1.0), (10, 4, -0.1), (10, 0, 0.2), (0, 4, 0.2), (10, 2.5, 0.2)])
def test_origins_refuse_bad_arguments(bad: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        tile_origins(*bad)  # type: ignore[arg-type]


def test_origins_cover_every_pixel() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        length, tile = int(rng.integers(1, 200)), int(rng.integers(1, 64))
        overlap = float(rng.choice([0.0, 0.1, 0.25, 0.5, 0.75, rng.uniform(0, 0.99)]))
        origins = tile_origins(length, tile, overlap)
        assert origins[0] == 0 and set(np.diff(origins).tolist()) <= {tile_step(tile, overlap)}
        assert origins[-1] < length and origins[-1] + tile >= length
        assert len(origins) == 1 or origins[-2] + tile < length  # no superfluous last tile
        covered = np.zeros(length, bool)
        for start in origins:
            covered[start:start + tile] = True
        assert covered.all()


def test_grid_is_row_major() -> None:
    grid = tile_grid(10, 7, 4, 4, 0.0)
    assert grid == [(0, 0), (4, 0), (8, 0), (0, 4), (4, 4), (8, 4)]
    assert tile_grid(3, 3, 8, 8, 0.25) == [(0, 0)]
    assert tile_grid(20, 5, 8, 4, 0.25) == [(x, y) for y in (0, 3) for x in (0, 6, 12)]


def test_extract_inside_is_a_copy() -> None:
    image = np.random.default_rng(1).random((9, 11, 3), dtype=np.float32)
    tile = extract_tile(image, 2, 3, 5, 4)
    assert tile.shape == (4, 5, 3) and tile.dtype == np.float32
    assert np.array_equal(tile, image[3:7, 2:7])
    tile[:] = -1
    assert image.min() >= 0


def test_extract_pads_with_the_tile_mean_per_channel() -> None:
    image = np.random.default_rng(2).normal(size=(9, 11, 2)).astype(np.float32)
    tile = extract_tile(image, 8, 6, 5, 4)  # 3 x 3 pixels inside, the rest beyond the corner
    inside = image[6:9, 8:11]
    assert np.array_equal(tile[:3, :3], inside)
    mean = inside.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
    for channel in range(2):
        assert np.all(tile[3:, :, channel] == mean[channel]) and np.all(tile[:, 3:, channel] == mean[channel])
    flat = extract_tile(image[:, :, 0], 8, 6, 5, 4)  # a 2-D image gives a 2-D tile
    assert flat.shape == (4, 5) and np.array_equal(flat, tile[:, :, 0])
    whole = extract_tile(image, 0, 0, 20, 20)  # a tile larger than the image: mean of the whole image
    assert np.allclose(whole[15, 15], image.mean(axis=(0, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        extract_tile(image, 11, 0, 4, 4)


def test_blend_weights_shape_and_values() -> None:
    weights = blend_weights(16, 12, 0.25)
    assert weights.shape == (12, 16) and weights.dtype == np.float32
    assert weights.min() > 0 and weights.max() == 1.0
    assert np.all(weights[3:-3, 4:-4] == 1.0)  # outside the 3- and 4-pixel bands
    assert np.allclose(weights, weights[::-1]) and np.allclose(weights, weights[:, ::-1])
    assert np.all(np.diff(weights[6, :8]) >= 0)  # rises from the edge
    assert np.array_equal(blend_weights(5, 7, 0.0), np.ones((7, 5), np.float32))
    assert blend_weights(1, 1, 0.5).min() > 0


def test_blend_weights_of_neighbours_add_up_to_one() -> None:
    tile, overlap = 20, 0.3
    row = blend_weights(tile, 1, overlap)[0].astype(np.float64)
    step = tile_step(tile, overlap)
    shared = tile - step
    assert np.allclose(row[step:] + row[:shared], 1.0, atol=1e-6)


def test_stitch_a_constant_field_gives_the_constant() -> None:
    width, height, tile_w, tile_h = 45, 31, 16, 12
    for overlap in (0.0, 0.25, 0.5):
        origins = tile_grid(width, height, tile_w, tile_h, overlap)
        constant = np.array([0.3, 0.7], np.float32)[:, None, None]
        tiles = [np.broadcast_to(constant, (2, tile_h, tile_w)) for _ in origins]
        out = stitch(tiles, origins, width, height, blend_weights(tile_w, tile_h, overlap))
        assert out.shape == (2, height, width) and out.dtype == np.float32
        assert np.allclose(out[0], 0.3, atol=1e-6) and np.allclose(out[1], 0.7, atol=1e-6)


def test_stitch_reassembles_a_field_from_its_tiles() -> None:
    field = np.random.default_rng(3).random((3, 29, 41), dtype=np.float32)
    padded = np.pad(field, ((0, 0), (0, 20), (0, 20)), constant_values=np.nan)  # beyond the image: never used
    for overlap in (0.0, 0.2, 0.5):
        origins = tile_grid(41, 29, 10, 8, overlap)
        tiles = [padded[:, y:y + 8, x:x + 10] for x, y in origins]
        out = stitch(tiles, origins, 41, 29, blend_weights(10, 8, overlap))
        assert np.allclose(out, field, atol=1e-6)
        assert np.allclose(stitch(tiles, origins, 41, 29), field, atol=1e-6)  # equal weights


def test_stitch_cross_fades_in_the_overlap() -> None:
    tile, overlap = 8, 0.5
    origins = tile_grid(12, 1, tile, 1, overlap)
    assert origins == [(0, 0), (4, 0)]
    tiles = [np.zeros((1, 1, tile), np.float32), np.ones((1, 1, tile), np.float32)]
    weights = blend_weights(tile, 1, overlap)
    out = stitch(tiles, origins, 12, 1, weights)[0, 0]
    assert np.all(out[:4] == 0) and np.all(out[8:] == 1)
    assert np.allclose(out[4:8], weights[0, :4], atol=1e-6)  # the second tile's rising ramp
    assert np.all(np.diff(out) >= 0)


def test_stitch_refuses_bad_input() -> None:
    tile = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="cover"):
        stitch([tile], [(0, 0)], 8, 4)
    with pytest.raises(ValueError, match="origins"):
        stitch([tile, tile], [(0, 0)], 4, 4)
    with pytest.raises(ValueError, match="weights"):
        stitch([tile], [(0, 0)], 4, 4, np.ones((3, 4)))
    with pytest.raises(ValueError, match="outside"):
        stitch([tile], [(4, 0)], 4, 4)
    with pytest.raises(ValueError, match="no tiles"):
        stitch([], [], 4, 4)
