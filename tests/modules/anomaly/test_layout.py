"""The whole-image layout term: flags a region that is normal somewhere but not where it is."""

from __future__ import annotations

import pytest
import torch

from astrocyte_lab.modules.anomaly import layout
from astrocyte_lab.modules.anomaly.layout import LayoutModel


def two_finish_parts(count: int, seed: int = 0) -> torch.Tensor:
    """``(count, 4, 32, 32)`` patch embeddings of parts whose top half has one finish and bottom half another
    (fixed pose), each part a little brighter or darker and noisy."""
    g = torch.Generator().manual_seed(seed)
    top, bottom = torch.tensor([1.0, 0.0, 0.5, 0.0]), torch.tensor([0.0, 1.0, 0.0, 0.5])
    parts = torch.empty(count, 4, 32, 32)
    parts[:, :, :16] = top[:, None, None]
    parts[:, :, 16:] = bottom[:, None, None]
    level = 1.0 + 0.2 * torch.randn(count, 1, 1, 1, generator=g)
    return parts * level + 0.05 * torch.randn(parts.shape, generator=g)


def fitted(normal: torch.Tensor, distance_q: float | None = None) -> LayoutModel:
    kernel = layout.pool_kernel(*normal.shape[-2:])
    return LayoutModel.fit(layout.pooled(normal), kernel, 0.95, torch.Generator().manual_seed(0), distance_q)


def test_a_band_of_the_wrong_finish_lights_up_inside_not_only_at_its_border() -> None:
    normal = two_finish_parts(60)
    model = fitted(normal)
    assert model.grid == (8, 8) and model.kernel == (4, 4)
    part = two_finish_parts(1, seed=1)
    part[:, :, 4:12] = part[:, :, 20:28].clone()  # a band of the bottom finish across the top half
    amap = model(part)[0, 0]
    assert amap.shape == (32, 32)
    band, elsewhere = amap[5:11].mean(), amap[20:].mean()
    assert band > 5 * elsewhere, (float(band), float(elsewhere))
    assert band > 20 * model(two_finish_parts(1, seed=1))[0, 0, 5:11].mean()  # the same part without the band
    # every patch of the band exists in the Normal parts, so a position-free nearest neighbour sees nothing
    bank = normal.permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = torch.cdist(part[0].permute(1, 2, 0).reshape(-1, 4), bank).amin(1).reshape(32, 32)
    assert nearest[5:11].mean() < 2 * nearest[20:].mean()


def test_normal_parts_stay_low_and_the_weight_matches_the_patch_distance_units() -> None:
    normal = two_finish_parts(60)
    model = fitted(normal, distance_q=2.0)
    unseen = two_finish_parts(20, seed=2)
    values = model(unseen).flatten()
    # the weight maps the held-out residual's 99th percentile onto the given distance quantile
    assert 0.5 < torch.quantile(values, layout.QUANTILE).item() < 4.0
    assert fitted(normal).weight.item() == 1.0  # no distance quantile: raw residual


def test_too_few_images_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        fitted(two_finish_parts(layout.MIN_IMAGES - 1))


def test_small_patch_grids_pool_to_fewer_cells() -> None:
    assert layout.pool_kernel(6, 40) == (1, 5)
    assert layout.pooled(torch.zeros(2, 3, 6, 40)).shape == (2, 3, 6, 8)


@pytest.mark.parametrize("shape", [(12, 40), (40, 12)])
def test_principal_directions_match_the_svd(shape: tuple[int, int]) -> None:
    data = torch.randn(*shape, dtype=torch.float64)
    centred = data - data.mean(0)
    singular, directions = layout.principal_directions(centred)
    _, expected_singular, expected = torch.linalg.svd(centred, full_matrices=False)
    rank = min(shape) - 1  # centring removes one
    torch.testing.assert_close(singular[:rank], expected_singular[:rank])
    # each direction up to its sign
    signs = torch.sign((directions[:rank] * expected[:rank]).sum(1, keepdim=True))
    torch.testing.assert_close(directions[:rank] * signs, expected[:rank], atol=1e-8, rtol=1e-6)
