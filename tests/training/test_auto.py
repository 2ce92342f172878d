"""Auto train: trial counts, the search-space table, pruning, failed trials, parallel device slots, two
processes on one study, resume after SIGKILL, the CLI, and real searches that match or beat the default.

Most study mechanics run against a stand-in trainer (a job that sleeps per epoch, reports a validation
accuracy computed from the learning rate and saves a one-tensor model), so they are fast and
deterministic; the last tests train real classification and segmentation networks on tiny data.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from astrocyte_lab import Location, NamedSet, Workspace, segmentation_set
from astrocyte_lab.cli import app
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.classification.config import ClassificationConfig
from astrocyte_lab.modules.registry import MODULES
from astrocyte_lab.modules.segmentation.config import SegmentationConfig
from astrocyte_lab.training.auto import _load_study, auto_train, study_path, trial_count, trials_frame
from astrocyte_lab.training.auto_spaces import SEARCH_SPACES, Choice, search_space

# The stand-in trainer, as source: the test process imports it and the subprocesses run it.
FAKE = textwrap.dedent('''
    import math
    import time

    import numpy as np

    import astrocyte_lab.modules.registry as registry
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.training.jobs import Job
    from astrocyte_lab.training.loop import TrainingDiverged

    EPOCH_SECONDS = 0.02
    DIVERGE_ABOVE = None  # learning rates above this raise TrainingDiverged
    BROKEN = False  # every trial fails with a set-up error

    def quality(lr):
        return max(0.0, 1.0 - abs(math.log10(lr) + 3.0) / 4.0)  # best at 1e-3

    def train_job(ws, dataset, name, config, description=""):
        def work(ctx):
            if BROKEN:
                raise ValueError("cannot read the dataset")
            if DIVERGE_ABOVE is not None and config.learning_rate > DIVERGE_ABOVE:
                raise TrainingDiverged("training loss became NaN/infinite")
            start = time.time()
            history = []
            for epoch in range(1, config.epochs + 1):
                time.sleep(EPOCH_SECONDS)
                ctx.check_cancelled()
                acc = quality(config.learning_rate) * epoch / config.epochs
                values = {"loss": 1.0 - acc, "val_loss": 1.0 - acc, "val_accuracy": acc, "epoch": epoch}
                history.append(values)
                ctx.emit("batch", {"loss": 1.0 - acc}, epoch=epoch)
                ctx.emit("epoch", values, epoch=epoch)
            record = {"name": name, "module": "classification", "architecture": "fake", "categories": ["a", "b"],
                      "input": {"width": 8, "height": 8, "channels": 3}, "config": config.to_dict(),
                      "metrics": {"val_accuracy": history[-1]["val_accuracy"], "val_loss": history[-1]["val_loss"]},
                      "history": history, "best_epoch": len(history), "seed": 0, "description": description,
                      "duration_s": time.time() - start, "started": start, "ended": time.time(),
                      "device": config.device}
            ws.model_store.save(name, record, {"w": np.zeros(1, np.float32)})
            return name
        return Job(f"train {name}", work)

    class Entry:
        def load(self, what):
            return {"config": ClassificationConfig, "train_job": train_job}[what]

    def install():
        registry.entry = lambda module: Entry()
''')


def _fake_module(folder: Path):
    path = folder / "fake_trainer.py"
    path.write_text(FAKE)
    spec = importlib.util.spec_from_file_location(f"fake_trainer_{abs(hash(str(folder)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake(tmp_path: Path, monkeypatch):
    """A workspace with a tiny classification dataset, and the stand-in trainer behind the registry."""
    module = _fake_module(tmp_path)
    monkeypatch.setattr("astrocyte_lab.modules.registry.entry", lambda name: module.Entry())
    ws = Workspace(tmp_path / "ws")
    _shapes(tmp_path, per_class=2)
    ws.create_dataset("shapes", "classification",
                      [NamedSet("s", [Location(tmp_path / "shapes", use_folder_name=True)])], seed=0)
    return ws, module


def _shapes(root: Path, per_class: int = 12, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for name, colour in (("red", (40, 40, 220)), ("blue", (220, 60, 40))):
        folder = root / "shapes" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            centre = tuple(int(v) for v in rng.integers(10, size - 10, 2))
            cv2.circle(image, centre, 7, colour, -1)
            cv2.imwrite(str(folder / f"{name}_{i}.png"), image)


def _config(**changes) -> ClassificationConfig:
    return ClassificationConfig(**{"epochs": 3, "pretrained": False, "seed": 0, **changes})


# ---------------------------------------------------------------------------------------------------------------


def test_tuning_intensity() -> None:
    assert [trial_count(v) for v in ("low", "Medium", "HIGH", "7", 3)] == [20, 40, 60, 7, 3]
    for bad in ("extreme", 0, -2, "1.5", True):
        with pytest.raises(AstrocyteError):
            trial_count(bad)


def test_search_space_table_matches_the_module_configs() -> None:
    for module, space in SEARCH_SPACES.items():
        config = MODULES[module].load("config")()
        fields = type(config).model_fields
        assert all(p.name in fields for p in space.params), module
        for p in space.params:  # every choice is a value the config accepts
            for value in p.choices if isinstance(p, Choice) else (p.low, p.high):
                type(config).model_validate({**config.to_dict(), p.name: value})
        defaults = space.defaults(config)  # the first trial: the config's own values of the searched fields
        assert all(defaults[k] == getattr(config, k) for k in defaults) and defaults
        for p in space.params:
            if p.when is not None:  # a conditional parameter is drawn exactly when its condition holds
                on = config.model_copy(update={p.when[0]: p.when[1]})
                off_value = next(v for v in next(q for q in space.params if q.name == p.when[0]).choices
                                 if v != p.when[1])
                assert p.name in space.defaults(on)
                assert p.name not in space.defaults(config.model_copy(update={p.when[0]: off_value}))
    assert "momentum" not in search_space("classification").defaults(ClassificationConfig())  # adam
    assert search_space("segmentation").metric == "val_mean_iou"
    assert any(p.name == "class_imbalance" for p in search_space("segmentation").params)
    with pytest.raises(AstrocyteError, match="not available"):
        search_space("nonexistent")


def test_search_keeps_every_trial_and_only_the_best_model(fake) -> None:
    ws, _ = fake
    events = []
    job = auto_train(ws, "shapes", "tuned", _config(learning_rate=3e-4), intensity=4, early_stopping=False)
    job.subscribe(events.append)
    assert job.result(timeout=120) == "tuned"
    assert ws.model_store.names() == ["tuned"]  # the trial models are gone
    record = ws.model_store.record("tuned")
    search = record["auto"]
    assert len(search["trials"]) == 4 and search["trials_requested"] == 4
    first = search["trials"][0]
    assert first["params"] == {"learning_rate": 3e-4, "optimizer": "adam", "weight_decay": 1e-4,
                               "scheduler": "one_cycle"}  # the given configuration goes first
    values = [t["value"] for t in search["trials"] if t["state"] == "complete"]
    assert record["metrics"]["val_accuracy"] == max(values) >= first["value"]
    assert record["name"] == "tuned" and record["auto"]["best_trial"] in range(4)
    assert all(t["duration_s"] > 0 and t["device"] == "cpu" for t in search["trials"]), search["trials"]
    trials = [e for e in events if e.kind == "trial"]
    assert [e.values["finished"] for e in trials] == [1, 2, 3, 4]
    bests = [e.values["best"] for e in trials]
    assert bests == sorted(bests) and bests[-1] == max(values)  # best so far never gets worse
    assert any(e.kind == "epoch" and e.values["trial"] == 0 for e in events)
    frame = trials_frame(ws, "tuned")
    assert list(frame["number"]) == [0, 1, 2, 3] and "param_learning_rate" in frame
    assert study_path(ws, "tuned").is_file()
    with pytest.raises(AstrocyteError, match="already exists"):
        auto_train(ws, "shapes", "tuned", _config(), intensity=2)


def test_unpromising_trials_are_pruned(fake) -> None:
    ws, module = fake
    module.EPOCH_SECONDS = 0.0
    events = []
    job = auto_train(ws, "shapes", "pruned", _config(epochs=9), intensity=14, early_stopping=False)
    job.subscribe(events.append)
    job.result(timeout=120)
    states = [t["state"] for t in ws.model_store.record("pruned")["auto"]["trials"]]
    assert states.count("pruned") >= 1 and states[0] == "complete" and len(states) == 14
    pruned = [t for t in ws.model_store.record("pruned")["auto"]["trials"] if t["state"] == "pruned"]
    assert all(t["value"] is not None and not t["metrics"] for t in pruned)  # the value when pruned; no model
    assert any(e.kind == "status" and "pruned after epoch" in e.message for e in events)


def test_failed_trials_are_recorded_and_the_search_goes_on(fake) -> None:
    ws, module = fake
    module.DIVERGE_ABOVE = 2e-3
    job = auto_train(ws, "shapes", "robust", _config(), intensity=6, early_stopping=False)
    job.result(timeout=120)
    trials = ws.model_store.record("robust")["auto"]["trials"]
    failed = [t for t in trials if t["state"] == "fail"]
    assert len(trials) == 6 and failed and all("TrainingDiverged" in t["error"] for t in failed)
    assert all(t["params"]["learning_rate"] > 2e-3 for t in failed)


def test_a_broken_setup_stops_at_the_first_trial(fake) -> None:
    ws, module = fake
    module.BROKEN = True
    job = auto_train(ws, "shapes", "broken", _config(), intensity=20)
    with pytest.raises(ValueError, match="cannot read"):
        job.result(timeout=60)
    assert len(_load_study(study_path(ws, "broken"), "broken").trials) == 1


def test_cancel_stops_the_search_and_resume_retries_the_cut_trial(fake) -> None:
    ws, module = fake
    module.EPOCH_SECONDS = 0.2
    job = auto_train(ws, "shapes", "stopped", _config(epochs=5), intensity=3, early_stopping=False)
    inside = threading.Event()  # the second trial has reported its second epoch
    job.subscribe(lambda e: e.kind == "epoch" and e.values["trial"] == 1 and e.epoch == 2 and inside.set())
    assert inside.wait(60)
    job.cancel()
    assert job.wait(30) and job.state == "cancelled"
    assert not ws.model_store.exists("stopped")
    module.EPOCH_SECONDS = 0.0
    assert auto_train(ws, "shapes", "stopped", _config(epochs=5), intensity=3).result(timeout=60) == "stopped"
    trials = ws.model_store.record("stopped")["auto"]["trials"]
    cut = [t for t in trials if t["state"] == "interrupted"]
    assert len(cut) == 1 and len([t for t in trials if t["state"] in ("complete", "pruned")]) == 3
    assert any(t["params"] == cut[0]["params"] for t in trials if t["state"] != "interrupted")  # retried


def test_trials_run_in_parallel_one_per_device_slot(fake) -> None:
    ws, module = fake
    module.EPOCH_SECONDS = 0.15
    job = auto_train(ws, "shapes", "parallel", _config(), intensity=4, devices=["cpu", "cpu"], early_stopping=False)
    job.result(timeout=120)
    assert len(ws.model_store.record("parallel")["auto"]["trials"]) == 4
    study = _load_study(study_path(ws, "parallel"), "parallel")
    spans = sorted((t.datetime_start, t.datetime_complete) for t in study.trials)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))  # overlapping
    with pytest.raises(AstrocyteError, match="not available"):
        auto_train(ws, "shapes", "nowhere", _config(), intensity=2, devices=["cuda:7"])


def _runner_script(tmp_path: Path, model: str, trials: int, epoch_seconds: float, start_on: str = "") -> Path:
    """A script running one search with the stand-in trainer; with ``start_on``, it first writes
    ``<start_on>.<pid>.ready`` and waits for the file ``start_on`` (so two processes start together)."""
    script = tmp_path / f"run_{model}_{trials}_{time.time_ns()}.py"
    script.write_text(textwrap.dedent(f'''
        import os, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(tmp_path)!r})
        import fake_trainer
        fake_trainer.EPOCH_SECONDS = {epoch_seconds}
        fake_trainer.install()
        from astrocyte_lab import Workspace
        from astrocyte_lab.modules.classification.config import ClassificationConfig
        from astrocyte_lab.training.auto import auto_train
        ws = Workspace({str(tmp_path / "ws")!r})
        config = ClassificationConfig(epochs=4, pretrained=False, seed=-1)
        if {start_on!r}:
            Path(f"{start_on}.{{os.getpid()}}.ready").touch()
            while not Path({start_on!r}).exists():
                time.sleep(0.05)
        print(auto_train(ws, "shapes", {model!r}, config, intensity={trials}, early_stopping=False).result())
    '''))
    return script


def test_two_processes_share_one_study_without_overrunning_it(fake, tmp_path: Path) -> None:
    ws, _ = fake
    go = tmp_path / "go"
    scripts = [_runner_script(tmp_path, "shared", 8, 0.1, str(go)) for _ in range(2)]
    procs = [subprocess.Popen([sys.executable, str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in scripts]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go.*.ready"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    assert all(o[0].strip().splitlines()[-1] == "shared" for o in outputs)
    trials = ws.model_store.record("shared")["auto"]["trials"]
    assert len(trials) == 8 and sorted(t["number"] for t in trials) == list(range(8))
    study = _load_study(study_path(ws, "shared"), "shared")
    owners = {t.user_attrs["owner"] for t in study.trials}
    assert len(owners) == 2  # both processes ran trials
    assert ws.model_store.names() == ["shared"]


def test_resume_after_sigkill_continues_from_the_stored_trials(fake, tmp_path: Path) -> None:
    ws, _ = fake
    path = study_path(ws, "killed")
    proc = subprocess.Popen([sys.executable, str(_runner_script(tmp_path, "killed", 6, 0.25))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            time.sleep(0.1)
            if path.is_file():
                try:
                    trials = _load_study(path, "killed").trials
                except KeyError:  # the log exists, the study not yet
                    continue
                finished = [t for t in trials if t.state.is_finished()]
                if len(finished) >= 2 and any(t.state.name == "RUNNING" and 1 <= len(t.intermediate_values) <= 2
                                              for t in trials):  # inside a trial: 2 of its 4 epochs to go or more
                    break
        else:
            pytest.fail("the study did not start")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    before = {t.number: t.value for t in _load_study(path, "killed").trials if t.state.name == "COMPLETE"}
    assert len(before) >= 2 and not ws.model_store.exists("killed")
    config = ClassificationConfig(epochs=4, pretrained=False, seed=-1)
    assert auto_train(ws, "shapes", "killed", config, intensity=6, early_stopping=False).result(60) == "killed"
    trials = ws.model_store.record("killed")["auto"]["trials"]
    counted = [t for t in trials if t["state"] != "interrupted"]
    assert len(counted) == 6
    assert {t["number"]: t["value"] for t in trials if t["number"] in before} == before  # kept, not re-run
    cut = [t for t in trials if t["state"] == "interrupted"]
    assert len(cut) >= 1 and any(t["params"] == cut[0]["params"] for t in counted)  # the cut trial was retried
    assert ws.model_store.names() == ["killed"]


def test_resume_false_sets_a_stopped_study_aside(fake) -> None:
    ws, module = fake
    module.EPOCH_SECONDS = 0.2
    job = auto_train(ws, "shapes", "again", _config(epochs=5), intensity=3)
    time.sleep(0.6)
    job.cancel()
    job.wait(30)
    module.EPOCH_SECONDS = 0.0
    auto_train(ws, "shapes", "again", _config(epochs=5), intensity=2, resume=False).result(timeout=60)
    assert [t["state"] for t in ws.model_store.record("again")["auto"]["trials"]] == ["complete", "complete"]
    assert len(list((study_path(ws, "again").parent / "archive").glob("again.*.journal"))) == 1


def test_cli_train_auto(fake, monkeypatch) -> None:
    ws, module = fake
    module.EPOCH_SECONDS = 0.0
    result = CliRunner().invoke(app, ["train", "shapes", "cli-auto", "--auto", "3", "--epochs", "2",
                                      "--devices", "cpu,cpu", "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["model"] == "cli-auto" and summary["trials"] == 3 and 0 <= summary["best_trial"] < 3
    assert "trial 0: complete" in result.output
    bad = CliRunner().invoke(app, ["train", "shapes", "x", "--auto", "lots", "--workspace", str(ws.path)])
    assert bad.exit_code == 1 and "tuning intensity" in bad.output
    manual = CliRunner().invoke(app, ["train", "shapes", "y", "--devices", "cpu,cpu", "--workspace", str(ws.path)])
    assert manual.exit_code == 1 and "one --device" in manual.output


# real networks --------------------------------------------------------------------------------------------------


def test_classification_auto_train_is_at_least_the_default(tmp_path: Path) -> None:
    from astrocyte_lab.modules.classification.trainer import train_job

    ws = Workspace(tmp_path / "ws")
    _shapes(tmp_path, per_class=8)
    ws.create_dataset("shapes", "classification",
                      [NamedSet("s", [Location(tmp_path / "shapes", use_folder_name=True)])], seed=0)
    config = ClassificationConfig(epochs=2, batch_size=8, pretrained=False, seed=0)
    train_job(ws, "shapes", "manual", config).result(timeout=300)
    manual = ws.model_store.record("manual")["metrics"]
    auto_train(ws, "shapes", "auto", config, intensity=3, early_stopping=False).result(timeout=300)
    record = ws.model_store.record("auto")
    first = record["auto"]["trials"][0]
    assert first["value"] == manual["val_accuracy"]  # the default trial reproduces the manual training
    assert record["metrics"]["val_accuracy"] >= manual["val_accuracy"]
    assert record["module"] == "classification" and sorted(ws.model_store.names()) == ["auto", "manual"]


def test_segmentation_auto_train_is_at_least_the_default(tmp_path: Path) -> None:
    from astrocyte_lab.modules.segmentation.trainer import train_job

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i in range(8):
        image = rng.integers(90, 140, (32, 32), dtype=np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        x, y = (int(v) for v in rng.integers(2, 20, 2))
        image[y:y + 10, x:x + 10], mask[y:y + 10, x:x + 10] = 240, 1
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), image)
        cv2.imwrite(str(tmp_path / "msk" / f"{i}.png"), mask)
    ws = Workspace(tmp_path / "ws")
    ws.create_dataset("blobs", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "msk")], seed=0)
    config = SegmentationConfig(architecture="unet_resnet18", epochs=2, batch_size=4, pretrained=False, seed=0)
    train_job(ws, "blobs", "manual", config).result(timeout=300)
    manual = ws.model_store.record("manual")["metrics"]["val_mean_iou"]
    auto_train(ws, "blobs", "auto", config, intensity=2, early_stopping=False).result(timeout=300)
    record = ws.model_store.record("auto")
    assert math.isclose(record["auto"]["trials"][0]["value"], manual, rel_tol=1e-6)
    assert record["metrics"]["val_mean_iou"] >= manual - 1e-9


def _anomaly_dataset(ws: Workspace, root: Path) -> str:
    rng = np.random.default_rng(0)
    for name in ("good", "bad"):
        (root / name).mkdir(parents=True)
    for i in range(22):
        image = rng.normal(128, 10, (48, 48)).clip(0, 255).astype(np.uint8)
        if i >= 16:  # anomalies: a bright or dark square
            x, y = (int(v) for v in rng.integers(4, 34, 2))
            image[y:y + 8, x:x + 8] = 250 if i % 2 else 5
        cv2.imwrite(str(root / ("bad" if i >= 16 else "good") / f"{i:02d}.png"), image)
    dataset = ws.create_dataset("tiles", "anomaly", [
        NamedSet("good", [Location(root / "good", category="Normal")]),
        NamedSet("bad", [Location(root / "bad", category="Anomaly")])], seed=0)
    dataset.assign_set(dataset.select(ground_truth="Anomaly"), "validation")
    dataset.save()
    return "tiles"


def test_anomaly_auto_train_is_at_least_the_default(tmp_path: Path) -> None:
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.trainer import train_job

    ws = Workspace(tmp_path / "ws")
    name = _anomaly_dataset(ws, tmp_path)
    config = AnomalyConfig(seed=0, pretrained=False)
    train_job(ws, name, "manual", config).result(timeout=300)
    manual = ws.model_store.record("manual")["metrics"]["val_auroc"]
    auto_train(ws, name, "auto", config, intensity=3, early_stopping=False).result(timeout=300)
    record = ws.model_store.record("auto")
    assert math.isclose(record["auto"]["trials"][0]["value"], manual, rel_tol=1e-6)
    assert record["metrics"]["val_auroc"] >= manual - 1e-9 and record["module"] == "anomaly"
    assert {t["params"].get("algorithm") for t in record["auto"]["trials"]} <= {"patchcore", "padim"}


@pytest.mark.slow
def test_detection_auto_train_runs_trials(tmp_path: Path) -> None:
    from astrocyte_lab.data.annotations import Box
    from astrocyte_lab.modules.detection.config import DetectionConfig

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    truth = {}
    for i in range(10):
        image = rng.integers(90, 130, (224, 224, 3), dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(10, 150, 2))
        image[y:y + 40, x:x + 40] = (240, 230, 90)
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), image)
        truth[f"img_{i:02d}.png"] = [Box("square", x, y, x + 40, y + 40)]
    ws = Workspace(tmp_path / "ws")
    dataset = ws.create_dataset("squares", "detection", [NamedSet("s", [Location(folder)])], seed=0)
    dataset.add_category("square")
    for image_id, name in zip(dataset.ids.tolist(), dataset.table["name"].tolist(), strict=True):
        dataset.set_objects(int(image_id), truth[name])
    dataset.save()
    config = DetectionConfig(architecture="nano", epochs=1, batch_size=8, seed=0, pretrained=False)
    auto_train(ws, "squares", "auto", config, intensity=2, early_stopping=False).result(timeout=900)
    record = ws.model_store.record("auto")
    assert record["module"] == "detection" and len(record["auto"]["trials"]) == 2
    assert record["metrics"]["val_map50"] == max(t["value"] for t in record["auto"]["trials"]
                                                 if t["state"] == "complete")


def test_the_search_is_a_workspace_job_that_another_process_can_cancel(fake) -> None:
    from astrocyte_lab.training.job_records import list_records, request_cancel

    ws, module = fake
    module.EPOCH_SECONDS = 0.2
    job = auto_train(ws, "shapes", "sidebar", _config(epochs=5), intensity=5)
    mine = next(r for r in list_records(ws.path) if r["name"] == "auto-train sidebar")
    assert mine["state"] == "running"
    time.sleep(0.5)
    request_cancel(ws.path, mine["id"])  # what the JupyterLab sidebar does
    assert job.wait(30) and job.state == "cancelled" and not ws.model_store.exists("sidebar")
