"""Devices are listed with memory; running out of memory becomes advice, not a crash."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.training.config import TrainConfig
from astrocyte_lab.training.devices import list_devices, resolve_device
from astrocyte_lab.training.jobs import Job
from astrocyte_lab.training.loop import OutOfMemory, fit


def test_cpu_is_always_listed_with_memory() -> None:
    devices = list_devices()
    assert devices[0].id == "cpu" and devices[0].total_memory and devices[0].total_memory > 0
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(AstrocyteError, match="not available"):
        resolve_device("cuda:7")


def test_out_of_memory_is_reported_with_advice() -> None:
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.zeros(8, dtype=torch.long)), batch_size=4)

    def loss_fn(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    config = TrainConfig(epochs=1, batch_size=4, region_size=(512, 512))
    job = Job("oom", lambda ctx: fit(nn.Linear(2, 2), loader, loss_fn, lambda m: {"val_loss": 0.0}, config, ctx,
                                     torch.device("cpu")))
    with pytest.raises(OutOfMemory, match="lower the batch size"):
        job.result(timeout=30)
    assert "512 x 512" in job.events[-1].message
