"""The bounded greedy coreset: size, uniqueness, coverage, and the bank-size rule."""

from __future__ import annotations

import torch

from astrocyte_lab.modules.anomaly.coreset import coreset_size, greedy_coreset


def _cover_radius(points: torch.Tensor, chosen: torch.Tensor) -> float:
    return float(torch.cdist(points, points[chosen]).amin(1).max())


def test_greedy_coreset_is_unique_and_covers_better_than_random() -> None:
    generator = torch.Generator().manual_seed(0)
    clusters = torch.randn(20, 16, generator=generator) * 10
    points = (clusters[torch.randint(20, (3000,), generator=generator)]
              + torch.randn(3000, 16, generator=generator) * 0.1)
    chosen = greedy_coreset(points, 40, projection=8, seed=1)
    assert chosen.shape == (40,) and chosen.unique().numel() == 40
    random = torch.randperm(3000, generator=generator)[:40]
    assert _cover_radius(points, chosen) < 0.5 * _cover_radius(points, random)
    # every cluster is represented: its points are close to a chosen one
    assert _cover_radius(points, chosen) < 3.0


def test_candidates_are_bounded_and_results_are_reproducible() -> None:
    points = torch.randn(5000, 32, generator=torch.Generator().manual_seed(0))
    first = greedy_coreset(points, 100, projection=16, max_candidates=1000, seed=3)
    again = greedy_coreset(points, 100, projection=16, max_candidates=1000, seed=3)
    assert torch.equal(first, again) and first.max() < 5000 and first.unique().numel() == 100
    assert torch.equal(greedy_coreset(points[:10], 50), torch.arange(10))  # asking for more keeps everything


def test_coreset_size_rule() -> None:
    assert coreset_size(100_000, 0.01, 8192) == 1000
    assert coreset_size(10_000_000, 0.01, 8192) == 8192  # the user-visible cap wins
    assert coreset_size(50, 0.001, 8192) == 1  # at least one entry
    assert coreset_size(10, 1.0, 8192) == 10
