"""Auto train: a trial-based hyper-parameter search (optuna) around any module's own training job.

Each trial is one complete training through the module's ``train_job`` into a temporary model named
``<model>.trial-NNN``. A TPE sampler picks the next trial's values from the finished ones; the per-epoch
validation metric is reported to a percentile pruner and an unpromising trial's job is cancelled. The first
trial takes the given configuration's own values of the searched fields (and is never pruned), so with a
fixed seed and ``early_stopping=False`` the result is never worse on the validation metric than a manual
training with that configuration: the first trial is that training. The best trial's model becomes
``model_name``; its record keeps every trial (parameters, metric, state, duration) under ``"auto"``.

The study lives in ``<workspace>/studies/<model>.journal``: optuna's journal storage, an append-only log
whose appends are made under a ``flock`` (safe across processes; the kernel frees it if a process dies).
Calling :func:`auto_train` again with the same model name continues it: finished trials are kept, trials
cut short by a crash are retried, and the search stops at the requested total. Study-level steps (counting
and asking, telling and cleaning up, publishing the result) run under an exclusive ``flock`` on
``studies/<model>.lock``, so two notebooks on one study share its trials instead of overrunning the total
or deleting each other's models. A process that runs trials holds a lock on its own file under
``studies/<model>.owners/``; a trial still marked running whose owner's lock is free was orphaned by a
dead process.

Several devices run trials in parallel, one trial per device (the same device may be listed twice).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.training.auto_spaces import SearchSpace, search_space
from astrocyte_lab.training.jobs import Event, Job, JobCancelled, JobContext
from astrocyte_lab.training.loop import OutOfMemory, TrainingDiverged

INTENSITY: dict[str, int] = {"low": 20, "medium": 40, "high": 60}
TRIAL_MARK = "auto-train trial of "  # description prefix of the temporary trial models


def trial_count(intensity: str | int) -> int:
    """Low / Medium / High = 20 / 40 / 60 trials, or a custom positive count (an int or its digits)."""
    if isinstance(intensity, str):
        key = intensity.strip().lower()
        if key in INTENSITY:
            return INTENSITY[key]
        if not key.isdigit():
            raise AstrocyteError(f"tuning intensity must be low, medium, high or a number of trials, not {intensity!r}")
        intensity = int(key)
    if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 1:
        raise AstrocyteError(f"the number of trials must be a positive integer, not {intensity!r}")
    return intensity


def auto_train(workspace: Workspace, dataset_name: str, model_name: str, config: Any = None,
               intensity: str | int = "low", devices: Sequence[str] | None = None, early_stopping: bool = True,
               description: str = "", resume: bool = True) -> Job:
    """Search hyper parameters for ``model_name`` in the background; ``job.result()`` is its name.

    ``config`` is the module's config (default: the module's defaults); its searched fields seed the first
    trial, its other fields are kept by every trial, and ``epochs`` caps each trial (with early stopping
    unless ``early_stopping=False``). ``devices`` lists one entry per parallel trial (default: the config's
    device). ``resume=False`` sets an unfinished stored study aside and starts a new one.
    """
    from astrocyte_lab.data.workspace import check_name
    from astrocyte_lab.modules.registry import entry

    check_name(model_name)
    total = trial_count(intensity)
    module = workspace.dataset(dataset_name).module
    space = search_space(module)
    config_type = entry(module).load("config")
    if config is None:
        config = config_type()
    elif not isinstance(config, config_type):
        raise AstrocyteError(f"dataset {dataset_name!r} is a {module} dataset: pass a {config_type.__name__}, "
                             f"not a {type(config).__name__}")
    if workspace.model_store.exists(model_name):
        raise AstrocyteError(f"a trained model named {model_name!r} already exists: choose another name")
    slots = _check_devices(list(devices) if devices else [config.device])
    search = _Search(workspace, dataset_name, model_name, module, space, config, total, slots, early_stopping,
                     description, resume)
    return Job(f"auto-train {model_name}", search.run, workspace=workspace)


def _check_devices(devices: list[str]) -> list[str]:
    """Each entry checked and ``auto`` resolved, so trial records name the device that ran them."""
    from astrocyte_lab.training.devices import resolve_device

    return [str(resolve_device(device)) for device in devices]


def study_path(workspace: Workspace, model_name: str) -> Path:
    """Where the study of ``model_name`` is stored (it exists while a search is under way or stopped)."""
    return Path(workspace.path) / "studies" / f"{model_name}.journal"


def trials_frame(workspace: Workspace, model_name: str):
    """Every trial as a pandas table (number, state, value, duration, device, parameters...): from the
    model's record once the search is done, else from the stored study."""
    import pandas as pd

    store = workspace.model_store
    if store.exists(model_name) and "auto" in store.record(model_name):
        rows = store.record(model_name)["auto"]["trials"]
    else:
        path = study_path(workspace, model_name)
        if not path.is_file():
            raise AstrocyteError(f"no auto-train study or auto-trained model named {model_name!r}")
        rows = [_trial_row(t) for t in _load_study(path, model_name).get_trials(deepcopy=False)]
    flat = [{k: v for k, v in row.items() if k != "params"} | {f"param_{k}": v for k, v in row["params"].items()}
            for row in rows]
    return pd.DataFrame(flat)


# ------------------------------------------------------------------------------------------------------------
# storage and locks


def _storage(path: Path):
    import optuna

    backend = optuna.storages.journal.JournalFileBackend(str(path), lock_obj=_journal_lock(path))
    return optuna.storages.JournalStorage(backend)


def _journal_lock(path: Path):
    """The journal's write lock as a ``flock`` on ``<journal>.wlock``: released by the kernel when a process
    dies, so a kill during a write cannot leave a stale lock (optuna's own file locks wait out a grace period
    and then break the lock by force)."""
    from optuna.storages.journal._file import BaseJournalFileLock

    class FlockLock(BaseJournalFileLock):
        def __init__(self) -> None:
            self._threads = threading.Lock()
            self._fd: int | None = None

        def acquire(self) -> bool:
            self._threads.acquire()
            try:
                fd = os.open(f"{path}.wlock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
            self._fd = fd
            return True

        def release(self) -> None:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
            self._threads.release()

    return FlockLock()


def _load_study(path: Path, model_name: str, sampler=None, pruner=None):
    import optuna

    return optuna.load_study(study_name=model_name, storage=_storage(path), sampler=sampler, pruner=pruner)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the block; each use opens its own descriptor, so it also keeps the
    threads of one process apart, and the kernel drops it when a killed process's descriptors close."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Owner:
    """Marks this process as alive for its study's trials: a lock held on its own file while it runs."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex
        self.path = folder / f"{self.id}.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)

    @staticmethod
    def alive(folder: Path, owner: str | None) -> bool:
        if not owner:
            return False
        path = folder / f"{owner}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)
        return False


# ------------------------------------------------------------------------------------------------------------
# the search


def _trial_row(t: Any) -> dict:
    a = t.user_attrs
    state = "interrupted" if a.get("interrupted") else t.state.name.lower()
    return {"number": t.number, "state": state, "value": t.value, "metrics": a.get("metrics", {}),
            "duration_s": a.get("duration_s"), "device": a.get("device"), "seed": a.get("seed"),
            "best_epoch": a.get("best_epoch"), "epochs": a.get("epochs"), "error": a.get("error"),
            "params": dict(t.params)}


class _Search:
    def __init__(self, workspace: Workspace, dataset: str, model_name: str, module: str, space: SearchSpace,
                 config: Any, total: int, devices: list[str], early_stopping: bool, description: str,
                 resume: bool) -> None:
        self.ws, self.dataset, self.model_name, self.module = workspace, dataset, model_name, module
        self.space, self.config, self.total, self.devices = space, config, total, devices
        self.early_stopping, self.description, self.resume = early_stopping, description, resume
        self.path = study_path(workspace, model_name)
        self.lock_path = self.path.with_suffix(".lock")
        self.owners = self.path.with_suffix(".owners")
        self.batches = 0
        self.counter = threading.Lock()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    # public entry (the job's work) ---------------------------------------------------------------------------

    def run(self, ctx: JobContext) -> str:
        self.ctx = ctx
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.owner = _Owner(self.owners)
        started = time.time()
        try:
            self.study = self._open_study()
            done = self._counted(self.study.get_trials(deepcopy=False))
            ctx.emit("status", message=f"auto train {self.model_name}: {len(done)} of {self.total} trials stored, "
                                       f"running on {', '.join(self.devices)}")
            workers = [threading.Thread(target=self._worker, args=(device,), daemon=True,
                                        name=f"astrocyte-auto-{self.model_name}-{i}")
                       for i, device in enumerate(self.devices)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if self.errors:
                raise self.errors[0]
            ctx.check_cancelled()
            self._wait_for_other_processes()
            return self._finalize(started)
        finally:
            self.owner.release()

    # study set-up ------------------------------------------------------------------------------------------

    def _open_study(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = self.config.seed if self.config.seed >= 0 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(n_startup_trials=max(2, min(10, self.total // 3)), seed=seed,
                                                 multivariate=True, group=True, constant_liar=True)
        # prune a trial whose best value so far is in the bottom quarter of the finished trials at the same epoch
        # (percentile 75: the top three quarters go on), from epoch max(1, epochs // 2) on, once 3-5 trials have
        # finished (gentler than a median pruner, which stops about half of the trials of a short search)
        pruner = optuna.pruners.PercentilePruner(75.0, n_startup_trials=max(3, min(5, self.total // 4)),
                                                 n_warmup_steps=max(1, self.config.epochs // 2))
        with _flock(self.lock_path):
            study = None
            if self.path.is_file():
                with contextlib.suppress(KeyError):  # an empty log: its creator died before writing the study
                    study = _load_study(self.path, self.model_name, sampler, pruner)
            attrs = study.user_attrs if study is not None else {}
            if "id" in attrs and not attrs.get("finalized") and self.resume:
                if (attrs.get("dataset"), attrs.get("module")) != (self.dataset, self.module):
                    raise AstrocyteError(
                        f"the stored study for {self.model_name!r} tunes {attrs.get('module')} dataset "
                        f"{attrs.get('dataset')!r}, not {self.dataset!r}: resume=False starts a new one")
                self.study_id = attrs["id"]
                return study
            if self.path.is_file():  # finished, set aside by the caller, or cut short while being created
                self._set_aside()
            study = optuna.create_study(study_name=self.model_name, storage=_storage(self.path), sampler=sampler,
                                        pruner=pruner, direction="maximize")
            study.enqueue_trial(self.space.defaults(self.config), user_attrs={"default": True})
            self.study_id = uuid.uuid4().hex
            for key, value in {"dataset": self.dataset, "module": self.module, "metric": self.space.metric,
                               "config": self.config.to_dict(), "created": _now(),
                               "id": self.study_id}.items():  # the id last: it marks a complete set-up
                study.set_user_attr(key, value)
            return study

    def _set_aside(self) -> None:
        archive = self.path.parent / "archive"
        archive.mkdir(exist_ok=True)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
        self.path.rename(archive / f"{self.model_name}.{stamp}.journal")

    # trials ---------------------------------------------------------------------------------------------------

    def _counted(self, trials: list) -> list:
        """Trials that count toward the total: finished ones (unless cut short) and those running."""
        from optuna.trial import TrialState

        return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))]

    def _release_orphans(self, trials: list) -> None:
        """Trials left running by a dead process: recorded as interrupted, and their values queued again."""
        from optuna.trial import TrialState

        storage = self.study._storage
        for t in trials:
            if t.state == TrialState.RUNNING and not _Owner.alive(self.owners, t.user_attrs.get("owner")):
                storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                if t.params:
                    self.study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})

    def _next_trial(self, device: str):
        with _flock(self.lock_path):
            trials = self.study.get_trials(deepcopy=False)
            self._release_orphans(trials)
            if len(self._counted(self.study.get_trials(deepcopy=False))) >= self.total:
                return None
            trial = self.study.ask()
            trial.set_user_attr("owner", self.owner.id)
            trial.set_user_attr("device", device)
            return trial

    def _worker(self, device: str) -> None:
        while not (self.ctx.cancelled or self.stop.is_set()):
            try:
                trial = self._next_trial(device)
                if trial is None:
                    return
                self._run_trial(trial, device)
            except BaseException as exc:  # noqa: BLE001 - handed to the job, which reports it
                self.errors.append(exc)
                self.stop.set()
                return

    def _trial_name(self, number: int) -> str:
        return f"{self.model_name[:88]}.trial-{number:03d}"

    def _run_trial(self, trial: Any, device: str) -> None:
        from optuna.trial import TrialState

        from astrocyte_lab.modules.registry import entry

        number = trial.number
        name = self._trial_name(number)
        params = self.space.sample(trial)
        store = self.ws.model_store
        if store.exists(name):  # left behind by a killed run of this study
            if not str(store.record(name).get("description", "")).startswith(TRIAL_MARK):
                raise AstrocyteError(f"model {name!r} is in the way of auto train's trial models: rename it")
            store.delete(name)
        values = {**self.config.to_dict(), **params, "device": device}
        if self.early_stopping:
            values["early_stopping"] = True
            values["warmup_epochs"] = min(self.config.warmup_epochs, self.config.epochs - 1)
        started = time.perf_counter()
        state = {"pruned": False}
        self.ctx.emit("status", message=f"trial {number} on {device}: {_short(params)}")
        try:
            config = type(self.config).model_validate(values)
            job = entry(self.module).load("train_job")(self.ws, self.dataset, name, config,
                                                       f"{TRIAL_MARK}{self.model_name}")
            job.subscribe(lambda event: self._on_trial_event(trial, number, job, event, state))
            while not job.wait(0.25):
                if self.ctx.cancelled or self.stop.is_set():
                    job.cancel()
            job.result()
            record = store.record(name)
            if not isinstance(record.get("metrics", {}).get(self.space.metric), int | float):
                raise AstrocyteError(f"trial {number} gave no validation {self.space.metric}: auto train compares "
                                     "trials on it (does the validation set have every kind of image it needs?)")
        except JobCancelled:
            if state["pruned"]:
                self._tell(trial, number, TrialState.PRUNED, started)
            else:
                trial.set_user_attr("interrupted", True)
                self._tell(trial, number, TrialState.FAIL, started)
                self.study.enqueue_trial(params, user_attrs={"retry_of": number})
            return
        except (TrainingDiverged, OutOfMemory) as exc:
            self._fail(trial, number, exc, started)
            return
        except Exception as exc:  # noqa: BLE001 - a broken set-up stops the search before any trial succeeded
            self._fail(trial, number, exc, started)
            if not any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
                raise
            return
        if state["pruned"]:  # pruned at the very end, after the model was saved
            store.delete(name)
            self._tell(trial, number, TrialState.PRUNED, started)
            return
        trial.set_user_attr("model", name)
        trial.set_user_attr("metrics", record["metrics"])
        trial.set_user_attr("best_epoch", record.get("best_epoch"))
        trial.set_user_attr("epochs", len(record.get("history", [])))
        trial.set_user_attr("seed", record.get("seed"))
        self._tell(trial, number, TrialState.COMPLETE, started, float(record["metrics"][self.space.metric]))

    def _on_trial_event(self, trial: Any, number: int, job: Job, event: Event, state: dict) -> None:
        ctx = self.ctx
        if event.kind == "batch":
            with self.counter:
                self.batches += 1
                step = self.batches
            ctx.progress(step, None, f"trial {number} epoch {event.epoch}")
            ctx.emit("batch", {**event.values, "trial": number}, epoch=event.epoch)
        elif event.kind == "epoch":
            ctx.emit("epoch", {**event.values, "trial": number}, epoch=event.epoch)
            value = event.values.get(self.space.metric)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), event.epoch)
            if trial.should_prune():
                state["pruned"] = True
                ctx.emit("status", message=f"trial {number} pruned after epoch {event.epoch} "
                                           f"({self.space.metric} {value:.4g})")
                job.cancel()
        elif event.kind == "status":
            ctx.emit("status", message=f"trial {number}: {event.message}")

    def _fail(self, trial: Any, number: int, exc: BaseException, started: float) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        name = self._trial_name(number)
        if self.ws.model_store.exists(name):  # saved, but unusable for the search
            self.ws.model_store.delete(name)
        self._tell(trial, number, TrialState.FAIL, started)

    def _tell(self, trial: Any, number: int, state: Any, started: float, value: float | None = None) -> None:
        """Record the trial's end, drop the models that are no longer the best, and publish a trial event."""
        from optuna.trial import TrialState

        duration = round(time.perf_counter() - started, 2)
        trial.set_user_attr("duration_s", duration)
        with _flock(self.lock_path):
            self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
            trials = self.study.get_trials(deepcopy=False)
            best = self._best(trials)
            for t in trials:
                name = t.user_attrs.get("model")
                if t.state.is_finished() and name and t is not best and self.ws.model_store.exists(name):
                    self.ws.model_store.delete(name)
            finished = sum(1 for t in self._counted(trials) if t.state.is_finished())
        label = "interrupted" if trial.user_attrs.get("interrupted") else state.name.lower()
        if state == TrialState.FAIL and "error" in trial.user_attrs:
            label = f"failed: {trial.user_attrs['error']}"
        nan = float("nan")
        self.ctx.emit("trial", {"trial": number, "value": nan if value is None else value,
                                "best": nan if best is None else float(best.value), "finished": finished,
                                "total": self.total, "duration_s": duration}, message=label)

    def _best(self, trials: list) -> Any:
        from optuna.trial import TrialState

        store = self.ws.model_store
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                    and store.exists(t.user_attrs.get("model", "\0"))]
        if not complete:
            return None
        tiebreak = self.space.tiebreak
        return max(complete, key=lambda t: (t.value, -t.user_attrs.get("metrics", {}).get(tiebreak, math.inf),
                                            -t.number))

    # the end -------------------------------------------------------------------------------------------------

    def _wait_for_other_processes(self) -> None:
        """Another process may still run trials of this study: its results count, so wait for them."""
        from optuna.trial import TrialState

        while True:
            with _flock(self.lock_path):
                if self._finalized():
                    return
                trials = self.study.get_trials(deepcopy=False)
                self._release_orphans(trials)
                if not any(t.state == TrialState.RUNNING for t in self.study.get_trials(deepcopy=False)):
                    return
            self.ctx.check_cancelled()
            time.sleep(1.0)

    def _finalized(self) -> bool:
        store = self.ws.model_store
        return store.exists(self.model_name) and store.record(self.model_name).get("auto", {}).get(
            "study") == self.study_id

    def _finalize(self, started: float) -> str:
        store = self.ws.model_store
        with _flock(self.lock_path):
            if self._finalized():
                return self.model_name
            if store.exists(self.model_name):
                raise AstrocyteError(f"a trained model named {self.model_name!r} appeared during the search")
            trials = self.study.get_trials(deepcopy=False)
            best = self._best(trials)
            if best is None:
                if any(t.state.name == "COMPLETE" for t in trials):
                    raise AstrocyteError(f"the models of the stored study's trials for {self.model_name!r} are gone "
                                         "(deleted?): resume=False starts a new search")
                errors = sorted({t.user_attrs.get("error", "") for t in trials} - {""})
                raise AstrocyteError(f"no auto-train trial of {self.model_name!r} completed"
                                     + (f": {'; '.join(errors)}" if errors else ""))
            rows = [_trial_row(t) for t in trials if t.state.is_finished()]
            summary = {"study": self.study_id, "storage": str(self.path.relative_to(self.ws.path)),
                       "trials_requested": self.total, "best_trial": best.number,
                       "devices": self.devices, "early_stopping": self.early_stopping,
                       "search_space": self.space.describe(), "base_config": self.study.user_attrs.get("config"),
                       "trials": rows}
            record = store.record(best.user_attrs["model"])
            store.update_record(best.user_attrs["model"], name=self.model_name, description=self.description,
                                auto=summary, duration_s=_wall_seconds(trials, started),
                                trial_duration_s=record.get("duration_s"))
            store.rename(best.user_attrs["model"], self.model_name)
            for t in trials:
                name = t.user_attrs.get("model")
                if name and name != best.user_attrs["model"] and store.exists(name):
                    store.delete(name)
            self.study.set_user_attr("finalized", self.model_name)
        self.ctx.emit("status", message=f"auto train {self.model_name}: best trial {best.number} "
                                        f"({self.space.metric} {best.value:.4g}) of {len(rows)}")
        return self.model_name


def _wall_seconds(trials: list, started: float) -> float:
    """From the first trial's start to the last one's end, across resumes (or this run's time)."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    if starts and ends:
        return round((max(ends) - min(starts)).total_seconds(), 2)
    return round(time.time() - started, 2)


def _short(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
