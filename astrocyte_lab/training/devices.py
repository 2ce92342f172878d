"""Compute devices: the CPU and every CUDA GPU, with memory, so a user can pick one for training; and the one
place that recognises running out of memory, on any device and in any library, and turns it into advice."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


# ----------------------------------------------------------------------------------------------- out of memory

class OutOfMemory(AstrocyteError):
    """The device ran out of memory; the message says what to lower (batch size, region or tile size)."""


#: Lower-cased fragments of the messages libraries raise when an allocation fails: torch on CUDA / ROCm / MPS
#: ("CUDA out of memory", "HIP out of memory", "MPS backend out of memory"), torch's CPU allocator
#: ("DefaultCPUAllocator: can't allocate memory"), cuBLAS / cuDNN ("CUBLAS_STATUS_ALLOC_FAILED"), OpenCV
#: ("Insufficient memory", "Failed to allocate"), numpy ("array is too big"), and a DataLoader worker killed
#: by the kernel's out-of-memory killer.
OUT_OF_MEMORY_MESSAGES: tuple[str, ...] = (
    "out of memory", "can't allocate memory", "cannot allocate memory", "alloc_failed", "insufficient memory",
    "failed to allocate", "array is too big", "is killed by signal: killed")
MAX_CAUSES = 8  # how far along ``__cause__`` an out-of-memory error is looked for


def _message_may_tell(exc: BaseException) -> bool:
    """Exception types whose message is worth reading: torch's RuntimeError, OpenCV's ``cv2.error``, numpy's
    ValueError for impossible sizes (cv2 is not imported here: its error is known by its module)."""
    kind = type(exc)
    return isinstance(exc, RuntimeError | ValueError) or (kind.__name__ == "error" and kind.__module__ == "cv2")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) means an allocation failed, on any device."""
    seen: BaseException | None = exc
    for _ in range(MAX_CAUSES):
        if seen is None or isinstance(seen, AstrocyteError):
            return False
        if isinstance(seen, MemoryError | torch.OutOfMemoryError):
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ENOMEM:
            return True
        if _message_may_tell(seen) and any(part in str(seen).lower() for part in OUT_OF_MEMORY_MESSAGES):
            return True
        seen = seen.__cause__
    return False


def _size(value: tuple[int, int] | list[int] | None) -> str | None:
    return None if value is None else f"{value[0]} x {value[1]}"


def memory_advice(what: str, exc: BaseException | None = None, *, batch_size: int | None = None,
                  region_size: tuple[int, int] | list[int] | None = None,
                  tile_size: tuple[int, int] | list[int] | None = None, device: str | None = None) -> str:
    """The out-of-memory message: what ran out, the settings in force, what to lower, and the library's words.

    ``region_size`` None with a ``batch_size`` means the dataset's own size is the network input.
    """
    settings = [f"batch size {batch_size}"] if batch_size is not None else []
    if region_size is not None or batch_size is not None:
        settings.append(f"region size {_size(region_size) or 'the dataset size'}")
    if tile_size is not None:
        settings.append(f"tile size {_size(tile_size)}")
    lower = (["the batch size"] if batch_size is not None else []) + ["the region size (image size)"] + \
        (["the tile size"] if tile_size is not None else [])
    where = f" on {device}" if device else ""
    text = f"out of memory {what}{where}"
    if settings:
        text += f" with {', '.join(settings)}"
    text += f": lower {', or '.join(lower)}, or pick a device with more memory"
    if exc is not None:
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        text += f" ({type(exc).__name__}: {detail})" if detail else f" ({type(exc).__name__})"
    return text


def _release_cached_memory() -> None:
    """Give CUDA's cached blocks back after a failed allocation, so the next job starts from a clean slate."""
    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except RuntimeError:  # a broken context: nothing to give back
            pass


@contextmanager
def advise_on_out_of_memory(what: str, **settings: object) -> Iterator[None]:
    """Turn any out-of-memory failure inside the block into :class:`OutOfMemory` with :func:`memory_advice`.

    ``settings`` are :func:`memory_advice`'s keywords (``batch_size``, ``region_size``, ``tile_size``,
    ``device``). Every other exception passes through unchanged.
    """
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        message = memory_advice(what, exc, **settings)  # type: ignore[arg-type]
        _release_cached_memory()
        raise OutOfMemory(message) from exc
