"""A whole-image layout model that PatchCore adds to its patch distances.

PatchCore compares every patch with patches seen anywhere in the Normal images, so a large region whose
texture is normal somewhere but wrong *where it is* (a band of another finish across a part, a shading step)
only lights up at its border. For parts shot in a fixed pose, the coarse grid of patch features of a whole
image is itself a vector that Normal images spread along few directions: this model averages the patch
embedding down to a grid of about 8 x 8 cells, standardises it per element, and projects it onto the
principal directions of the Normal training grids. What the directions cannot explain (the squared residual,
summed over channels) is a per-cell anomaly value, brought back to the patch grid and scaled into PatchCore's
distance units, so the two add up before the map is smoothed.

Everything is linear algebra on fixed-size tensors, so it exports to ONNX with the rest of the model. It is
fitted on the pooled grids only (``N x C x 8 x 8``), never on all patches, so memory stays small.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GRID = 8  # cells per side of the coarse grid (fewer when the patch grid is smaller)
MIN_IMAGES = 8  # fewer Normal images cannot both fit the directions and calibrate the scale
CALIBRATION_SHARE = 0.1  # Normal images held out to measure the residual of unseen images
QUANTILE = 0.99  # the residual and distance quantiles matched to put both terms in the same units


def pool_kernel(height: int, width: int) -> tuple[int, int]:
    """Average-pooling window that turns a ``height x width`` patch grid into at most ``GRID`` cells a side."""
    return max(1, height // GRID), max(1, width // GRID)


def pooled(embedding: torch.Tensor, kernel: tuple[int, int] | None = None) -> torch.Tensor:
    """``(N, C, h, w)`` patch embedding -> ``(N, C, gh, gw)`` coarse grid (rows/columns past the last whole
    window are dropped; the upsampling in :meth:`LayoutModel.forward` still covers them)."""
    kernel = kernel or pool_kernel(*embedding.shape[-2:])
    return F.avg_pool2d(embedding, kernel, kernel)


def principal_directions(centred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending) and right singular vectors (rows) of a centred ``(N, D)`` matrix.

    With fewer images than grid elements (the usual case: hundreds of images, thousands of elements) the
    ``N x N`` Gram matrix is decomposed instead of the full matrix: the same directions, several times faster.
    """
    n, d = centred.shape
    if n >= d:
        _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
        return singular, directions
    eigenvalues, vectors = torch.linalg.eigh(centred @ centred.T)
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    singular = eigenvalues.clamp_min(0).sqrt()
    useful = singular > singular[0] * 1e-7
    directions = torch.zeros(n, d, dtype=centred.dtype)
    directions[useful] = (centred.T @ vectors[:, useful] / singular[useful]).T
    return torch.where(useful, singular, torch.zeros_like(singular)), directions


class LayoutModel(nn.Module):
    """Residual of the coarse feature grid outside its Normal principal subspace, as a patch-grid map."""

    def __init__(self, channels: int, grid: tuple[int, int], components: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        dim = channels * grid[0] * grid[1]
        self.channels, self.grid, self.kernel = channels, (int(grid[0]), int(grid[1])), (int(kernel[0]), int(kernel[1]))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))
        self.register_buffer("components", torch.zeros(components, dim))
        self.register_buffer("weight", torch.ones(()))

    @classmethod
    def fit(cls, grids: torch.Tensor, kernel: tuple[int, int], variance: float,
            generator: torch.Generator | None = None, patch_distance_quantile: float | None = None) -> LayoutModel:
        """Fit on ``(N, C, gh, gw)`` Normal grids (pooled with ``kernel``); keep the directions holding
        ``variance`` of the variance.

        The weight maps the residual into patch-distance units: a share of the images is held out, the
        directions are fitted on the rest, and the held-out residual's ``QUANTILE`` is matched to
        ``patch_distance_quantile`` (the same quantile of PatchCore's distances on training patches).
        """
        n, channels, gh, gw = grids.shape
        if n < MIN_IMAGES:
            raise ValueError(f"the layout model needs at least {MIN_IMAGES} Normal images, got {n}")
        flat = grids.reshape(n, -1).double()
        order = torch.randperm(n, generator=generator)
        held = order[:max(1, math.ceil(CALIBRATION_SHARE * n))]
        rest = order[len(held):]
        probe = cls._fitted(flat[rest], channels, (gh, gw), kernel, variance)
        residual_q = torch.quantile(probe.residual_cells(flat[held].float()).flatten(), QUANTILE).item()
        model = cls._fitted(flat, channels, (gh, gw), kernel, variance)
        if patch_distance_quantile is not None and residual_q > 0:
            model.weight.fill_(patch_distance_quantile / residual_q)
        return model

    @classmethod
    def _fitted(cls, flat: torch.Tensor, channels: int, grid: tuple[int, int], kernel: tuple[int, int],
                variance: float) -> LayoutModel:
        mean = flat.mean(0)
        std = flat.std(0).clamp_min(1e-3)  # constant elements (ROI padding) must not blow up
        centred = (flat - mean) / std
        singular, directions = principal_directions(centred)
        energy = singular.square().cumsum(0) / singular.square().sum().clamp_min(1e-12)
        keep = int(torch.searchsorted(energy, torch.tensor(variance, dtype=energy.dtype)).item()) + 1
        keep = max(1, min(keep, len(flat) - 1, int((singular > 0).sum())))
        model = cls(channels, grid, keep, kernel)
        model.mean.copy_(mean.float())
        model.inv_std.copy_((1.0 / std).float())
        model.components.copy_(directions[:keep].float())
        return model

    def residual_cells(self, flat: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` flattened grids -> ``(N, gh, gw)`` squared residual per cell (summed over channels)."""
        centred = (flat - self.mean) * self.inv_std
        residual = centred - (centred @ self.components.T) @ self.components
        return residual.square().reshape(-1, self.channels, *self.grid).sum(1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` patch embedding -> ``(N, 1, h, w)`` layout anomaly in patch-distance units."""
        cells = self.residual_cells(pooled(embedding, self.kernel).flatten(1)).unsqueeze(1)
        return F.interpolate(cells, size=embedding.shape[-2:], mode="bilinear", align_corners=False) * self.weight
