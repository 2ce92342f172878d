"""The fuzz suite's harness: run one input through a reader in a forked child under an address-space limit.

``bounded(fn, *args, memory_mib=..., timeout_s=...)`` forks, caps the child's virtual memory at what the parent
already maps plus ``memory_mib`` (``RLIMIT_AS``), runs ``fn(*args)`` and reports back how it ended. It
fails the test when the child raised anything but a project error (:class:`AstrocyteError` or the runtime's
:class:`AstromodelError`), ran out of its memory allowance (``MemoryError`` or a crash), or outlived
``timeout_s``; otherwise it returns ``fn``'s result if it pickles, or ``None``, when it returned, and the
project error's message when it raised one (as :class:`Refused`).

``outside_untouched(root)`` snapshots a folder tree so a test can assert nothing was written beside its target.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import resource
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.runtime.errors import AstromodelError

PROJECT_ERRORS = (AstrocyteError, AstromodelError)
M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


@dataclass(frozen=True)
class Refused:
    """The reader refused the input with a project error."""

    type: str
    message: str


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _fewer_reservations() -> None:
    """Keep address-space use independent of the core count: glibc reserves 64 MiB per malloc arena (one per
    thread, up to 8 x cores) and zarr reads through a thread pool sized by the core count."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
    import zarr

    zarr.config.set({"threading.max_workers": 2})


def _child(conn: Any, fn: Callable[..., Any], args: tuple, memory_mib: int) -> None:
    _fewer_reservations()
    limit = _mapped_bytes() + memory_mib * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = fn(*args)
        try:
            payload = ("ok", pickle.dumps(result))
        except Exception:  # noqa: BLE001 - an unpicklable result is fine, the call returned
            payload = ("ok", pickle.dumps(None))
    except PROJECT_ERRORS as exc:
        payload = ("refused", type(exc).__name__, str(exc))
    except MemoryError:
        payload = ("memory", traceback.format_exc())
    except BaseException as exc:  # noqa: BLE001 - every other exception is what the fuzz suite looks for
        text = traceback.format_exc()
        kind = "memory" if "can't allocate memory" in str(exc) or "Cannot allocate memory" in str(exc) else "raw"
        payload = (kind, text)
    conn.send(payload)
    conn.close()


def run_bounded(fn: Callable[..., Any], *args: Any, memory_mib: int = 768, timeout_s: float = 60.0) -> Any:
    """Run ``fn(*args)`` in a memory-capped child; fail on a raw exception, exhaustion or a hang."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, fn, args, memory_mib), daemon=True)
    process.start()
    child.close()
    if not parent.poll(timeout_s):
        process.kill()
        process.join()
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r:.300} did not finish within {timeout_s} s")
    try:
        payload = parent.recv()
    except EOFError:
        process.join()
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r:.300}: the child died (exit code {process.exitcode}), "
                    f"most likely past its {memory_mib} MiB allowance")
    process.join()
    if payload[0] == "ok":
        return pickle.loads(payload[1])
    if payload[0] == "refused":
        return Refused(payload[1], payload[2])
    if payload[0] == "memory":
        pytest.fail(f"past the {memory_mib} MiB allowance:\n{payload[1]}")
    pytest.fail(f"not a project error:\n{payload[1]}")


@pytest.fixture(scope="session")
def bounded() -> Callable[..., Any]:
    """:func:`run_bounded`, as a fixture (session-scoped, so hypothesis' ``@given`` tests can take it)."""
    return run_bounded


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time (links not followed)."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def outside_untouched(tmp_path: Path) -> Callable[[], None]:
    """``tmp_path/outside`` (a sibling for the target to stay away from); call the result to check it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    before = snapshot(outside)

    def check() -> None:
        assert snapshot(outside) == before, "a file was written outside the target"

    return check
