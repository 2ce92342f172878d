"""Long tasks (generation, training, testing, export) as jobs that run beside the notebook kernel.

A :class:`Job` runs its work in a background thread, so cells keep executing and widgets stay live. It
reports progress (step / total, elapsed, remaining, ETA), publishes :class:`Event` objects to subscribers
(widgets, the CLI), can be cancelled, and hands back a result or the error that stopped it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from astrocyte_lab.training.job_records import JobRecorder

State = Literal["pending", "running", "done", "failed", "cancelled"]


class JobCancelled(Exception):
    """Raised inside a job's work when the user cancelled it."""


@dataclass(frozen=True)
class Event:
    """One thing a job reports: a batch loss, an epoch's validation metrics, a status line, the end."""

    kind: str  # "batch" | "epoch" | "status" | "done" | "error" | "cancelled"
    step: int = 0
    epoch: int = 0
    values: dict[str, float] = field(default_factory=dict)
    message: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job's progress. ``total`` and the time estimates are None when unknown
    (for instance with early stopping, where the number of epochs is not known in advance)."""

    name: str
    state: State
    step: int
    total: int | None
    elapsed: float
    remaining: float | None
    eta: float | None  # wall-clock time of the expected end (epoch seconds)
    message: str

    def __str__(self) -> str:
        progress = f"{self.step}/{self.total}" if self.total else f"{self.step}"
        left = f", {self.remaining:.0f} s left" if self.remaining is not None else ""
        return f"{self.name}: {self.state} {progress} ({self.elapsed:.0f} s{left}) {self.message}".rstrip()


class JobContext:
    """Handed to a job's work function: report progress and events, and check for cancellation."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def progress(self, step: int, total: int | None = None, message: str | None = None) -> None:
        self._job._progress(step, total, message)

    def emit(self, kind: str, values: dict[str, float] | None = None, message: str = "", epoch: int = 0) -> None:
        self._job._publish(Event(kind, self._job._step, epoch, dict(values or {}), message))

    def check_cancelled(self) -> None:
        if self._job._cancel.is_set():
            raise JobCancelled(f"{self._job.name} cancelled")

    @property
    def cancelled(self) -> bool:
        return self._job._cancel.is_set()


class Job:
    """Run ``work(context)`` in a background thread; observe it with :meth:`status` and :meth:`subscribe`."""

    def __init__(self, name: str, work: Callable[[JobContext], Any], start: bool = True,
                 workspace: Any = None) -> None:
        self.name = name
        # with a workspace (path or Workspace), the job keeps <workspace>/jobs/<id>.json for other processes
        self._workspace = getattr(workspace, "path", workspace)
        self.record: JobRecorder | None = None
        self._work = work
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []
        self.events: list[Event] = []
        self._state: State = "pending"
        self._step, self._total, self._message = 0, None, ""
        self._started: float | None = None
        self._ended: float | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"astrocyte-job-{name}", daemon=True)
        if start:
            self.start()

    def start(self) -> Job:
        if self._state == "pending":
            self._state = "running"
            self._started = time.time()
            if self._workspace is not None:
                self.record = JobRecorder(self, self._workspace).start()
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._result = self._work(JobContext(self))
            self._finish("done", Event("done", self._step, message="finished"))
        except JobCancelled as exc:
            self._finish("cancelled", Event("cancelled", self._step, message=str(exc)))
        except BaseException as exc:  # noqa: BLE001 - a job reports every failure instead of dying silently
            self._error = exc
            self._finish("failed", Event("error", self._step, message=f"{type(exc).__name__}: {exc}"))
            self.traceback = traceback.format_exc()

    def _finish(self, state: State, event: Event) -> None:
        self._ended = time.time()
        self._state = state
        self._message = event.message
        self._publish(event)
        if self.record is not None:
            self.record.finish()
        self._done.set()

    def _progress(self, step: int, total: int | None, message: str | None) -> None:
        self._step = step
        self._total = total
        if message is not None:
            self._message = message

    def _publish(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a broken observer must not stop the training
                pass

    def subscribe(self, callback: Callable[[Event], None], replay: bool = True) -> None:
        """Call ``callback(event)`` for every new event (and, with ``replay``, the ones already sent)."""
        with self._lock:
            past = list(self.events) if replay else []
            self._subscribers.append(callback)
        for event in past:
            callback(event)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (between batches for training)."""
        self._cancel.set()

    @property
    def state(self) -> State:
        return self._state

    @property
    def running(self) -> bool:
        return self._state == "running"

    def status(self) -> JobStatus:
        now = self._ended or time.time()
        elapsed = now - self._started if self._started else 0.0
        remaining = eta = None
        if self._total and self._step and self._state == "running":
            remaining = elapsed / self._step * max(self._total - self._step, 0)
            eta = time.time() + remaining
        return JobStatus(self.name, self._state, self._step, self._total, elapsed, remaining, eta, self._message)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds pass); True when it ended."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The work's return value; re-raises its error; raises JobCancelled if it was cancelled."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} still running after {timeout} s")
        if self._state == "cancelled":
            raise JobCancelled(self._message)
        if self._error is not None:
            raise self._error
        return self._result

    def __repr__(self) -> str:
        return f"<Job {self.status()}>"


def run_inline(name: str, work: Callable[[JobContext], Any]) -> Any:
    """Run a job to completion in the calling thread's lifetime (scripts and the CLI) and return its result."""
    return Job(name, work).result()
