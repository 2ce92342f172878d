"""The App's panels driven from Python: datasets, filters, edits with the unsaved prompt, training, testing with
confusion-matrix drill-down, models, inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace
from astrocyte_lab.data.annotations import Box
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.widgets import App
from astrocyte_lab.widgets.forms import ConfigForm
from astrocyte_lab.widgets.results import RocView

FAST = {"epochs": 2, "batch_size": 8, "learning_rate": 0.005, "pretrained": False, "architecture": "resnet18"}


def test_dataset_tab_lists_filters_and_pages(discs: Workspace) -> None:
    app = App(discs, module="classification")
    panel = app.dataset
    assert panel.datasets.options == ("discs",) and panel.query.total == 16
    assert "Number of images: 16/16" in panel.count.value
    panel.name_filter.value = "red_1"
    assert panel.query.count == 1
    panel.name_filter.value = ""
    panel.gt_filter.value = "blue"
    assert panel.query.count == 8 and all("blue" in text for text, _ in panel.images.options)
    panel.view_mode.value = "thumbnails"
    assert len(panel.thumbs.children) == 8
    panel.view_mode.value = "list"


def test_edits_mark_unsaved_and_switching_asks(discs: Workspace, tmp_path: Path) -> None:
    app = App(discs, module="classification")
    panel = app.dataset
    first = [value for _, value in panel.images.options][:2]
    panel.images.value = tuple(first)
    panel.assign_to.value = "validation"
    panel.assign_selected()
    assert panel.dataset.dirty and "unsaved" in panel.info.value
    discs.create_dataset("other", "classification", [NamedSet("s", [Location(tmp_path / "discs",
                                                                             use_folder_name=True)])])
    app.state.changed()
    panel.open("other")
    assert panel.state.dataset_name == "discs" and panel.confirm.children  # asked first
    panel.confirm.children[1].click()  # Save
    assert panel.state.dataset_name == "other"
    saved = discs.dataset("discs").table
    assert (saved.loc[first, "set"] == "validation").all()


def test_train_test_drill_down_models_and_inference(discs: Workspace, tmp_path: Path) -> None:
    app = App(discs, module="classification")
    training = app.training
    training.form.set_values(**FAST)
    training.model_name.value = "m1"
    job = training.train(keep=True)
    job.result(timeout=300)
    assert any(ys for _, ys in training.plot.series().values())  # the live plot got points
    assert "done" in training.status_bar.value
    assert app.models.models.options == ("m1",)
    panel = app.dataset
    panel.test_model.value = "m1"
    panel.test_subset.value = "all"
    report = panel.run_test()
    assert report.accuracy >= 0  # a real report, written back to the dataset
    assert (panel.query.page(0)["prediction"] != "").all()
    truth, predicted = report.rows[0], report.columns[0]
    panel.confusion.click(truth, predicted)
    expected = int(report.confusion[0, 0])
    assert panel.query.count == expected
    assert all(truth in text for text, _ in panel.images.options)
    # trained models tab: export the package
    app.models.models.value = "m1"
    app.models.path.value = str(tmp_path / "m1.astromodel")
    app.models.export_package()
    assert (tmp_path / "m1.astromodel").exists() and "written" in app.models.message.value
    # inference tab on a folder of images
    app.inference.model.value = "m1"
    app.inference.folder.value = str(tmp_path / "discs")
    app.inference.load_folder()
    prediction = app.inference.show(app.inference.image_list.options[0])
    assert prediction.label in ("red", "blue") and app.inference.picture.value
    counts = app.inference.predict_all()
    assert sum(counts.values()) == 16


def test_bad_input_becomes_a_message_not_a_traceback(discs: Workspace) -> None:
    app = App(discs, module="classification")
    app.training.model_name.value = ""
    app.training._guard(lambda: app.training.train())  # noqa: SLF001 - what the button does
    assert "model name" in app.training.message.value
    app.dataset._guard(app.dataset.relabel_selected)  # noqa: SLF001
    assert "select images" in app.dataset.message.value
    form = ConfigForm(type(app.training.config_class()), fields=["epochs", "region_size"])
    form.inputs["region_size"].value = "abc"
    assert form.config() is None and "WIDTHxHEIGHT" in form.error.value


def test_segmentation_tab_tests_and_keeps_predicted_masks(blobs: Workspace) -> None:
    app = App(blobs, module="segmentation")
    app.training.form.set_values(epochs=1, batch_size=2, pretrained=False, architecture="unet_resnet18")
    app.training.model_name.value = "s1"
    app.training.train(keep=True).result(timeout=300)
    panel = app.dataset
    panel.test_model.value = "s1"
    panel.test_subset.value = "all"
    panel.run_test()
    image_id = int(panel.dataset.ids[0])
    assert panel.dataset.predicted_mask(image_id) is not None
    assert panel.picture(image_id).shape == (48, 48, 3)


def test_read_only_app_hides_edits(discs: Workspace) -> None:
    app = App(discs, module="classification", read_only=True)
    assert "Delete" not in app.dataset.buttons and not app.dataset.buttons["Export"].disabled
    rows = app.training.widget.children
    assert all(app.training.train_button not in getattr(row, "children", ()) for row in rows)  # see test_read_only


def test_broken_datasets_and_models_are_listed_as_such(discs: Workspace) -> None:
    """One dataset with a corrupt HEAD and one model whose record lacks a field: the panels open, list the good
    ones and name the broken ones with the reason."""
    import json
    import shutil

    shutil.copytree(discs.path / "datasets" / "discs", discs.path / "datasets" / "corrupt")
    (discs.path / "datasets" / "corrupt" / "HEAD").write_bytes(b"\xff\xfe garbage")
    (discs.path / "models" / "half").mkdir()
    (discs.path / "models" / "half" / "model.json").write_text(json.dumps({"module": "classification"}))
    for read_only in (False, True):
        app = App(discs, module="classification", read_only=read_only)
        assert app.dataset.datasets.options == ("discs",) and app.models.models.options == ()
        assert "corrupt" in app.dataset.broken.value and "Unreadable datasets" in app.dataset.broken.value
        assert "half" in app.models.broken.value and "Unreadable models" in app.models.broken.value
        assert app.inference.model.options == () and app.training.dataset.options == ("discs",)


def test_roc_view_click_sets_threshold() -> None:
    seen = []
    view = RocView([0, 0.1, 1], [0, 0.8, 1], [0.9, 0.5, 0.1], threshold=0.5, on_threshold=seen.append)
    assert view.pick(0) == pytest.approx(0.9) and seen == [0.9]
    assert "0.9" in view.label.value and view.chosen_index == 0
    x, y = view.to_pixels(0.1, 0.8)
    view._clicked(x + 2, y - 2)  # noqa: SLF001 - what a click on the canvas calls
    assert seen[-1] == pytest.approx(0.5) and view.chosen_index == 1


def test_detection_images_open_in_the_annotation_canvas(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    (tmp_path / "parts").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "parts" / f"p{i}.png"), rng.integers(0, 255, (60, 80, 3), np.uint8))
    ws = Workspace(tmp_path / "ws")
    dataset = ws.create_dataset("parts", "detection", [NamedSet("s", [Location(tmp_path / "parts")])])
    dataset.add_category("nut")
    dataset.save()
    app = App(ws, module="detection")
    panel = app.dataset
    first = panel.images.options[0][1]
    panel.images.value = (first,)
    assert panel.canvas is not None and panel.preview.children == (panel.canvas,)
    panel.canvas.apply(panel.canvas.editor.add(Box("nut", 5, 5, 30, 30)))
    assert panel.dataset.dirty and panel.query.page(0)["n_ground_truth"].sum() == 1  # the list follows the canvas
    panel.reload()
    assert panel.canvas.editor.dataset.objects(first) == []


def test_auto_train_from_the_training_tab(discs: Workspace) -> None:
    app = App(discs, module="classification")
    training = app.training
    training.form.set_values(**{**FAST, "epochs": 1})
    training.model_name.value = "auto1"
    training.mode.value = "Auto train"
    training.intensity.value = "custom"
    training.trials.value = 2
    job = training.train(keep=True)
    assert job.result(timeout=600) == "auto1"
    assert training.trial_plot is not None and len(training.trial_plot.curves()[0]) >= 1
    assert len(discs.model_store.record("auto1")["auto"]["trials"]) == 2


def test_uploads_decode_like_the_runtime_and_refuse_junk_naming_the_upload(monkeypatch) -> None:
    import io

    from PIL import Image

    from astrocyte_lab.widgets.inference_panel import decode_upload

    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), (10, 20, 30), np.uint8)).save(buffer, format="PNG")
    image = decode_upload("part.png", buffer.getvalue())
    assert image.shape == (6, 8, 3) and tuple(image[0, 0]) == (10, 20, 30)  # RGB, as the runtime reads it
    with pytest.raises(AstrocyteError, match=r"^junk\.png: .*upload"):
        decode_upload("junk.png", b"\x89PNG\r\n\x1a\n not an image")
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "40")
    with pytest.raises(AstrocyteError, match=r"^part\.png: .*ASTROCYTE_MAX_IMAGE_PIXELS"):
        decode_upload("part.png", buffer.getvalue())
