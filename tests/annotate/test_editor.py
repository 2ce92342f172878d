"""The annotation editor: every tool, selection edits, keys, masks, ROI, details, undo, save and reload."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrocyte_lab.annotate import AnnotationEditor, CanvasController, Change, Tool, tools_for
from astrocyte_lab.annotate import geometry as geo
from astrocyte_lab.annotate.geometry import Shape
from astrocyte_lab.data.annotations import Box, Polygon, RotatedBox
from astrocyte_lab.errors import AstrocyteError


def click(editor: AnnotationEditor, x: float, y: float) -> Change:
    return editor.press(x, y) | editor.release(x, y)


def drag(editor: AnnotationEditor, start, end, steps: int = 3, modifiers=()) -> Change:
    change = editor.press(*start, modifiers)
    for k in range(1, steps + 1):
        t = k / steps
        change |= editor.move(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
    return change | editor.release(*end)


# -- tools per module ------------------------------------------------------------------------------------------
def test_tools_per_module(detection, segmentation, classification) -> None:
    assert Tool.ROTATED_BOX in tools_for("detection") and Tool.BRUSH not in tools_for("detection")
    assert {Tool.BRUSH, Tool.ANNULUS, Tool.ERASER} <= set(tools_for("segmentation"))
    assert Tool.BOX not in tools_for("anomaly", roi=True) and Tool.CIRCLE in tools_for("classification", roi=True)
    editor = AnnotationEditor(classification)
    assert editor.tools == (Tool.PAN,)
    with pytest.raises(AstrocyteError, match="not available"):
        editor.tool = Tool.BRUSH
    editor.roi_mode = True
    editor.tool = "circle"
    assert AnnotationEditor(detection).tool == Tool.SELECT


# -- detection: boxes ----------------------------------------------------------------------------------------------
def test_box_by_drag_and_by_two_clicks(detection) -> None:
    editor = AnnotationEditor(detection, image_id=1)
    editor.tool = Tool.BOX
    editor.press(30, 20)
    assert editor.move(10, 5) == Change.PREVIEW
    assert editor.preview().shape.kind == "rectangle"
    assert Change.OBJECTS in editor.release(10, 5)
    assert detection.objects(1) == [Box("nut", 10, 5, 30, 20)]
    assert detection.dirty and editor.selection == [0] and editor.preview() is None
    assert click(editor, 40, 30) == Change.PREVIEW  # first click only starts the box
    assert editor.busy
    editor.move(50, 40)
    assert Change.OBJECTS in click(editor, 50, 44)
    assert detection.objects(1)[1] == Box("nut", 40, 30, 50, 44)


def test_box_too_small_or_cancelled_is_dropped(detection) -> None:
    editor = AnnotationEditor(detection, image_id=1)
    editor.tool = Tool.BOX
    editor.press(5, 5)
    editor.move(20, 20)
    assert editor.key("Escape") == Change.PREVIEW and not editor.busy
    drag(editor, (5, 5), (5.5, 30))  # thinner than a pixel
    assert detection.objects(1) == []


def test_rotated_box_three_clicks(detection) -> None:
    editor = AnnotationEditor(detection, image_id=1)
    editor.tool = Tool.ROTATED_BOX
    editor.set_category("screw")
    click(editor, 10, 10)
    editor.move(30, 10)
    assert editor.preview().line == ((10, 10), (30, 10))
    click(editor, 30, 10)  # second corner of the first side
    editor.move(25, 18)
    preview = editor.preview().shape
    assert preview.kind == "polygon" and np.allclose(preview.points[2], (30, 18))
    assert Change.OBJECTS in click(editor, 12, 18)  # the extent: 8 px from the side, whatever the x
    (box,) = detection.objects(1)
    assert isinstance(box, RotatedBox) and box.category == "screw"
    assert (box.cx, box.cy, box.width, box.height, box.angle) == pytest.approx((20, 14, 20, 8, 0))


def test_rotated_box_first_side_dragged_and_tilted(detection) -> None:
    editor = AnnotationEditor(detection, image_id=1)
    editor.tool = Tool.ROTATED_BOX
    drag(editor, (20, 20), (30, 30))  # first side along 45 degrees
    side = math.hypot(10, 10)
    click(editor, 20 - 5 / math.sqrt(2), 20 + 5 / math.sqrt(2))  # 5 px away on the other side
    (box,) = detection.objects(1)
    assert box.width == pytest.approx(side) and box.height == pytest.approx(5)
    assert box.angle == pytest.approx(45)
    corners = box.corners()
    assert min(np.hypot(*(corners - (20, 20)).T)) == pytest.approx(0, abs=1e-9)


def test_rotated_geometry_helper() -> None:
    assert geo.rotated_from_three_points("a", (0, 0), (0, 0), (1, 1)) is None
    assert geo.rotated_from_three_points("a", (0, 0), (4, 0), (9, 0)) is None
    box = geo.rotated_from_three_points("a", (0, 0), (0, 10), (-4, 3))  # side pointing down: angle 90
    assert (box.width, box.height, box.angle) == pytest.approx((10, 4, 90))
    assert (box.cx, box.cy) == pytest.approx((-2, 5))


def test_polygon_object_closes_on_double_click_and_on_first_vertex(detection) -> None:
    editor = AnnotationEditor(detection, image_id=2)
    editor.tool = Tool.POLYGON
    for p in [(10, 10), (30, 10), (30, 30)]:
        click(editor, *p)
    editor.move(12, 28)
    assert len(editor.preview().line) == 4
    click(editor, 12, 28)
    click(editor, 12, 28)  # the browser's two clicks of a double click: no duplicate vertex
    assert Change.OBJECTS in editor.double_click(12, 28)
    (poly,) = detection.objects(2)
    assert isinstance(poly, Polygon) and poly.points == ((10, 10), (30, 10), (30, 30), (12, 28))
    for p in [(40, 5), (60, 5), (50, 20)]:
        click(editor, *p)
    click(editor, 40.5, 5.5)  # back on the first vertex closes too
    assert len(detection.objects(2)) == 2 and not editor.busy
    click(editor, 1, 1)
    click(editor, 5, 1)
    assert editor.double_click(5, 1) == Change.NONE  # two vertices are not a polygon
    editor.key("Escape")
    assert not editor.busy


# -- detection: select, move, resize, rotate, delete ---------------------------------------------------------------
def test_select_move_and_shift_select(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    assert Change.OBJECTS in click(editor, 10, 10)
    assert editor.selection == [0]
    assert Change.OBJECTS in click(editor, 60, 2)  # empty space clears
    assert editor.selection == []
    drag(editor, (10, 10), (15, 13))
    moved = detection.objects(0)[0]
    assert (moved.x1, moved.y1, moved.x2, moved.y2) == (9, 7, 25, 19)
    editor.press(40, 30, {"shift"})
    editor.release(40, 30)
    assert editor.selection == [0, 1]
    drag(editor, (40, 30), (42, 30))  # moves both
    assert detection.objects(0)[0].x1 == 11 and detection.objects(0)[1].cx == pytest.approx(42)


def test_drag_preview_hides_stored_until_release(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    editor.press(10, 10)
    editor.move(12, 10)
    assert set(editor.preview().objects) == {0}
    assert detection.objects(0)[0].x1 == 4  # not written until release
    editor.release(12, 10)
    assert detection.objects(0)[0].x1 == 6


def test_resize_box_by_corner_with_zoom_scaled_tolerance(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0, zoom=1.0)
    click(editor, 10, 10)
    drag(editor, (20 + 4, 16 + 4), (30, 24))  # 4 px off the corner: within 7 screen px at zoom 1
    assert detection.objects(0)[0] == Box("nut", 4, 4, 30, 24)
    editor.zoom = 8.0  # 4 image px = 32 screen px: too far for a handle, so this is a move
    drag(editor, (30 - 4, 24 - 4), (30 - 3, 24 - 4))
    assert detection.objects(0)[0] == Box("nut", 5, 4, 31, 24)
    drag(editor, (5.5, 4.5), (0, 0))  # top-left handle (0.7 image px away: 5.6 screen px)
    assert detection.objects(0)[0] == Box("nut", 0, 0, 31, 24)


def test_resize_and_rotate_a_rotated_box(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    editor.update_object(1, angle=0.0)  # screw: centre (40, 30), 16 x 8, level
    click(editor, 40, 30)
    assert editor.selection == [1]
    drag(editor, (48, 34), (52, 36))  # bottom-right corner outwards; top-left (32, 26) stays
    box = detection.objects(0)[1]
    assert (box.cx, box.cy, box.width, box.height, box.angle) == pytest.approx((42, 31, 20, 10, 0))
    knob = geo.rotation_handle(box, 3 * editor.handle_tolerance)
    assert knob == pytest.approx((42, 31 - 5 - 21))
    drag(editor, knob, (42 + 20, 31))  # handle to the right of the centre: turned 90 degrees clockwise
    box = detection.objects(0)[1]
    assert box.angle == pytest.approx(90) and (box.cx, box.width) == pytest.approx((42, 20))


def test_resize_polygon_scales_from_the_opposite_corner(detection) -> None:
    editor = AnnotationEditor(detection, image_id=2)
    editor.add(Polygon("nut", ((10, 10), (20, 10), (15, 20))))
    drag(editor, (20, 20), (30, 30))
    (poly,) = detection.objects(2)
    assert np.allclose(poly.points, ((10, 10), (30, 10), (20, 30)))


def test_drag_off_the_image_keeps_the_object(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    drag(editor, (10, 10), (500, 500))
    assert detection.objects(0)[0] == Box("nut", 4, 4, 20, 16)


def test_delete_key_and_digit_categories(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    assert editor.key("Delete") == Change.NONE
    click(editor, 10, 10)
    assert editor.key("Delete") == Change.OBJECTS
    assert [a.category for a in detection.objects(0)] == ["screw"]
    assert editor.key("2") == Change.TOOL and editor.category == "washer"
    assert editor.key("7") == Change.NONE and editor.category == "washer"
    editor.tool = Tool.BOX
    drag(editor, (1, 1), (9, 9))
    assert detection.objects(0)[-1].category == "washer"
    with pytest.raises(AstrocyteError):
        editor.set_category("bolt")


def test_space_and_backspace_walk_images(detection) -> None:
    editor = AnnotationEditor(detection)
    assert editor.image_id == 0
    assert editor.key(" ") == Change.IMAGE and editor.image_id == 1
    editor.key(" ")
    assert editor.key(" ") == Change.NONE and editor.image_id == 2  # stops at the end
    editor.key("Backspace")
    assert editor.image_id == 1
    editor.image_ids = [2, 0]
    editor.open(2)
    editor.key(" ")
    assert editor.image_id == 0
    editor.open("d1.png")
    assert editor.image_id == 1


# -- details, updates, pseudo labels ------------------------------------------------------------------------------
def test_details_with_iou_and_update_object(detection) -> None:
    detection.set_predicted_objects(0, [Box("nut", 4, 4, 20, 12, score=0.9), Box("screw", 0, 0, 5, 5, score=0.3)])
    editor = AnnotationEditor(detection, image_id=0)
    rows = editor.details()
    assert [r["kind"] for r in rows] == ["box", "rotated_box"]
    assert rows[0]["iou"] == pytest.approx(128 / 192) and rows[1]["iou"] == pytest.approx(0.0)
    assert (rows[0]["x"], rows[0]["y"], rows[0]["width"], rows[0]["height"]) == (4, 4, 16, 12)
    assert rows[1]["angle"] == pytest.approx(30) and rows[1]["width"] == pytest.approx(16)
    editor.update_object(0, x=10, width=6)
    assert detection.objects(0)[0] == Box("nut", 10, 4, 16, 16)
    editor.update_object(1, angle=200, category="washer")
    assert detection.objects(0)[1].angle == pytest.approx(20) and detection.objects(0)[1].category == "washer"
    with pytest.raises(AstrocyteError, match="no field"):
        editor.update_object(0, angle=3)
    with pytest.raises(AstrocyteError, match="no object"):
        editor.update_object(5, x=1)
    editor.add(Polygon("nut", ((10, 10), (20, 10), (20, 20))))
    editor.update_object(2, x=0, y=0, width=20)
    assert np.allclose(detection.objects(0)[2].points, ((0, 0), (20, 0), (20, 10)))
    assert editor.details()[2]["points"] == [(0, 0), (20, 0), (20, 10)]


def test_pseudo_toggle(detection) -> None:
    detection.add_object(1, Box("nut", 1, 1, 9, 9, pseudo=True, score=0.8))
    editor = AnnotationEditor(detection, image_id=1)
    assert editor.details()[0]["pseudo"] is True and editor.details()[0]["score"] == pytest.approx(0.8)
    editor.toggle_pseudo(0)
    assert detection.objects(1, pseudo=False) == [Box("nut", 1, 1, 9, 9, score=pytest.approx(0.8))]
    editor.toggle_pseudo(0)
    assert len(detection.objects(1, pseudo=True)) == 1
    click(editor, 5, 5)
    assert editor.key("p") == Change.OBJECTS and detection.objects(1, pseudo=True) == []
    editor.undo()
    assert len(detection.objects(1, pseudo=True)) == 1


def test_iou_helper_shapes() -> None:
    square = Box("a", 0, 0, 10, 10)
    assert geo.iou(square, Box("a", 5, 0, 15, 10)) == pytest.approx(1 / 3)
    turned = RotatedBox("a", 5, 5, 10, 10, 90)
    assert geo.iou(square, turned) == pytest.approx(1.0)
    ell = Polygon("a", ((0, 0), (10, 0), (10, 5), (5, 5), (5, 10), (0, 10)))  # non-convex: rasterised
    assert geo.iou(square, ell) == pytest.approx(0.75, abs=0.01)


# -- masks -------------------------------------------------------------------------------------------------------
def test_segmentation_shapes_paint_the_mask(segmentation) -> None:
    editor = AnnotationEditor(segmentation, image_id=1)
    crack, scratch = segmentation.categories.index("crack"), segmentation.categories.index("scratch")
    assert editor.category == "crack" and editor.background == 0
    editor.tool = Tool.RECTANGLE
    drag(editor, (20, 20), (30, 25))
    mask = segmentation.mask(1)
    assert (mask[20:25, 20:30] == crack).all() and (mask == crack).sum() == 100 + 50
    editor.key(str(scratch))
    editor.tool = Tool.CIRCLE
    editor.zoom = 4  # a 3 px drag is a drag, not a click, at this zoom
    assert Change.PIXELS in drag(editor, (50.5, 30.5), (53.5, 30.5))
    mask = segmentation.mask(1)
    ys, xs = np.nonzero(mask == scratch)
    assert mask[30, 50] == scratch and np.hypot(xs - 50, ys - 30).max() <= 3 and (mask == scratch).sum() == 29
    editor.tool = Tool.ERASER
    editor.brush_radius = 1
    drag(editor, (20, 22.5), (31, 22.5))
    mask = segmentation.mask(1)
    assert (mask[22, 20:30] == 0).all() and (mask[20, 20:30] == crack).all()


def test_annulus_by_drag_then_click(segmentation) -> None:
    editor = AnnotationEditor(segmentation, image_id=1)
    editor.tool = Tool.ANNULUS
    drag(editor, (32, 24), (42, 24))  # outer radius 10
    assert editor.busy and editor.preview().shape.radius == pytest.approx(10)
    editor.move(36, 24)
    assert editor.preview().shape.inner == pytest.approx(4)
    assert Change.PIXELS in click(editor, 36, 24)
    ring = segmentation.mask(1) == 1
    ring[0:10, 0:10] = False
    expected = geo.rasterise(Shape("annulus", ((32, 24),), 10, 4), (64, 48))
    assert (ring == expected).all() and not ring[24, 32] and ring[24, 39]


def test_annulus_by_three_clicks_inner_larger_swaps(segmentation) -> None:
    editor = AnnotationEditor(segmentation, image_id=1)
    editor.tool = Tool.ANNULUS
    click(editor, 32, 24)
    click(editor, 35, 24)  # outer 3 ...
    click(editor, 40, 24)  # ... inner 8: swapped
    expected = geo.rasterise(Shape("annulus", ((32, 24),), 8, 3), (64, 48))
    assert ((segmentation.mask(1) == 1)[:, 12:] == expected[:, 12:]).all()


def test_polygon_and_brush_on_masks_and_region_select(segmentation) -> None:
    editor = AnnotationEditor(segmentation, image_id=0)
    editor.tool = Tool.POLYGON
    for p in [(30, 10), (50, 10), (50, 30)]:
        click(editor, *p)
    editor.key("Enter")
    mask = segmentation.mask(0)
    assert mask[12, 48] == 1 and mask[28, 32] == 0
    editor.tool = Tool.BRUSH
    editor.brush_radius = 1.5
    drag(editor, (5.5, 40.5), (25.5, 40.5), steps=10)
    mask = segmentation.mask(0)
    assert (mask[40, 5:26] == 1).all() and mask[44, 10] == 0
    rows = editor.details()
    assert [r["kind"] for r in rows] == ["region"] * 3 and {r["category"] for r in rows} == {"crack"}
    editor.tool = Tool.SELECT
    assert Change.OBJECTS in click(editor, 45, 12)
    assert editor.region is not None and editor.region.sum() == (segmentation.mask(0) == 1)[:35, 25:].sum()
    assert Change.PIXELS in editor.key("Delete")
    assert segmentation.mask(0)[12, 48] == 0 and segmentation.mask(0)[5, 5] == 1
    assert click(editor, 60, 45) == Change.NONE  # background: nothing selected
    editor.update_object(0, category="scratch")
    assert segmentation.mask(0)[5, 5] == 2


def test_region_details_iou_with_predicted_mask(segmentation) -> None:
    predicted = np.zeros((48, 64), np.uint8)
    predicted[0:10, 0:5] = 1
    segmentation.set_predicted_mask(0, predicted)
    (row,) = AnnotationEditor(segmentation, image_id=0).details()
    assert row["iou"] == pytest.approx(0.5) and row["area"] == 100 and (row["width"], row["height"]) == (10, 10)


def test_anomaly_masks_are_bool(anomaly) -> None:
    editor = AnnotationEditor(anomaly, image_id=0)
    assert editor.mask() is None and editor.category == "Anomaly"
    editor.tool = Tool.RECTANGLE
    drag(editor, (10, 10), (20, 20))
    mask = anomaly.mask(0)
    assert mask.dtype == bool and mask.sum() == 100
    editor.tool = Tool.ERASER
    editor.brush_radius = 1
    click(editor, 15.5, 15.5)
    assert anomaly.mask(0).sum() < 100
    (row,) = editor.details()
    assert row["category"] == "Anomaly"


# -- ROI ------------------------------------------------------------------------------------------------------
def test_roi_painting_and_invert(detection) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    editor.roi_mode = True
    assert editor.tool in editor.tools and Tool.BOX not in editor.tools
    editor.tool = Tool.RECTANGLE
    drag(editor, (0, 0), (64, 10))
    active = detection.active_region()
    assert not active[:10].any() and active[10:].all()
    assert detection.objects(0)[0] == Box("nut", 4, 4, 20, 16)  # annotations untouched
    editor.tool = Tool.ERASER
    editor.brush_radius = 1
    click(editor, 32.5, 5.5)
    assert detection.active_region()[5, 32]
    assert editor.invert_roi() == Change.PIXELS
    assert detection.active_region()[3, 3] and not detection.active_region()[30, 30]
    editor.tool = Tool.CIRCLE  # after the invert, new shapes still mask out pixels
    editor.zoom = 4
    drag(editor, (3.5, 3.5), (5.5, 3.5))
    assert not detection.active_region()[3, 3]
    editor.undo()
    editor.undo()
    active = detection.active_region()
    assert not active[:10].any() or active[5, 32]
    assert editor.clear_roi() == Change.PIXELS and detection.active_region() is None


# -- undo, save, reload -------------------------------------------------------------------------------------------
def test_undo_restores_objects_masks_and_roi(detection, segmentation) -> None:
    editor = AnnotationEditor(detection, image_id=0)
    assert editor.undo() == Change.NONE
    click(editor, 10, 10)
    editor.key("Delete")
    editor.open(1)
    assert editor.key("z", ["ctrl"]) == Change.IMAGE | Change.OBJECTS  # jumps back to the edited image
    assert editor.image_id == 0 and len(detection.objects(0)) == 2
    seg = AnnotationEditor(segmentation, image_id=1)
    before = segmentation.mask(1)
    seg.tool = Tool.RECTANGLE
    drag(seg, (30, 30), (40, 40))
    seg.undo()
    assert (segmentation.mask(1) == before).all() and (seg.mask() == before).all()


def test_edits_saved_and_visible_after_reload(ws, detection, segmentation) -> None:
    editor = AnnotationEditor(detection, image_id=2)
    editor.tool = Tool.BOX
    drag(editor, (1, 2), (11, 12))
    editor.roi_mode = True
    editor.tool = Tool.RECTANGLE
    drag(editor, (0, 40), (64, 48))
    assert detection.dirty
    detection.save()
    again = ws.dataset("det")
    assert again.objects(2) == [Box("nut", 1, 2, 11, 12)]
    assert not again.active_region()[45].any() and again.active_region()[:40].all()
    seg = AnnotationEditor(segmentation, image_id=0)
    seg.tool = Tool.CIRCLE
    seg.zoom = 4
    seg.key("2")
    drag(seg, (40.5, 30.5), (44.5, 30.5))
    expected = segmentation.mask(0)
    segmentation.save()
    assert (ws.dataset("seg").mask(0) == expected).all() and (expected == 2).sum() > 40


def test_controller_zoom_pan_and_double_click(detection) -> None:
    now = [0.0]
    editor = AnnotationEditor(detection, image_id=2)
    ctl = CanvasController(editor, 128, 96, clock=lambda: now[0])
    assert ctl.viewport.zoom == 2 and editor.zoom == 2
    editor.tool = Tool.POLYGON
    for sx, sy in [(20, 20), (60, 20), (60, 60)]:
        ctl.mouse_down(sx, sy)
        ctl.mouse_up(sx, sy)
        now[0] += 1
    ctl.mouse_down(20, 60)
    ctl.mouse_up(20, 60)
    now[0] += 0.1
    assert Change.OBJECTS in ctl.mouse_down(21, 60)
    assert detection.objects(2)[0].points == ((10, 10), (30, 10), (30, 30), (10, 30))
    ctl.mouse_up(21, 60)
    assert ctl.wheel(0, -100) == Change.VIEW and ctl.viewport.zoom == pytest.approx(2.5)
    assert ctl.viewport.to_image(21, 60) == pytest.approx((10.5, 30))  # zoomed about the pointer
    editor.tool = Tool.PAN
    ctl.mouse_down(50, 50)
    assert ctl.mouse_move(60, 50) == Change.VIEW
    ctl.mouse_up(60, 50)
    assert ctl.viewport.to_image(31, 60) == pytest.approx((10.5, 30))
    assert ctl.key("ArrowLeft") == Change.VIEW and ctl.key("f") == Change.VIEW and ctl.viewport.zoom == 2
    assert ctl.key(" ") == Change.NONE and editor.image_id == 2  # already the last
    assert ctl.key("Backspace") == Change.IMAGE and editor.image_id == 1
