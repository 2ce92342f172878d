"""File-based job records: what another process sees of a running job, and how it cancels it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astrocyte_lab.training import job_records
from astrocyte_lab.training.jobs import Job, JobCancelled


def slow_work(ctx, seconds: float = 30.0):
    deadline = time.time() + seconds
    step = 0
    while time.time() < deadline:
        ctx.check_cancelled()
        step += 1
        ctx.progress(step, None, f"step {step}")
        time.sleep(0.02)
    return step


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_job_without_workspace_writes_nothing(tmp_path: Path):
    job = Job("plain", lambda ctx: 1)
    assert job.result(5) == 1
    assert job.record is None
    assert job_records.list_records(tmp_path) == []


def test_record_follows_the_job_to_done(tmp_path: Path):
    job = Job("quick", lambda ctx: slow_work(ctx, 0.3), workspace=tmp_path)
    assert job.record is not None
    first = job_records.get_record(tmp_path, job.record.id)
    assert first["state"] == "running" and first["name"] == "quick"
    job.result(10)
    records = job_records.list_records(tmp_path)
    assert [r["id"] for r in records] == [job.record.id]
    assert records[0]["state"] == "done" and records[0]["ended"] is not None
    assert not list((tmp_path / "jobs").glob(".*.tmp"))


def test_workspace_object_is_accepted(tmp_path: Path):
    class FakeWorkspace:
        path = tmp_path / "ws"

    job = Job("w", lambda ctx: None, workspace=FakeWorkspace())
    job.result(5)
    assert job_records.list_records(tmp_path / "ws")[0]["state"] == "done"


def test_cancel_request_stops_the_job(tmp_path: Path):
    job = Job("slow", slow_work, workspace=tmp_path)
    record = job_records.request_cancel(tmp_path, job.record.id)
    assert record["cancel_requested"] is True
    assert job.wait(10)
    with pytest.raises(JobCancelled):
        job.result()
    final = job_records.get_record(tmp_path, job.record.id)
    assert final["state"] == "cancelled"
    assert not (tmp_path / "jobs" / f"{job.record.id}.cancel").exists()
    with pytest.raises(job_records.JobRecordError, match="not running"):
        job_records.request_cancel(tmp_path, job.record.id)


@pytest.mark.parametrize("bad", ["../x", "", "20260101T000000-1-zzzzzzzz", "a/b", "x" * 300, None])
def test_bad_ids_are_refused(tmp_path: Path, bad):
    with pytest.raises(job_records.JobRecordError):
        job_records.request_cancel(tmp_path, bad)


def test_unknown_id(tmp_path: Path):
    with pytest.raises(job_records.JobRecordError, match="no job"):
        job_records.get_record(tmp_path, "20260101T000000-1-0123abcd")


def test_dead_process_shows_as_lost(tmp_path: Path):
    # a job started in another process that is then killed leaves a "running" record behind
    code = ("import time, sys; from astrocyte_lab.training.jobs import Job; "
            "j = Job('orphan', lambda ctx: time.sleep(60), workspace=sys.argv[1]); print(j.record.id, flush=True); "
            "time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    job_id = process.stdout.readline().strip()
    assert job_records.get_record(tmp_path, job_id)["state"] == "running"
    process.kill()
    process.wait(10)
    record = job_records.get_record(tmp_path, job_id)
    assert record["state"] == "lost" and "ended" in record["message"]
    with pytest.raises(job_records.JobRecordError):
        job_records.request_cancel(tmp_path, job_id)


def test_silent_record_shows_as_lost(tmp_path: Path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    job_id = "20260101T000000-999999-0123abcd"
    (folder / f"{job_id}.json").write_text(json.dumps({
        "id": job_id, "name": "old", "state": "running", "pid": 1, "host": "elsewhere", "started": 0, "updated": 0}))
    assert job_records.list_records(tmp_path)[0]["state"] == "lost"


def test_unreadable_records_are_skipped_and_old_ones_pruned(tmp_path: Path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "20260101T000000-1-0123abcd.json").write_text("{not json")
    (folder / "notes.json").write_text("{}")
    for i in range(5):
        job_id = f"20260101T00000{i}-1-0123abc{i}"
        (folder / f"{job_id}.json").write_text(json.dumps({"id": job_id, "name": str(i), "state": "done",
                                                            "started": i, "updated": i}))
    assert [r["name"] for r in job_records.list_records(tmp_path)] == ["4", "3", "2", "1", "0"]
    job_records.prune(tmp_path, keep=2)
    assert [r["name"] for r in job_records.list_records(tmp_path)] == ["4", "3"]
