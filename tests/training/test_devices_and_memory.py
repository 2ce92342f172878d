"""Devices are listed with memory; running out of memory becomes advice, not a crash."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.training.config import TrainConfig
from astrocyte_lab.training.devices import (
    advise_on_out_of_memory,
    is_out_of_memory,
    list_devices,
    memory_advice,
    resolve_device,
)
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


# ------------------------------------------------------------------------------------------------ issue 19, item 6

def _cv2_error(message: str) -> Exception:
    import cv2

    return cv2.error(message)


def _numpy_memory_error() -> Exception:
    import numpy as np

    try:
        np.ones((1 << 40, 1 << 20), np.uint8)  # 1 PiB: refused by the allocator at once
    except (MemoryError, ValueError) as exc:
        return exc
    raise AssertionError("numpy allocated a petabyte")


OUT_OF_MEMORY_ERRORS = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cuda-runtime": lambda: RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
                                         "reported"),
    "cpu-allocator": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                                          "allocate memory: you tried to allocate 68719476736 bytes. Error code 12"),
    "numpy": _numpy_memory_error,
    "cv2-insufficient": lambda: _cv2_error("OpenCV(4.10.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to "
                                           "allocate 80000000000 bytes in function 'OutOfMemoryError'"),
    "os": lambda: OSError(12, "Cannot allocate memory"),
    "worker-killed": lambda: RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "),
    "cublas": lambda: RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
}


@pytest.mark.parametrize("kind", sorted(OUT_OF_MEMORY_ERRORS))
def test_every_kind_of_out_of_memory_is_recognised(kind: str) -> None:
    error = OUT_OF_MEMORY_ERRORS[kind]()
    assert is_out_of_memory(error)
    with pytest.raises(OutOfMemory, match=r"out of memory testing on cpu with batch size 8, region size 64 x 48: "
                                          r"lower the batch size, or the region size \(image size\), or pick a device "
                                          "with more memory") as raised:
        with advise_on_out_of_memory("testing", batch_size=8, region_size=(64, 48), device="cpu"):
            raise error
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("error", [RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError("bad value"),
                                   KeyError("out of memory"), OSError(2, "No such file"),
                                   AstrocyteError("out of memory in the message of our own error")])
def test_other_errors_pass_through(error: Exception) -> None:
    assert not is_out_of_memory(error)
    with pytest.raises(type(error)) as raised, advise_on_out_of_memory("testing", batch_size=2):
        raise error
    assert raised.value is error


def test_out_of_memory_raised_from_another_error_is_recognised() -> None:
    try:
        try:
            raise MemoryError()
        except MemoryError as inner:
            raise RuntimeError("decoding failed") from inner
    except RuntimeError as outer:
        assert is_out_of_memory(outer)


def test_tile_size_advice() -> None:
    message = memory_advice("testing", region_size=(256, 256), tile_size=(512, 384))
    assert message == ("out of memory testing with region size 256 x 256, tile size 512 x 384: lower the region size "
                       "(image size), or the tile size, or pick a device with more memory")


@pytest.mark.parametrize("kind", ["cpu-allocator", "numpy", "cv2-insufficient"])
@pytest.mark.parametrize("where", ["loading", "step", "validation"])
def test_fit_gives_advice_for_cpu_out_of_memory_anywhere(kind: str, where: str) -> None:
    error = OUT_OF_MEMORY_ERRORS[kind]()

    class Failing(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int):
            if where == "loading":
                raise error
            return torch.randn(2), 0

    def loss_fn(model, batch):
        if where == "step":
            raise error
        return model(batch[0]).sum()

    def evaluate(model):
        if where == "validation":
            raise error
        return {"val_loss": 0.0}

    config = TrainConfig(epochs=1, batch_size=2)
    job = Job("oom", lambda ctx: fit(nn.Linear(2, 1), DataLoader(Failing(), batch_size=2), loss_fn, evaluate, config,
                                     ctx, torch.device("cpu")))
    with pytest.raises(OutOfMemory, match=r"training on cpu with batch size 2, region size the dataset size: lower the "
                                          "batch size") as raised:
        job.result(timeout=30)
    assert raised.value.__cause__ is error
