"""A read-only App (``astrocyte-lab dashboard --read-only``) writes nothing to its workspace: every file is
byte-identical after testing a model, running inference and browsing every panel; editing controls are left out
of the view (not greyed); and an editing path that is reached anyway raises a clear error instead of writing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import ipywidgets as widgets
import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace
from astrocyte_lab.data.annotations import Box
from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
from astrocyte_lab.evaluation.classification import evaluate_classifier
from astrocyte_lab.widgets import App
from astrocyte_lab.widgets.read_only import ReadOnlyError, ReadOnlyWorkspace
from astrocyte_lab.widgets.state import AppState

FAST = {"epochs": 1, "batch_size": 8, "learning_rate": 0.005, "pretrained": False, "architecture": "resnet18"}
EDITING = {"New", "Save changes", "Shuffle", "Import", "Merge into", "Delete", "Assign set", "Set ground truth",
           "Remove images", "Add", "Rename", "Train", "Train and save", "Cancel", "Import model", "Learn",
           "Save learned package", "Save", "Undo", "Invert ROI", "Clear ROI"}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones included), files with the SHA-256 of their bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(root.rglob("*"))}


def walk(widget: widgets.Widget) -> Iterator[widgets.Widget]:
    """``widget`` and everything shown inside it."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def buttons(widget: widgets.Widget) -> list[widgets.Button]:
    return [w for w in walk(widget) if isinstance(w, widgets.Button)]


@pytest.fixture
def trained(discs: Workspace) -> Workspace:
    """The discs workspace with a tiny classifier ``m1`` (trained through the normal, writable App)."""
    app = App(discs, module="classification")
    app.training.form.set_values(**FAST)
    app.training.model_name.value = "m1"
    app.training.train(keep=True).result(timeout=300)
    return discs


def test_read_only_app_tests_infers_and_browses_without_writing(trained: Workspace, tmp_path: Path) -> None:
    before = snapshot(trained.path)
    app = App(trained.path, module="classification", read_only=True)
    assert isinstance(app.state.workspace, ReadOnlyWorkspace)
    panel = app.dataset
    # browse: filters, pages, thumbnails, previews
    panel.name_filter.value = "red"
    panel.view_mode.value = "thumbnails"
    panel.view_mode.value = "list"
    panel.name_filter.value = ""
    panel.images.value = (panel.images.options[0][1],)
    assert panel.preview.children
    # test a model: the report is shown, nothing is stored
    panel.test_model.value = "m1"
    panel.test_subset.value = "all"
    report = panel.run_test()
    assert 0.0 <= report.accuracy <= 1.0 and report.confusion.sum() > 0
    assert panel.results.children and "not stored" in panel.message.value
    assert (panel.query.page(0)["prediction"] == "").all()  # the dataset did not take the predictions
    truth, predicted = report.rows[0], report.columns[0]
    panel.confusion.click(truth, predicted)  # drill-down works from the report
    assert panel.query.count == int(report.confusion[0, 0])
    # exports go outside the workspace only
    panel.path.value = str(tmp_path / "discs.astrods")
    panel._guard(panel.export)  # noqa: SLF001 - what the button does
    assert (tmp_path / "discs.astrods").is_file()
    panel.path.value = str(trained.path / "discs.astrods")
    panel._guard(panel.export)  # noqa: SLF001
    assert "read-only" in panel.message.value
    panel.path.value = str(trained.path / "table.csv")
    panel._guard(panel.save_csv)  # noqa: SLF001
    assert "read-only" in panel.message.value
    # trained models tab
    app.models.models.value = "m1"
    assert "m1" in app.models.details.value
    app.models.path.value = str(tmp_path / "m1.astromodel")
    app.models.export_package()
    assert (tmp_path / "m1.astromodel").is_file()
    for target in ("exports/m1.astromodel", "m1.astrotrained"):
        app.models.path.value = str(trained.path / target)
        for action in (app.models.export_package, app.models.export_model):
            app.models._guard(action)  # noqa: SLF001
            assert "read-only" in app.models.message.value
    # inference: the package is built outside the workspace
    app.inference.model.value = "m1"
    app.inference.folder.value = str(tmp_path / "discs")
    app.inference.load_folder()
    assert app.inference.show(app.inference.image_list.options[0]).label in ("red", "blue")
    assert sum(app.inference.predict_all().values()) == 16
    assert not app.inference.package("m1").is_relative_to(trained.path)
    # training tab: settings and augmentation previews only
    app.training.preview_augmentations()
    for title in ("Dataset", "Training", "Trained models", "Inference"):
        app.select_tab(title)
    panel.reload()
    assert snapshot(trained.path) == before


def test_editing_controls_are_hidden_not_greyed(trained: Workspace) -> None:
    app = App(trained, module="classification", read_only=True)
    shown = buttons(app.widget)
    labels = {b.description for b in shown}
    assert not labels & EDITING, labels & EDITING
    assert {"Reload", "Export", "Test model", "Export package", "Predict all"} <= labels
    assert not [b.description for b in shown if b.disabled]
    assert "Delete" not in app.dataset.buttons and "Delete" not in app.models.buttons
    assert app.training.model_name not in list(walk(app.widget))
    assert app.inference.learn_box not in list(walk(app.widget))
    writable = {b.description for b in buttons(App(trained, module="classification").widget)}
    assert EDITING - {"Learn", "Save learned package", "Save", "Undo", "Invert ROI", "Clear ROI"} <= writable


def test_an_editing_path_reached_anyway_raises_instead_of_writing(trained: Workspace, tmp_path: Path) -> None:
    before = snapshot(trained.path)
    app = App(trained, module="classification", read_only=True)
    panel = app.dataset
    for action in (panel.save, panel.shuffle, panel.show_form, panel.import_, panel.merge, panel.delete,
                   panel.add_category, panel.rename_category, panel.delete_category, app.models.delete,
                   app.models.import_model, app.inference.save_learned, app.inference.learn_shown):
        panel.message.value = ""
        with pytest.raises(ReadOnlyError, match="read-only"):
            action()
    app.training.model_name.value = "m2"
    with pytest.raises(ReadOnlyError, match="train a model"):
        app.training.train()
    ws = app.state.workspace
    dataset = ws.dataset("discs")
    dataset.assign_set([int(dataset.ids[0])], "validation")
    with pytest.raises(ReadOnlyError, match="save"):
        dataset.save()
    with pytest.raises(ReadOnlyError):  # a test asked to store its predictions
        evaluate_classifier(ws, "m1", "discs", "all", write_back=True)
    for call in (lambda: ws.delete_dataset("discs"), lambda: ws.rename_dataset("discs", "x"),
                 lambda: ws.delete_model("m1"), lambda: ws.rename_model("m1", "x"),
                 lambda: ws.model_store.update_record("m1", description="x"),
                 lambda: ws.import_model(tmp_path / "m.astrotrained"),
                 lambda: ws.create_dataset("new", "classification", [NamedSet("s", [Location(tmp_path)])]),
                 lambda: type(ws).restore(tmp_path / "backup.tar", trained.path, overwrite=True)):
        with pytest.raises(ReadOnlyError):
            call()
    assert snapshot(trained.path) == before


def test_test_options_keep_every_module_from_storing() -> None:
    state = AppState.__new__(AppState)
    state.read_only = True
    assert state.test_options(evaluate_classifier) == {"write_back": False}
    assert state.test_options(evaluate_anomaly) == {"write_back": False, "store_threshold": False}
    state.read_only = False
    assert state.test_options(evaluate_anomaly) == {}


def test_detection_canvas_browses_without_editing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "parts").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "parts" / f"p{i}.png"), rng.integers(0, 255, (60, 80, 3), np.uint8))
    ws = Workspace(tmp_path / "ws")
    dataset = ws.create_dataset("parts", "detection", [NamedSet("s", [Location(tmp_path / "parts")])])
    dataset.add_category("nut")
    dataset.add_object(int(dataset.ids[0]), Box("nut", 5, 5, 30, 30))
    dataset.save()
    before = snapshot(ws.path)
    app = App(ws.path, module="detection", read_only=True)
    panel = app.dataset
    panel.images.value = (panel.images.options[0][1],)
    canvas = panel.canvas
    assert canvas is not None and canvas.read_only
    assert not {b.description for b in buttons(app.widget)} & EDITING
    canvas.apply(canvas.editor.step(1))
    canvas._on_key("Delete", False, False, False)  # noqa: SLF001 - what a key press calls
    assert not panel.dataset.dirty
    assert snapshot(ws.path) == before


def test_a_missing_workspace_is_not_created(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from astrocyte_lab.cli import app as cli

    missing = tmp_path / "nowhere"
    with pytest.raises(Exception, match="no workspace"):
        App(missing, module="classification", read_only=True)
    result = CliRunner().invoke(cli, ["dashboard", "--read-only", "--workspace", str(missing)])
    assert result.exit_code == 1 and "no workspace" in result.output
    assert not missing.exists()


def test_the_read_only_dashboard_keeps_its_template_outside_the_workspace(tmp_path: Path, monkeypatch) -> None:
    from astrocyte_lab.dashboard import template_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert template_root(tmp_path / "ws", read_only=False) == tmp_path / "ws" / ".dashboard"
    assert template_root(tmp_path / "ws", read_only=True) == tmp_path / "cache" / "astrocyte-lab" / "dashboard"
