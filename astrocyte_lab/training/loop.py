"""The supervised fit loop every torch module shares: optimiser, LR schedule, mixed precision, early stopping,
divergence detection, cancellation and progress events."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.training.config import TrainConfig
from astrocyte_lab.training.devices import OutOfMemory, advise_on_out_of_memory
from astrocyte_lab.training.jobs import JobContext

__all__ = ["DIVERGENCE_FACTOR", "EvaluateFn", "FitResult", "OutOfMemory", "TrainingDiverged", "fit", "make_optimizer",
           "make_scheduler"]

DIVERGENCE_FACTOR = 1e3  # a batch loss this many times the first epoch's mean counts as exploding


class TrainingDiverged(AstrocyteError):
    """The loss became NaN/inf or exploded; the message says what to change."""


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


EvaluateFn = Callable[[nn.Module], dict[str, float]]  # -> {"val_loss": ..., other metrics}


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """``(scheduler, per_batch)``: one-cycle and cyclic step every batch, exponential every epoch."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "one_cycle":
        if total < 4:  # too short to warm up and anneal: keep the learning rate constant
            return None, False
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=total,
                                                   pct_start=min(0.5, max(0.2, 2.0 / total))), True
    if config.scheduler == "cyclic":
        return torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=config.learning_rate / 10,
                                                 max_lr=config.learning_rate,
                                                 step_size_up=max(1, 2 * steps_per_epoch),
                                                 cycle_momentum=config.optimizer == "sgd"), True
    if config.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma), False
    return None, False


def fit(model: nn.Module, train_loader: DataLoader, loss_fn: Callable[[nn.Module, object], torch.Tensor],
        evaluate: EvaluateFn, config: TrainConfig, context: JobContext, device: torch.device,
        trainable: list[torch.nn.Parameter] | None = None, monitor: str = "val_loss") -> FitResult:
    """Train ``model``; return the weights of the epoch with the lowest ``monitor`` value.

    ``loss_fn(model, batch)`` moves the batch to the device and returns the loss; ``evaluate(model)`` runs
    validation and returns metrics including ``monitor``. Running out of memory anywhere in the loop (loading
    a batch, the step, validation), on the GPU or the CPU, raises :class:`OutOfMemory` with advice.
    """
    with advise_on_out_of_memory("training", batch_size=config.batch_size, region_size=config.region_size,
                                 device=str(device)):
        return _fit(model, train_loader, loss_fn, evaluate, config, context, device, trainable, monitor)


def _fit(model: nn.Module, train_loader: DataLoader, loss_fn: Callable[[nn.Module, object], torch.Tensor],
         evaluate: EvaluateFn, config: TrainConfig, context: JobContext, device: torch.device,
         trainable: list[torch.nn.Parameter] | None, monitor: str) -> FitResult:
    params = trainable if trainable is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    steps = len(train_loader)
    if steps == 0:
        raise AstrocyteError("no training image: assign some images to the train set (shuffle or assign_set)")
    scheduler, per_batch = make_scheduler(optimizer, config, steps)
    use_amp = config.mixed_precision and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    total = None if config.early_stopping else config.epochs * steps
    result = FitResult(best_state=copy.deepcopy(model.state_dict()))
    best = math.inf
    since_best = 0
    reference_loss: float | None = None
    step = 0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses: list[float] = []
        for batch in train_loader:
            context.check_cancelled()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model, batch)
            scaler.scale(loss).backward()
            if config.max_grad_norm:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if per_batch and scheduler is not None:
                scheduler.step()
            value = float(loss.detach())
            _check_divergence(value, reference_loss, epoch, step, config)
            losses.append(value)
            step += 1
            context.progress(step, total, f"epoch {epoch}/{config.epochs}")
            context.emit("batch", {"loss": value, "lr": optimizer.param_groups[0]["lr"]}, epoch=epoch)
        if reference_loss is None:
            reference_loss = sum(losses) / len(losses)
        if scheduler is not None and not per_batch:
            scheduler.step()
        metrics = {"loss": sum(losses) / len(losses), **evaluate(model)}
        metrics["epoch"] = epoch
        result.history.append(metrics)
        context.emit("epoch", {k: float(v) for k, v in metrics.items()}, epoch=epoch)
        if metrics[monitor] < best - 1e-6:
            best, since_best = metrics[monitor], 0
            result.best_state = copy.deepcopy(model.state_dict())
            result.best_epoch = epoch
        else:
            since_best += 1
        if config.early_stopping and epoch > config.warmup_epochs and since_best >= config.patience:
            result.stopped_early = True
            context.emit("status", message=f"early stopping after epoch {epoch} (best epoch {result.best_epoch})")
            break
    result.seconds = time.perf_counter() - start
    model.load_state_dict(result.best_state)
    return result


def _check_divergence(value: float, reference: float | None, epoch: int, step: int, config: TrainConfig) -> None:
    if math.isfinite(value) and (reference is None or value < DIVERGENCE_FACTOR * max(reference, 1e-3)):
        return
    what = "became NaN/infinite" if not math.isfinite(value) else f"exploded to {value:.3g}"
    raise TrainingDiverged(
        f"training loss {what} at epoch {epoch}, batch {step}: lower the learning rate (now "
        f"{config.learning_rate:g}, try {config.learning_rate / 10:g}), use the one-cycle scheduler, or check the "
        "labels for errors")

