"""Job records in the workspace: what other processes (the JupyterLab sidebar) see of running jobs.

A :class:`~astrocyte_lab.training.jobs.Job` given a workspace keeps one small JSON file,
``<workspace>/jobs/<id>.json``, rewritten atomically when it starts, every second while it runs and when it
ends. Another process asks it to stop by creating ``<id>.cancel`` next to it (:func:`request_cancel`); the
job's watcher sees that file within a second and cancels the job the ordinary way.

A process that dies leaves a record saying "running": :func:`list_records` reports such records as
``lost`` (the pid is gone on this host, or the record has not been refreshed for :data:`STALE_AFTER_S`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrocyte_lab.errors import AstrocyteError

if TYPE_CHECKING:
    from astrocyte_lab.training.jobs import Job

FOLDER = "jobs"
HEARTBEAT_S = 1.0
STALE_AFTER_S = 60.0
KEEP_FINISHED = 100
ACTIVE = ("pending", "running")
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9]+-[0-9a-f]{8}$")


class JobRecordError(AstrocyteError):
    """A job id that is malformed or unknown, or a job that cannot be cancelled."""


class JobNotFoundError(JobRecordError):
    """No record with that id in the workspace."""


class JobNotRunningError(JobRecordError):
    """The job already ended (or its process is gone): there is nothing to cancel."""


def jobs_folder(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace) / FOLDER


def check_job_id(job_id: str) -> str:
    """Job ids become file names: refuse anything but the form :func:`new_job_id` makes."""
    if not isinstance(job_id, str) or not _ID.match(job_id):
        raise JobRecordError(f"invalid job id {job_id!r}")
    return job_id


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


class JobRecorder:
    """Mirrors one job into ``<workspace>/jobs/<id>.json`` and watches for a cancel request."""

    def __init__(self, job: Job, workspace: str | os.PathLike[str]) -> None:
        self.job = job
        self.folder = jobs_folder(workspace)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # then writes fail quietly: an unwritable workspace must not stop the training
        self.id = new_job_id()
        self.path = self.folder / f"{self.id}.json"
        self.cancel_path = self.folder / f"{self.id}.cancel"
        self.started = time.time()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"astrocyte-job-record-{self.id}", daemon=True)

    def start(self) -> JobRecorder:
        self.write()
        self._thread.start()
        try:
            prune(self.folder.parent)
        except OSError:
            pass
        return self

    def snapshot(self) -> dict[str, Any]:
        status = self.job.status()
        return {"id": self.id, "name": self.job.name, "state": status.state, "step": status.step,
                "total": status.total, "message": status.message, "elapsed": round(status.elapsed, 3),
                "remaining": status.remaining, "pid": os.getpid(), "host": socket.gethostname(),
                "started": self.started, "updated": time.time(),
                "ended": None if status.state in ACTIVE else time.time()}

    def write(self) -> None:
        with self._lock:
            try:
                _write_atomic(self.path, self.snapshot())
            except OSError:
                pass  # a full disk or a removed workspace must not stop the training

    def _watch(self) -> None:
        while not self._closed.wait(HEARTBEAT_S):
            if self.cancel_path.exists():
                self.job.cancel()
            self.write()

    def finish(self) -> None:
        """Write the final state and stop watching (called by the job when it ends)."""
        self._closed.set()
        self.write()
        self.cancel_path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("id") == path.stem else None


def _effective(record: dict[str, Any], folder: Path, now: float) -> dict[str, Any]:
    record = dict(record)
    if record.get("state") in ACTIVE:
        same_host = record.get("host") == socket.gethostname()
        dead = same_host and isinstance(record.get("pid"), int) and not _pid_alive(record["pid"])
        stale = now - float(record.get("updated") or 0) > STALE_AFTER_S
        if dead or stale:
            record["state"] = "lost"
            record["message"] = "the process running this job has ended" if dead else "no news from this job"
        elif (folder / f"{record['id']}.cancel").exists():
            record["cancel_requested"] = True
    return record


def list_records(workspace: str | os.PathLike[str], limit: int = 50) -> list[dict[str, Any]]:
    """The job records of a workspace, newest first: running ones, then finished, failed, cancelled or lost."""
    folder = jobs_folder(workspace)
    if not folder.is_dir():
        return []
    now = time.time()
    records = [r for p in folder.glob("*.json") if _ID.match(p.stem) and (r := _read(p)) is not None]
    records = [_effective(r, folder, now) for r in records]
    records.sort(key=lambda r: (r["state"] not in ACTIVE, -float(r.get("started") or 0)))
    return records[:limit]


def get_record(workspace: str | os.PathLike[str], job_id: str) -> dict[str, Any]:
    folder = jobs_folder(workspace)
    record = _read(folder / f"{check_job_id(job_id)}.json")
    if record is None:
        raise JobNotFoundError(f"no job {job_id!r} in {folder}")
    return _effective(record, folder, time.time())


def request_cancel(workspace: str | os.PathLike[str], job_id: str) -> dict[str, Any]:
    """Ask a job of another process to stop; returns its record (``cancel_requested`` set)."""
    record = get_record(workspace, job_id)
    if record["state"] not in ACTIVE:
        raise JobNotRunningError(f"job {job_id!r} is not running ({record['state']})")
    (jobs_folder(workspace) / f"{job_id}.cancel").touch()
    record["cancel_requested"] = True
    return record


def prune(workspace: str | os.PathLike[str], keep: int = KEEP_FINISHED) -> None:
    """Delete the oldest finished records beyond ``keep`` (and cancel files whose job is gone)."""
    folder = jobs_folder(workspace)
    finished = [r for r in list_records(workspace, limit=10**9) if r["state"] not in ACTIVE]
    for record in finished[keep:]:
        (folder / f"{record['id']}.json").unlink(missing_ok=True)
    for cancel in folder.glob("*.cancel"):
        if not (folder / f"{cancel.stem}.json").exists():
            cancel.unlink(missing_ok=True)
