"""Jobs run in the background, report progress and events, cancel, and surface errors."""

from __future__ import annotations

import threading
import time

import pytest

from astrocyte_lab.training.jobs import Job, JobCancelled, JobContext


def test_job_runs_in_background_with_progress_and_events() -> None:
    release = threading.Event()

    def work(ctx: JobContext) -> str:
        for step in range(1, 5):
            ctx.progress(step, 4, f"step {step}")
            ctx.emit("batch", {"loss": 1.0 / step})
            if step == 2:
                release.wait(5)
        return "trained"

    seen = []
    job = Job("demo", work)
    job.subscribe(seen.append)
    deadline = time.time() + 5
    while job.status().step < 2 and time.time() < deadline:
        time.sleep(0.01)
    status = job.status()
    assert job.running and status.step == 2 and status.total == 4
    assert status.remaining is not None and status.eta is not None  # known total: an estimate exists
    release.set()
    assert job.result(timeout=5) == "trained"
    assert job.state == "done"
    assert [e.kind for e in seen] == ["batch"] * 4 + ["done"]
    assert seen[1].values == {"loss": 0.5}


def test_unknown_total_has_no_eta() -> None:
    job = Job("open-ended", lambda ctx: ctx.progress(3, None), start=False)
    job.start().wait(5)
    assert job.status().total is None and job.status().remaining is None


def test_cancel_stops_between_steps() -> None:
    def work(ctx: JobContext) -> None:
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    job = Job("forever", work)
    job.cancel()
    assert job.wait(5)
    assert job.state == "cancelled"
    with pytest.raises(JobCancelled):
        job.result()
    assert job.events[-1].kind == "cancelled"


def test_errors_are_reported_and_reraised() -> None:
    def work(ctx: JobContext) -> None:
        raise ValueError("bad labels")

    job = Job("broken", work)
    assert job.wait(5) and job.state == "failed"
    assert job.events[-1].kind == "error" and "bad labels" in job.events[-1].message
    with pytest.raises(ValueError, match="bad labels"):
        job.result()


def test_a_failing_subscriber_does_not_break_the_job() -> None:
    job = Job("observed", lambda ctx: ctx.emit("status", message="hello"), start=False)
    job.subscribe(lambda event: 1 / 0)
    job.start()
    assert job.wait(5) and job.state == "done"
