"""The shared fit loop: learns, keeps the best epoch, stops early, detects divergence, honours cancel."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from astrocyte_lab.training.config import TrainConfig
from astrocyte_lab.training.jobs import Job, JobCancelled, JobContext
from astrocyte_lab.training.loop import TrainingDiverged, fit


def problem(n: int = 64):
    torch.manual_seed(0)
    x = torch.randn(n, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True), x, y


def run(config: TrainConfig, model: nn.Module | None = None, cancel_after: int | None = None):
    loader, x, y = problem()
    model = model or nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def loss_fn(m, batch):
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        with torch.no_grad():
            logits = m(x)
        return {"val_loss": float(nn.functional.cross_entropy(logits, y)),
                "val_accuracy": float((logits.argmax(1) == y).float().mean())}

    def work(ctx: JobContext):
        if cancel_after is not None:
            original = ctx.progress

            def progress(step, total=None, message=None):
                original(step, total, message)
                if step >= cancel_after:
                    ctx._job.cancel()  # noqa: SLF001 - simulate the user pressing cancel mid-training

            ctx.progress = progress  # type: ignore[method-assign]
        return fit(model, loader, loss_fn, evaluate, config, ctx, torch.device("cpu"))

    job = Job("fit", work)
    return job, model


def test_learns_and_reports_every_batch_and_epoch() -> None:
    job, _ = run(TrainConfig(epochs=15, learning_rate=0.05, scheduler="exponential", seed=0))
    result = job.result(timeout=60)
    assert result.history[-1]["val_accuracy"] > 0.9
    kinds = [e.kind for e in job.events]
    assert kinds.count("batch") == 15 * 4 and kinds.count("epoch") == 15
    assert job.status().total == 60


def test_early_stopping_has_no_total_and_stops_after_patience() -> None:
    loader, _, _ = problem()
    model = nn.Linear(4, 2)
    calls = []

    def evaluate(m):  # validation improves until epoch 5, then worsens
        calls.append(1)
        return {"val_loss": abs(len(calls) - 5) + 1.0}

    config = TrainConfig(epochs=200, learning_rate=0.01, early_stopping=True, patience=3, warmup_epochs=2)
    job = Job("fit", lambda ctx: fit(model, loader, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
                                     evaluate, config, ctx, torch.device("cpu")))
    result = job.result(timeout=60)
    assert result.stopped_early and len(result.history) == 8 and result.best_epoch == 5
    assert job.status().total is None
    assert any("early stopping" in e.message for e in job.events)


@pytest.mark.parametrize("scheduler", ["one_cycle", "cyclic", "exponential", "none"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_every_scheduler_and_optimizer_runs(scheduler: str, optimizer: str) -> None:
    job, _ = run(TrainConfig(epochs=2, learning_rate=0.01, scheduler=scheduler, optimizer=optimizer))
    assert math.isfinite(job.result(timeout=60).history[-1]["loss"])


def test_divergence_stops_with_advice() -> None:
    class Exploding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return torch.stack([x[:, 0] * self.w * float("nan"), x[:, 1]], dim=1)

    job, _ = run(TrainConfig(epochs=3), model=Exploding())
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        job.result(timeout=60)
    assert job.events[-1].kind == "error"


def test_cancel_mid_training() -> None:
    job, _ = run(TrainConfig(epochs=50, learning_rate=0.01), cancel_after=5)
    with pytest.raises(JobCancelled):
        job.result(timeout=60)
    assert job.state == "cancelled"
    assert 5 <= job.status().step < 50 * 4
