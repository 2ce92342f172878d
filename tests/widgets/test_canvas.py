"""The annotation canvas widget, driven as the browser would: ipycanvas events into the handlers it registered."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import cv2
import ipycanvas.canvas as ipc
import numpy as np
import pytest

from astrocyte_lab.annotate import Change, Tool
from astrocyte_lab.data.annotations import Box
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.widgets.canvas import AnnotationCanvas, AnnotationDetails

# the tiny datasets of the annotation tests (a conftest is only seen by its own folder)
_spec = importlib.util.spec_from_file_location("annotate_datasets", Path(__file__).parents[1] / "annotate" /
                                               "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
template, ws = _fixtures.template, _fixtures.ws
detection, segmentation, anomaly, classification = (_fixtures.detection, _fixtures.segmentation, _fixtures.anomaly,
                                                    _fixtures.classification)


def fire(canvas: AnnotationCanvas, event: str, x: float = 0, y: float = 0) -> None:
    """What the browser sends: a custom message to the top layer's handler."""
    canvas.canvas._canvases[-1]._handle_frontend_event(None, {"event": event, "x": x, "y": y}, None)


def key(canvas: AnnotationCanvas, name: str, ctrl: bool = False) -> None:
    canvas.canvas._canvases[-1]._handle_frontend_event(
        None, {"event": "key_down", "key": name, "shift_key": False, "ctrl_key": ctrl, "meta_key": False}, None)


def drag(canvas: AnnotationCanvas, start, end, steps: int = 4) -> None:
    fire(canvas, "mouse_down", *start)
    for k in range(1, steps + 1):
        fire(canvas, "mouse_move", start[0] + (end[0] - start[0]) * k / steps,
             start[1] + (end[1] - start[1]) * k / steps)
    fire(canvas, "mouse_up", *end)


def screen(canvas: AnnotationCanvas, x: float, y: float) -> tuple[float, float]:
    return canvas.controller.viewport.to_screen(x, y)


@pytest.fixture
def sent(monkeypatch):
    """Draw messages the canvas manager sends: (commands, buffers)."""
    out: list = []
    monkeypatch.setattr(ipc._CANVAS_MANAGER, "_send_custom", lambda command, buffers=(): out.append((command,
                                                                                                    buffers)))
    return out


def addressed(messages: list, canvas) -> bool:
    """True when a message switches to ``canvas`` (so it drew on it)."""
    ref = f"IPY_MODEL_{canvas.model_id}"
    return ref in repr([m[0] for m in messages])


def test_construct_for_every_module(detection, segmentation, anomaly, classification) -> None:
    for dataset, tools in ((detection, {"select", "box", "rotated_box", "polygon"}),
                           (segmentation, {"brush", "annulus", "eraser", "rectangle"}),
                           (anomaly, {"circle", "polygon"}), (classification, {"pan"})):
        canvas = AnnotationCanvas(dataset, width=256, height=192)
        assert tools <= {v for _, v in canvas.tool_buttons.options}
        assert canvas.canvas.layout.width == "256px" and canvas.canvas.layout.height == "192px"
        assert len(canvas.canvas._canvases) == 3 and canvas.editor.image_id == dataset.ids[0]
        assert canvas.controller.viewport.zoom == pytest.approx(4.0)  # 64 x 48 fitted into 256 x 192
        assert dataset.categories == list(canvas.category.options)
    assert canvas._pixels.dtype == np.uint8 and canvas._pixels.shape == (48, 64, 3)  # 16-bit grey for display


def test_draw_box_with_the_mouse_and_delete_it(detection) -> None:
    canvas = AnnotationCanvas(detection, image_id=1, width=256, height=192)
    changes: list[Change] = []
    canvas.on_change.append(changes.append)
    canvas.tool_buttons.value = "box"
    assert canvas.editor.tool == Tool.BOX
    drag(canvas, screen(canvas, 10, 10), screen(canvas, 30, 20))
    assert detection.objects(1) == [Box("nut", 10, 10, 30, 20)] and detection.dirty
    assert changes and Change.OBJECTS in changes[-1]
    assert "unsaved" in canvas.status.value and "d1.png" in canvas.status.value
    canvas.tool_buttons.value = "select"
    fire(canvas, "mouse_down", *screen(canvas, 20, 15))
    fire(canvas, "mouse_up", *screen(canvas, 20, 15))
    key(canvas, "Delete")
    assert detection.objects(1) == []
    key(canvas, "z", ctrl=True)
    assert len(detection.objects(1)) == 1


def test_rotated_box_and_polygon_double_click(detection, monkeypatch) -> None:
    canvas = AnnotationCanvas(detection, image_id=2, width=256, height=192)
    canvas.tool_buttons.value = "rotated_box"
    for p in [(10, 10), (30, 10), (30, 18)]:
        fire(canvas, "mouse_down", *screen(canvas, *p))
        fire(canvas, "mouse_up", *screen(canvas, *p))
    (box,) = detection.objects(2)
    assert (box.width, box.height, box.angle) == pytest.approx((20, 8, 0))
    canvas.tool_buttons.value = "polygon"
    for p in [(40, 5), (60, 5), (60, 25), (40, 25)]:
        fire(canvas, "mouse_down", *screen(canvas, *p))
        fire(canvas, "mouse_up", *screen(canvas, *p))
    fire(canvas, "mouse_down", *screen(canvas, 40, 25))  # second click within the double-click time
    fire(canvas, "mouse_up", *screen(canvas, 40, 25))
    assert detection.objects(2)[1].points == ((40, 5), (60, 5), (60, 25), (40, 25))


def test_keys_pick_category_and_walk_images(detection) -> None:
    canvas = AnnotationCanvas(detection, width=256, height=192)
    key(canvas, "1")
    assert canvas.editor.category == "screw" and canvas.category.value == "screw"
    canvas.category.value = "washer"
    assert canvas.editor.category == "washer"
    key(canvas, " ")
    assert canvas.editor.image_id == 1 and "d1.png" in canvas.status.value
    canvas.buttons["next"].click()
    assert canvas.editor.image_id == 2
    key(canvas, "Backspace")
    assert canvas.editor.image_id == 1
    canvas.image_ids = [2, 0]
    canvas.show_image(0)
    key(canvas, "Backspace")
    assert canvas.editor.image_id == 2


def test_zoom_pan_and_fit(detection) -> None:
    canvas = AnnotationCanvas(detection, width=256, height=192)
    vp = canvas.controller.viewport
    canvas.buttons["zoom_in"].click()
    assert vp.zoom == pytest.approx(5.0) and canvas.editor.zoom == pytest.approx(5.0)
    fire(canvas, "mouse_move", 0, 0)
    fire(canvas, "mouse_wheel", 0, 120)  # wheel down: zoom out about the pointer
    assert vp.zoom == pytest.approx(4.0) and vp.to_image(0, 0) == pytest.approx(
        canvas.controller.viewport.to_image(0, 0))
    canvas.tool_buttons.value = "pan"
    before = vp.to_image(100, 100)
    drag(canvas, (100, 100), (140, 100))
    assert vp.to_image(140, 100) == pytest.approx(before)
    assert detection.objects(0)[0] == Box("nut", 4, 4, 20, 16)  # panning edits nothing
    canvas.buttons["fit"].click()
    assert vp.to_screen(0, 0) == pytest.approx((0, 0))


def test_segmentation_brush_paints_mask_and_updates_only_the_changed_box(segmentation, sent) -> None:
    canvas = AnnotationCanvas(segmentation, image_id=1, width=256, height=192)
    canvas.tool_buttons.value = "brush"
    canvas.brush.value = 2
    sent.clear()
    drag(canvas, screen(canvas, 30, 30), screen(canvas, 50, 30))
    mask = segmentation.mask(1)
    assert (mask[30, 30:50] == 1).all() and mask[40, 40] == 0
    puts = [b for _, b in sent if b]
    assert len(puts) == 1 and addressed(sent, canvas._source)  # one PNG: the changed window, not the image
    canvas.tool_buttons.value = "annulus"
    assert canvas.brush.layout.display is None
    for p in [(20, 30), (28, 30), (24, 30)]:
        fire(canvas, "mouse_down", *screen(canvas, *p))
        fire(canvas, "mouse_up", *screen(canvas, *p))
    assert segmentation.mask(1)[30, 26] == 1 and segmentation.mask(1)[30, 21] == 0


def test_move_redraws_only_the_interaction_layer(detection, sent) -> None:
    canvas = AnnotationCanvas(detection, image_id=1, width=256, height=192, max_fps=0)
    canvas.tool_buttons.value = "box"
    fire(canvas, "mouse_down", 40, 40)
    ipc._CANVAS_MANAGER._current_canvas = None  # so every message names its canvas
    sent.clear()
    fire(canvas, "mouse_move", 80, 60)
    assert addressed(sent, canvas.canvas[2]) and not addressed(sent, canvas.canvas[0])
    assert not addressed(sent, canvas.canvas[1]) and not any(b for _, b in sent)
    fire(canvas, "mouse_up", 80, 60)


def test_moves_are_throttled_but_release_is_drawn(detection) -> None:
    canvas = AnnotationCanvas(detection, image_id=1, width=256, height=192, max_fps=1)
    canvas.tool_buttons.value = "box"
    fire(canvas, "mouse_down", 40, 40)
    canvas._last_draw = time.perf_counter()
    fire(canvas, "mouse_move", 80, 60)
    assert canvas._pending == Change.PREVIEW  # skipped: within the frame interval
    fire(canvas, "mouse_up", 80, 60)
    assert canvas._pending == Change.NONE and len(detection.objects(1)) == 1


def test_roi_mode_paints_and_inverts(anomaly) -> None:
    canvas = AnnotationCanvas(anomaly, width=256, height=192)
    canvas.roi_toggle.value = True
    assert canvas.editor.roi_mode and "brush" in {v for _, v in canvas.tool_buttons.options}
    assert canvas.buttons["invert_roi"].disabled
    canvas.tool_buttons.value = "rectangle"
    drag(canvas, screen(canvas, 0, 0), screen(canvas, 32, 48))
    active = anomaly.active_region()
    assert not active[:, :32].any() and active[:, 32:].all() and anomaly.mask(0) is None
    assert not canvas.buttons["invert_roi"].disabled
    canvas.buttons["invert_roi"].click()
    assert anomaly.active_region()[:, :32].all()
    canvas.roi_toggle.value = False
    canvas.tool_buttons.value = "circle"
    drag(canvas, screen(canvas, 40, 20), screen(canvas, 46, 20))
    assert anomaly.mask(0)[20, 40]


def test_save_button_persists(ws, detection) -> None:
    canvas = AnnotationCanvas(detection, image_id=2, width=256, height=192)
    canvas.tool_buttons.value = "box"
    drag(canvas, screen(canvas, 5, 5), screen(canvas, 15, 25))
    canvas.buttons["save"].click()
    assert not detection.dirty and "unsaved" not in canvas.status.value
    assert ws.dataset("det").objects(2) == [Box("nut", 5, 5, 15, 25)]


def test_client_ready_redraws_everything(detection, sent) -> None:
    canvas = AnnotationCanvas(detection, width=256, height=192)
    ipc._CANVAS_MANAGER._current_canvas = canvas.canvas[1]
    sent.clear()
    fire(canvas, "client_ready")
    assert ipc._CANVAS_MANAGER._current_canvas is not None  # was reset, then drawn again
    for layer in (canvas._source, canvas.canvas[0], canvas.canvas[1], canvas.canvas[2]):
        assert addressed(sent, layer)


def test_read_only_views_but_does_not_edit(detection) -> None:
    canvas = AnnotationCanvas(detection, width=256, height=192, read_only=True)
    assert [v for _, v in canvas.tool_buttons.options] == ["pan"] and canvas.editor.tool == Tool.PAN
    key(canvas, "Delete")
    key(canvas, " ")
    assert canvas.editor.image_id == 1 and len(detection.objects(0)) == 2


def test_predictions_and_pseudo_labels_are_drawn(detection, sent) -> None:
    detection.set_predicted_objects(0, [Box("nut", 5, 5, 20, 16, score=0.87)])
    detection.add_object(0, Box("washer", 30, 2, 40, 10, pseudo=True))
    canvas = AnnotationCanvas(detection, width=256, height=192)
    drawn = repr([m[0] for m in sent])
    assert "nut 0.87" in drawn and "washer (pseudo)" in drawn
    sent.clear()
    canvas.show_predictions.value = False
    assert "nut 0.87" not in repr([m[0] for m in sent])


def test_drag_handler_is_fast_on_a_1024_image(ws, tmp_path) -> None:
    """The Python side of a drag step on a 1024 x 1024 image: far below the 0.1 s budget."""
    _fixtures.write_image(tmp_path / "big" / "b0.png", 0, 1024, 1024)
    big = ws.create_dataset("big", "detection", [NamedSet("s", [Location(tmp_path / "big")])])
    big.add_category("part")
    for k in range(40):
        big.add_object(0, Box("part", 10 + 20 * k, 10 + 15 * k, 40 + 20 * k, 60 + 15 * k))
    canvas = AnnotationCanvas(big, width=800, height=600, max_fps=0)
    canvas.tool_buttons.value = "select"
    fire(canvas, "mouse_down", *screen(canvas, 20, 30))
    timings = []
    for k in range(30):
        start = time.perf_counter()
        fire(canvas, "mouse_move", *screen(canvas, 20 + k, 30 + k))
        timings.append(time.perf_counter() - start)
    fire(canvas, "mouse_up", *screen(canvas, 49, 59))
    assert big.objects(0)[0].x1 == pytest.approx(39)
    assert float(np.median(timings)) < 0.02 and max(timings) < 0.1


def test_panel_edits_through_apply_and_refresh(detection) -> None:
    canvas = AnnotationCanvas(detection, width=256, height=192)
    seen: list[Change] = []
    canvas.on_change.append(seen.append)
    canvas.apply(canvas.editor.update_object(0, x=0, y=0))
    assert detection.objects(0)[0].x1 == 0 and seen == [Change.OBJECTS]
    assert canvas.editor.details()[0]["x"] == 0
    detection.add_category("bolt")  # changed elsewhere (the Dataset panel)
    canvas.refresh()
    assert "bolt" in canvas.category.options
    key(canvas, "3")
    assert canvas.category.value == "bolt"


def test_first_stroke_on_an_image_without_mask_sends_a_small_update(anomaly, sent) -> None:
    canvas = AnnotationCanvas(anomaly, width=256, height=192)
    assert canvas.editor.mask() is None
    canvas.tool_buttons.value = "rectangle"
    sent.clear()
    drag(canvas, screen(canvas, 10, 10), screen(canvas, 20, 16))
    assert anomaly.mask(0).sum() == 60
    (png,) = [b[0] for _, b in sent if b]
    window = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert window.shape[:2] == (6 + 4, 10 + 4)  # the rectangle and a 2-pixel margin for its outline


def test_details_table_edits_follow_the_canvas(detection, segmentation) -> None:
    detection.set_predicted_objects(0, [Box("nut", 4, 4, 20, 16, score=0.9)])
    canvas = AnnotationCanvas(detection, width=256, height=192)
    table = AnnotationDetails(canvas)
    columns = len(AnnotationDetails.COLUMNS)
    assert len(table.grid.children) == columns * 3  # header and two objects
    first = table.grid.children[columns:2 * columns]
    assert first[-1].value == "1.00" and first[2].value == "box"
    first[3].value = 0.0  # x
    assert detection.objects(0)[0].x1 == 0 and detection.objects(0)[0].x2 == 16
    row = table.grid.children[columns:2 * columns]  # rebuilt after the edit
    row[8].value = True
    assert detection.objects(0)[0].pseudo
    rotated = table.grid.children[2 * columns:3 * columns]
    rotated[7].value = 45.0
    assert detection.objects(0)[1].angle == pytest.approx(45)
    key(canvas, " ")
    assert "no annotations" in table.note.value
    seg_table = AnnotationDetails(AnnotationCanvas(segmentation, width=256, height=192))
    region = seg_table.grid.children[columns:2 * columns]
    assert region[2].value == "region" and region[3].disabled
    region[1].value = "scratch"
    assert segmentation.mask(0)[5, 5] == segmentation.categories.index("scratch")
