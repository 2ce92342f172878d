"""Compute devices: the CPU and every CUDA GPU, with memory, so a user can pick one for training."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from astrocyte_lab.errors import AstrocyteError


@dataclass(frozen=True)
class Device:
    id: str  # "cpu" or "cuda:N"
    name: str
    total_memory: int | None  # bytes
    free_memory: int | None

    def __str__(self) -> str:
        if self.total_memory is None:
            return f"{self.id}: {self.name}"
        return f"{self.id}: {self.name} ({self.free_memory / 2**30:.1f} / {self.total_memory / 2**30:.1f} GiB free)"


def list_devices() -> list[Device]:
    """The CPU (system memory) and each visible CUDA device (total / free memory)."""
    devices = [_cpu()]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(Device(f"cuda:{index}", torch.cuda.get_device_name(index), total, free))
    return devices


def _cpu() -> Device:
    total = free = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        total = pages * size
        free = os.sysconf("SC_AVPHYS_PAGES") * size
    except (ValueError, OSError, AttributeError):
        pass
    return Device("cpu", f"CPU ({os.cpu_count()} cores)", total, free)


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` takes the first GPU when there is one, else the CPU; otherwise the named device."""
    if choice == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    known = {d.id for d in list_devices()}
    if choice not in known:
        raise AstrocyteError(f"device {choice!r} not available; choose from {sorted(known)} or 'auto'")
    return torch.device(choice)
