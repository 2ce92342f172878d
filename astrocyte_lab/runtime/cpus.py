"""How many CPUs this process may use: the default for onnxruntime's threads and the resize pool's size."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs in this process's affinity mask (all of ``os.cpu_count()`` where the OS has no such mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
