"""A bounded, allocation-free greedy k-center coreset for PatchCore's memory bank.

anomalib's ``KCenterGreedy`` projects every training patch and, at each of its thousands of steps, allocates
a fresh distance tensor over all of them; on CPU that is slow (8 minutes for the magnetic-tile benchmark) and
can fragment the allocator until the process is killed. The selection here is the same greedy rule (always
add the patch farthest from the patches already chosen) with three changes that bound time and memory:

* at most ``max_candidates`` patches take part, drawn uniformly at random (the rest are never candidates);
* distances are measured after a Gaussian random projection to ``projection`` dimensions (distances are
  roughly preserved, Johnson-Lindenstrauss), computed in place into preallocated buffers (nothing the size
  of the candidate pool is allocated after the start);
* the coreset holds at most ``size`` patches, the user-visible memory bank cap.

Cost: ``size`` steps over ``max_candidates x projection`` floats, with no allocation after the start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LEAST_PASSES = 32  # ``per_step`` never makes the selection fewer passes than this


def coreset_size(patches: int, ratio: float, cap: int) -> int:
    """How many patches the bank keeps: ``ratio`` of them, at least 1, at most ``cap`` and ``patches``."""
    return max(1, min(patches, cap, int(round(patches * ratio))))


@torch.no_grad()
def greedy_coreset(features: torch.Tensor, size: int, *, projection: int = 32, max_candidates: int = 50_000,
                   per_step: int = 1, seed: int = 0, device: torch.device | str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Indices (into ``features``' rows) of ``size`` patches chosen by greedy k-center selection.

    ``features`` is ``(N, D)``. The first centre is a random candidate; each next one is the candidate whose
    distance to its nearest chosen centre is largest. ``per_step`` > 1 adds that many of the farthest
    candidates at once (one pass over the candidates per step instead of one per centre: faster, slightly
    less even; capped so that there are at least ``LEAST_PASSES`` passes). ``progress(done, size)`` is called
    now and then. The random draws come from a CPU generator (the same choices for a seed); the distances are
    computed on ``device`` (default: where ``features`` are), and the indices returned are on the CPU.
    """
    total = features.shape[0]
    if size >= total:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(device) if device is not None else features.device
    if total > max_candidates:
        candidates = torch.randperm(total, generator=generator)[:max_candidates]
        points = features[candidates.to(features.device)].to(device).float()
    else:  # every patch is a candidate: no copy of the features
        candidates, points = torch.arange(total), features.to(device).float()
    if points.shape[1] > projection:
        matrix = torch.randn(points.shape[1], projection, generator=generator) / projection ** 0.5
        points = points @ matrix.to(device)
    points = points.contiguous()
    norms = (points * points).sum(1)
    nearest = torch.full((points.shape[0],), float("inf"), device=device)
    width = max(1, min(per_step, size // LEAST_PASSES))  # a small bank still takes many passes: evenly spread
    products = torch.empty(points.shape[0], width, device=device)
    step_min = torch.empty(points.shape[0], device=device)
    chosen = torch.empty(size, dtype=torch.long, device=device)
    picks = torch.randint(points.shape[0], (1,), generator=generator).to(device)
    done, every = 0, max(1, size // 50)
    while done < size:
        picks = picks[:size - done]
        count = picks.numel()
        chosen[done:done + count] = picks
        done += count
        # squared distances to the new centres, in place: |x|^2 - 2 x.c + |c|^2, then the running minimum
        out = products[:, :count]
        torch.matmul(points, points[picks].T, out=out)
        out.mul_(-2.0).add_(norms[:, None]).add_(norms[picks][None, :])
        torch.amin(out, 1, out=step_min)
        torch.minimum(nearest, step_min, out=nearest)
        if done < size:
            picks = torch.topk(nearest, min(width, size - done)).indices if width > 1 else nearest.argmax()[None]
        if progress is not None and done % every < count:
            progress(done, size)
    return candidates[chosen.cpu()]
