"""The annotation canvas: an ipycanvas view over :class:`~astrocyte_lab.annotate.AnnotationEditor`.

Layers (``MultiCanvas``): 0 the image (with masks and the ROI composed in), 1 the annotations and
predictions, 2 the operation in progress. Pointer moves redraw only layer 2 (or 1 when a drag starts),
at most ``max_fps`` times a second, so a drag stays cheap on big images. The full-resolution composed
image lives in a hidden source canvas; zoom and pan redraw it browser-side with one ``draw_image``.
All editing logic is in :mod:`astrocyte_lab.annotate`; this module only forwards events and draws.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import cv2
import ipywidgets as widgets
import numpy as np
from ipycanvas import Canvas, MultiCanvas, hold_canvas

from astrocyte_lab.annotate import AnnotationEditor, CanvasController, Change, Tool
from astrocyte_lab.annotate import geometry as geo
from astrocyte_lab.annotate.view import PSEUDO_COLOUR, SELECTION_COLOUR, category_colour, compose, display_pixels
from astrocyte_lab.data.annotations import Annotation, RotatedBox
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.errors import AstrocyteError

try:  # the draw-command table of the pinned ipycanvas (0.14); without it the public, slower path is used
    from ipycanvas.canvas import COMMANDS as _COMMANDS
except ImportError:  # pragma: no cover
    _COMMANDS = None

TOOL_LABELS = {Tool.SELECT: "Select", Tool.PAN: "Pan", Tool.BOX: "Box", Tool.ROTATED_BOX: "Rotated box",
               Tool.POLYGON: "Polygon", Tool.BRUSH: "Brush", Tool.CIRCLE: "Circle", Tool.ANNULUS: "Annulus",
               Tool.RECTANGLE: "Rectangle", Tool.ERASER: "Eraser"}
TOOL_TIPS = {Tool.SELECT: "Select, move, resize (corner handles); Delete removes",
             Tool.PAN: "Drag to pan; wheel zooms",
             Tool.BOX: "Drag (or click two corners) to add a box",
             Tool.ROTATED_BOX: "Click two corners of one side, then click the extent",
             Tool.POLYGON: "Click vertices; double-click (or Enter) closes",
             Tool.BRUSH: "Paint with the brush", Tool.CIRCLE: "Drag from the centre",
             Tool.ANNULUS: "Centre, outer radius (click), inner radius (click)",
             Tool.RECTANGLE: "Drag a rectangle", Tool.ERASER: "Paint background"}
NAV_KEYS = (" ", "Backspace", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "+", "=", "-", "f")
_REDRAW = Change.PREVIEW | Change.OBJECTS | Change.PIXELS | Change.IMAGE | Change.VIEW | Change.TOOL
BACKDROP = "#2b2b2b"
_HANDLE = 4.0  # half size of a drawn handle, screen pixels


class AnnotationCanvas(widgets.VBox):
    """Annotate the images of ``dataset``: toolbar, zoomable canvas and status line.

    ``image_ids`` limits Space / Backspace / the arrows to those images (e.g. the panel's filtered list);
    ``read_only`` keeps viewing, zoom and navigation only. ``on_change`` holds callbacks ``f(change)``
    called after an edit, an undo, a save or an image switch (``canvas.editor`` has the state).
    """

    def __init__(self, dataset: Dataset, image_id: int | str | None = None, module: str | None = None,
                 width: int = 800, height: int = 600, image_ids: list[int] | None = None, read_only: bool = False,
                 max_fps: float = 30.0) -> None:
        self.editor = AnnotationEditor(dataset, image_id, module=module, image_ids=image_ids)
        self.controller = CanvasController(self.editor, width, height)
        self.read_only = read_only
        if read_only:
            self.editor.tool = Tool.PAN
        self.on_change: list[Callable[[Change], None]] = []
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._last_draw = 0.0
        self._last_status = 0.0
        self._pending = Change.NONE
        self._hidden: frozenset[int] = frozenset()
        self._pixels: np.ndarray | None = None  # 8-bit display pixels of the open image
        self._layers: tuple | None = None  # the (mask, predicted mask, active region) the source canvas shows
        self._syncing = False
        self._names: dict[int, str] = {}
        w, h = self.editor.size
        self._source = Canvas(width=w, height=h)  # never displayed: the composed full-size image
        self.canvas = MultiCanvas(3, width=width, height=height,
                                  layout=widgets.Layout(width=f"{width}px", height=f"{height}px"))
        self._build_toolbar()
        self.status = widgets.HTML(layout=widgets.Layout(width=f"{width}px"))
        super().__init__([*self._toolbar_rows, self.canvas, self.status])
        # stable hooks for browser tests and styling
        self.add_class("astro-annotation")
        self.canvas.add_class("astro-annotation-layers")
        self.tool_buttons.add_class("astro-annotation-tools")
        self.status.add_class("astro-annotation-status")
        for name, button in self.buttons.items():
            button.add_class(f"astro-annotation-{name.replace('_', '-')}")
        for hook, handler in ((self.canvas.on_mouse_down, self._on_mouse_down),
                              (self.canvas.on_mouse_move, self._on_mouse_move),
                              (self.canvas.on_mouse_up, self._on_mouse_up),
                              (self.canvas.on_mouse_out, self._on_mouse_out),
                              (self.canvas.on_mouse_wheel, self._on_wheel),
                              (self.canvas.on_key_down, self._on_key),
                              (self.canvas.on_client_ready, self._on_client_ready)):
            hook(handler)
        self.redraw()

    # -- public ---------------------------------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset:
        return self.editor.dataset

    @property
    def image_ids(self) -> list[int]:
        return self.editor.image_ids

    @image_ids.setter
    def image_ids(self, ids: list[int] | None) -> None:
        self.editor.image_ids = ids

    def show_image(self, image_id: int | str) -> None:
        """Show another image of the dataset."""
        self.apply(self.editor.open(image_id))

    def refresh(self) -> None:
        """Re-read the dataset (categories, objects, masks) after a change made elsewhere, and redraw."""
        self._names = {}
        if self.editor.image_id not in self.dataset.ids:
            self.editor.open(int(self.editor.image_ids[0]))
        else:
            self.editor.open(self.editor.image_id)
        self._sync_toolbar()
        self.redraw()

    def redraw(self) -> None:
        """Draw every layer again (also what a newly connected browser gets)."""
        self._draw(Change.IMAGE | Change.VIEW | Change.OBJECTS | Change.PREVIEW)

    # -- toolbar ----------------------------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        small = widgets.Layout(width="auto")
        self.tool_buttons = widgets.ToggleButtons(style={"button_width": "auto"})
        self.category = widgets.Dropdown(description="Category", layout=widgets.Layout(width="220px"))
        self.show_truth = widgets.ToggleButton(value=True, description="Ground truth", layout=small,
                                               tooltip="Show annotations / masks")
        self.show_predictions = widgets.ToggleButton(value=True, description="Predictions", layout=small,
                                                     tooltip="Show the last test's predictions")
        self.roi_toggle = widgets.ToggleButton(value=False, description="ROI mask", layout=small,
                                               tooltip="Tools paint the dataset ROI (greyed pixels are ignored)")
        self.brush = widgets.BoundedFloatText(value=self.editor.brush_radius, min=0.5, max=500, step=1,
                                              description="Radius", layout=widgets.Layout(width="150px"))

        def button(label: str, tip: str, action: Callable[[], Change]) -> widgets.Button:
            b = widgets.Button(description=label, tooltip=tip, layout=small)
            b.on_click(lambda _: self.apply(action()))
            return b

        self.buttons = {
            "zoom_out": button("−", "Zoom out", lambda: self.controller.zoom(1 / 1.25)),
            "zoom_in": button("+", "Zoom in", lambda: self.controller.zoom(1.25)),
            "fit": button("Fit", "Fit the image", self.controller.fit),
            "previous": button("◀", "Previous image (Backspace)", lambda: self.editor.step(-1)),
            "next": button("▶", "Next image (Space)", lambda: self.editor.step(1)),
            "undo": button("Undo", "Undo the last edit (Ctrl+Z)", self.editor.undo),
            "delete": button("Delete", "Delete the selection (Delete)", self.editor.delete_selected),
            "invert_roi": button("Invert ROI", "Swap masked and active pixels", self.editor.invert_roi),
            "clear_roi": button("Clear ROI", "Remove the ROI mask", self.editor.clear_roi),
            "save": button("Save", "Save the dataset's changes as a new version", self._save),
        }
        self.tool_buttons.observe(self._on_tool, "value")
        self.category.observe(self._on_category, "value")
        self.roi_toggle.observe(self._on_roi, "value")
        self.brush.observe(self._on_brush, "value")
        for toggle in (self.show_truth, self.show_predictions):
            toggle.observe(lambda _: self._draw(Change.IMAGE | Change.OBJECTS), "value")
        b = self.buttons
        view = [b["zoom_out"], b["zoom_in"], b["fit"], b["previous"], b["next"]]
        if self.read_only:
            self._toolbar_rows = [widgets.HBox([self.show_truth, self.show_predictions, *view])]
        else:
            self._toolbar_rows = [
                widgets.HBox([self.tool_buttons, self.brush]),
                widgets.HBox([self.category, self.show_truth, self.show_predictions, *view, b["undo"], b["delete"],
                              self.roi_toggle, b["invert_roi"], b["clear_roi"], b["save"]],
                             layout=widgets.Layout(flex_flow="row wrap")),
            ]
        self._sync_toolbar()

    def _sync_toolbar(self) -> None:
        """Widgets follow the editor (tool list, tool, categories, category); unchanged options are not resent."""
        e = self.editor
        self._syncing = True
        try:
            tools = [t for t in e.tools if not self.read_only or t == Tool.PAN]
            options = tuple((TOOL_LABELS[t], t.value) for t in tools)
            if tuple(self.tool_buttons.options) != options:
                self.tool_buttons.options = options
                self.tool_buttons.tooltips = [TOOL_TIPS[t] for t in tools]
            self.tool_buttons.value = e.tool.value
            if tuple(self.category.options) != tuple(e.categories):
                self.category.options = e.categories
            self.category.value = e.category if e.category in e.categories else None
            self.category.disabled = e.module == "anomaly" or e.roi_mode
            painting = any(t in e.tools for t in (Tool.BRUSH, Tool.ERASER))
            self.brush.layout.display = None if painting else "none"
            no_roi = self.dataset.active_region() is None
            for name in ("invert_roi", "clear_roi"):
                self.buttons[name].disabled = no_roi
        finally:
            self._syncing = False

    def _on_tool(self, change: dict) -> None:
        if not self._syncing and change["new"]:
            self.editor.tool = change["new"]
            self._draw(Change.PREVIEW | Change.OBJECTS)

    def _on_category(self, change: dict) -> None:
        if not self._syncing and change["new"] is not None:
            self.editor.set_category(change["new"])
            self._status()

    def _on_roi(self, change: dict) -> None:
        if not self._syncing:
            self.editor.roi_mode = bool(change["new"])
            self._sync_toolbar()
            self._draw(Change.PREVIEW | Change.OBJECTS)

    def _on_brush(self, change: dict) -> None:
        self.editor.brush_radius = float(change["new"])

    def _save(self) -> Change:
        try:
            self.dataset.save()
        except AstrocyteError as exc:
            self._status(error=str(exc))
            return Change.NONE
        return Change.OBJECTS

    # -- events --------------------------------------------------------------------------------------------------
    def _on_mouse_down(self, x: float, y: float) -> None:
        if self.read_only and self.editor.tool != Tool.PAN:
            return
        self.apply(self.controller.mouse_down(x, y))

    def _on_mouse_move(self, x: float, y: float) -> None:
        change = self.controller.mouse_move(x, y)
        now = time.perf_counter()
        if not change:
            if now - self._last_status > 0.1:  # hover: only the pointer position, now and then
                self._status()
            return
        if now - self._last_draw < self.min_interval:
            self._pending |= change
            return
        self.apply(change)

    def _on_mouse_up(self, x: float, y: float) -> None:
        self.apply(self.controller.mouse_up(x, y))

    def _on_mouse_out(self, x: float, y: float) -> None:
        self.apply(self.controller.mouse_out(x, y))

    def _on_wheel(self, dx: float, dy: float) -> None:
        self.apply(self.controller.wheel(dx, dy))

    def _on_key(self, key: str, shift: bool, ctrl: bool, meta: bool) -> None:
        if self.read_only and key not in NAV_KEYS:
            return
        self.apply(self.controller.key(key, shift, ctrl, meta))

    def _on_client_ready(self) -> None:
        # a new browser view starts blank and does not know which canvas the manager last addressed
        self._source._canvas_manager._current_canvas = None
        self.redraw()

    def apply(self, change: Change) -> None:
        """Redraw what ``change`` needs, sync the toolbar, and tell the listeners about edits.

        Call it with what an editor method returned when a panel edits through ``canvas.editor``
        (e.g. ``canvas.apply(canvas.editor.update_object(0, x=5))``).
        """
        change |= self._pending
        self._pending = Change.NONE
        if Change.IMAGE in change:
            self.controller.image_changed()
        if change & (Change.TOOL | Change.IMAGE | Change.PIXELS):
            self._sync_toolbar()
        if change & _REDRAW:
            self._draw(change)
        if change & (Change.OBJECTS | Change.PIXELS | Change.IMAGE):
            for callback in list(self.on_change):
                callback(change)
        self._status()

    # -- drawing -----------------------------------------------------------------------------------------------------
    def _draw(self, change: Change) -> None:
        self._last_draw = time.perf_counter()
        preview = self.editor.preview()
        hidden = frozenset(preview.objects) if preview is not None and preview.objects else frozenset()
        with hold_canvas():
            if change & (Change.IMAGE | Change.PIXELS):
                self._update_source(full=Change.IMAGE in change)
            if change & (Change.IMAGE | Change.PIXELS | Change.VIEW):
                self._draw_image()
            if change & (Change.IMAGE | Change.OBJECTS | Change.VIEW | Change.PIXELS) or hidden != self._hidden:
                self._hidden = hidden
                self._draw_annotations()
            self._draw_interaction()

    def _update_source(self, full: bool) -> None:
        """Compose masks and ROI over the image into the source canvas; after an edit only the changed box."""
        e = self.editor
        if full or self._pixels is None:
            w, h = e.size
            if (self._source.width, self._source.height) != (w, h):
                self._source.width, self._source.height = w, h
            self._pixels = display_pixels(self.dataset.image(e.image_id), self.dataset.bit_depth)
        layers = (e.mask() if self.show_truth.value else None,
                  e.predicted_mask() if self.show_predictions.value else None, self.dataset.active_region())
        box = None if full or self._layers is None else _changed_box(self._layers, layers, e.background)
        self._layers = layers
        if box is None:
            _put_pixels(self._source, compose(self._pixels, *layers, background=e.background), 0, 0)
            return
        if box == ():
            return
        y0, y1, x0, x1 = box
        h, w = self._pixels.shape[:2]
        m = 2  # outlines need the neighbours of the changed pixels
        wy0, wy1, wx0, wx1 = max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)
        window = compose(self._pixels[wy0:wy1, wx0:wx1],
                         *(None if a is None else a[wy0:wy1, wx0:wx1] for a in layers), background=e.background)
        _put_pixels(self._source, window, wx0, wy0)

    def _draw_image(self) -> None:
        layer = self.canvas[0]
        vp = self.controller.viewport
        layer.fill_style = BACKDROP
        layer.fill_rect(0, 0, vp.width, vp.height)
        layer.image_smoothing_enabled = vp.zoom < 1.0  # crisp pixels when zoomed in
        x, y, w, h = vp.placement()
        layer.draw_image(self._source, x, y, w, h)

    def _draw_annotations(self) -> None:
        layer = self.canvas[1]
        e = self.editor
        layer.clear()
        names = e.categories
        if self.show_predictions.value and not e.roi_mode:
            for ann in e.predictions():
                label = ann.category if ann.score is None else f"{ann.category} {ann.score:.2f}"
                self._outline(layer, ann, category_colour(_index(names, ann.category)), label, dash=[3, 3], width=1.5)
        if self.show_truth.value and not e.roi_mode:
            for index, ann in enumerate(e.objects()):
                if index in self._hidden:
                    continue
                colour = PSEUDO_COLOUR if ann.pseudo else category_colour(_index(names, ann.category))
                label = f"{ann.category} (pseudo)" if ann.pseudo else ann.category
                self._outline(layer, ann, colour, label, dash=[8, 4] if ann.pseudo else [], width=2.0)
            objects = e.objects()
            for index in e.selection:
                if index < len(objects) and index not in self._hidden:
                    self._handles(layer, objects[index], single=len(e.selection) == 1)
        if e.region is not None and not e.roi_mode:
            self._region_outline(layer, e.region)

    def _draw_interaction(self) -> None:
        layer = self.canvas[2]
        layer.clear()
        preview = self.editor.preview()
        if preview is None:
            return
        vp = self.controller.viewport
        names = self.editor.categories
        layer.set_line_dash([])
        for ann in (preview.objects or {}).values():
            self._outline(layer, ann, category_colour(_index(names, ann.category)), None, dash=[], width=2.0)
            self._handles(layer, ann, single=True)
        colour = "#dddddd" if preview.erase else (category_colour(_index(names, self.editor.category or ""))
                                                 if not self.editor.roi_mode else "#202040")
        layer.stroke_style = colour
        layer.line_width = 1.5
        if preview.line:
            layer.set_line_dash([5, 4])
            layer.stroke_lines(vp.points_to_screen(np.asarray(preview.line)).tolist())
            layer.set_line_dash([])
        shape = preview.shape
        if shape is None:
            return
        pts = vp.points_to_screen(np.asarray(shape.points))
        if shape.kind == "rectangle":
            (x1, y1), (x2, y2) = pts[0], pts[-1]
            layer.stroke_rect(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1))
        elif shape.kind in ("circle", "annulus"):
            layer.stroke_circle(pts[0][0], pts[0][1], shape.radius * vp.zoom)
            if shape.kind == "annulus":
                layer.stroke_circle(pts[0][0], pts[0][1], shape.inner * vp.zoom)
        elif shape.kind == "polygon":
            layer.stroke_polygon(pts.tolist())
        elif shape.kind == "stroke":
            layer.global_alpha = 0.5
            layer.line_cap = "round"
            layer.line_join = "round"
            layer.line_width = max(1.0, 2 * shape.radius * vp.zoom)
            if len(pts) == 1:
                layer.fill_style = colour
                layer.fill_circle(pts[0][0], pts[0][1], shape.radius * vp.zoom)
            else:
                layer.stroke_lines(pts.tolist())
            layer.global_alpha = 1.0

    def _outline(self, layer: Canvas, ann: Annotation, colour: str, label: str | None, dash: list[float],
                 width: float) -> None:
        vp = self.controller.viewport
        pts = vp.points_to_screen(geo.outline(ann))
        layer.stroke_style = colour
        layer.line_width = width
        layer.set_line_dash(dash)
        layer.stroke_polygon(pts.tolist())
        layer.set_line_dash([])
        if label:
            x, y = pts[:, 0].min(), pts[:, 1].min()
            layer.font = "12px sans-serif"
            layer.fill_style = colour
            layer.fill_text(label, float(x), float(y - 4 if y >= 16 else y + 14))

    def _handles(self, layer: Canvas, ann: Annotation, single: bool) -> None:
        vp = self.controller.viewport
        layer.fill_style = SELECTION_COLOUR
        layer.stroke_style = "#000000"
        layer.line_width = 1.0
        knobs = vp.points_to_screen(geo.handles(ann))
        if single and isinstance(ann, RotatedBox):
            knob = geo.rotation_handle(ann, 3 * self.editor.handle_tolerance)
            top = vp.points_to_screen(np.asarray([knob]))[0]
            mid = vp.points_to_screen(np.asarray([geo.rotation_handle(ann, 0.0)]))[0]
            layer.stroke_line(mid[0], mid[1], top[0], top[1])
            layer.fill_circle(top[0], top[1], _HANDLE)
            layer.stroke_circle(top[0], top[1], _HANDLE)
        size = 2 * _HANDLE
        layer.fill_rects(knobs[:, 0] - _HANDLE, knobs[:, 1] - _HANDLE, size, size)
        layer.stroke_rects(knobs[:, 0] - _HANDLE, knobs[:, 1] - _HANDLE, size, size)

    def _region_outline(self, layer: Canvas, region: np.ndarray) -> None:
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        vp = self.controller.viewport
        layer.stroke_style = SELECTION_COLOUR
        layer.line_width = 2.0
        layer.set_line_dash([6, 3])
        for contour in contours:
            pts = vp.points_to_screen(contour.reshape(-1, 2) + 0.5)
            if len(pts) >= 2:
                layer.stroke_polygon(pts.tolist())
        layer.set_line_dash([])

    # -- status -------------------------------------------------------------------------------------------------------
    def _status(self, error: str | None = None) -> None:
        self._last_status = time.perf_counter()
        e = self.editor
        ids = e.image_ids
        position = f"{ids.index(e.image_id) + 1}/{len(ids)}" if e.image_id in ids else "-"
        name = self._image_name()
        parts = [f"<b>{_escape(name)}</b> ({position})", f"zoom {self.controller.viewport.zoom:.2f}x"]
        if self.controller.pointer is not None:
            x, y = self.controller.pointer
            parts.append(f"x {math.floor(x)}, y {math.floor(y)}")
        parts.append(f"tool {e.tool.value}" + (" (ROI)" if e.roi_mode else ""))
        if e.category and e.module != "anomaly":
            parts.append(f"category {_escape(e.category)}")
        if self.dataset.dirty:
            parts.append("<i>unsaved changes</i>")
        if error:
            parts.append(f"<span style='color:#c00'>{_escape(error)}</span>")
        self.status.value = " · ".join(parts)

    def _image_name(self) -> str:
        """Image names are read once (the dataset's table view is not free on big datasets)."""
        image_id = self.editor.image_id
        if image_id not in self._names:
            self._names = {int(i): str(n) for i, n in self.dataset.table["name"].items()}
        return self._names.get(image_id, str(image_id))


def _changed_box(old: tuple, new: tuple, background: int) -> tuple | None:
    """``(y0, y1, x0, x1)`` around the pixels that differ between two (mask, predicted, active) tuples;
    ``()`` when none differ, None when the shapes disagree (compose everything). A missing mask counts as
    all background and a missing ROI as all active, so the first stroke on an image stays a small update."""
    changed = None
    for slot, (a, b) in enumerate(zip(old, new, strict=True)):
        if a is None and b is None:
            continue
        if a is not None and b is not None and a.shape != b.shape:
            return None
        a, b = (_filled(x, y, slot, background) for x, y in ((a, b), (b, a)))
        diff = a != b
        changed = diff if changed is None else changed | diff
    if changed is None or not changed.any():
        return ()
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _filled(layer: np.ndarray | None, other: np.ndarray, slot: int, background: int) -> np.ndarray:
    """``layer``, or what its absence means, shaped like ``other``: no ROI = all active, no mask = background."""
    if layer is not None:
        return layer
    if slot == 2 or other.dtype == bool:
        return np.full(other.shape, slot == 2, bool)
    return np.full(other.shape, background, other.dtype)


def _put_pixels(canvas: Canvas, rgba: np.ndarray, x: int, y: int) -> None:
    """Lossless pixels onto ``canvas`` at ``(x, y)``: a fast PNG (ipycanvas' own encoder is slow, and lossy
    JPEG for RGB) sent as the ``putImageData`` command; falls back to ``put_image_data``."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgba[:, :, :3]), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])
    command = _COMMANDS.get("putImageData") if _COMMANDS else None
    if not ok or command is None:
        canvas.put_image_data(np.ascontiguousarray(rgba), x, y)
        return
    canvas._canvas_manager.send_draw_command(canvas, command, [int(x), int(y)], [data.tobytes()])


def _index(names: list[str], name: str) -> int:
    return names.index(name) if name in names else -1


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AnnotationDetails(widgets.VBox):
    """The annotation-details table of a canvas: one row per object (or mask region), coordinates, category
    and pseudo flag editable, IoU with the best-matching prediction shown. Follows ``canvas.on_change``."""

    COLUMNS = ("#", "category", "kind", "x / cx", "y / cy", "width", "height", "angle", "pseudo", "score", "IoU")
    MAX_ROWS = 200

    def __init__(self, canvas: AnnotationCanvas) -> None:
        super().__init__()
        self.canvas = canvas
        self.grid = widgets.GridBox(layout=widgets.Layout(grid_template_columns="40px 140px 90px repeat(5, 80px) "
                                                                                "60px 60px 60px", grid_gap="2px 4px"))
        self.note = widgets.HTML()
        self.children = [widgets.HTML("<b>Annotation details</b>"), self.grid, self.note]
        self.add_class("astro-annotation-details")
        canvas.on_change.append(lambda _change: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the rows from the editor's details."""
        editor = self.canvas.editor
        rows = editor.details()
        cells: list[widgets.Widget] = [widgets.HTML(f"<b>{c}</b>") for c in self.COLUMNS]
        for row in rows[:self.MAX_ROWS]:
            cells += self._row(row, editor.categories)
        self.grid.children = cells
        more = len(rows) - self.MAX_ROWS
        self.note.value = f"{more} more not shown" if more > 0 else ("" if rows else "no annotations on this image")

    def _row(self, row: dict, categories: list[str]) -> list[widgets.Widget]:
        index, kind = row["index"], row["kind"]
        region = kind == "region"
        category = widgets.Dropdown(options=categories, value=row["category"] if row["category"] in categories
                                    else None, layout=widgets.Layout(width="135px"),
                                    disabled=self.canvas.read_only or self.canvas.editor.module == "anomaly")
        category.observe(lambda c: self._edit(index, category=c["new"]), "value")
        rotated = kind == "rotated_box"
        fields = [("cx" if rotated else "x"), ("cy" if rotated else "y"), "width", "height", "angle"]
        numbers: list[widgets.Widget] = []
        for name in fields:
            value = row.get(name)
            if value is None or (name == "angle" and not rotated):
                numbers.append(widgets.HTML(""))
                continue
            box = widgets.FloatText(value=round(float(value), 2), step=1, continuous_update=False,
                                    layout=widgets.Layout(width="78px"), disabled=region or self.canvas.read_only)
            box.observe(lambda c, name=name: self._edit(index, **{name: c["new"]}), "value")
            numbers.append(box)
        pseudo = widgets.Checkbox(value=bool(row["pseudo"]), indent=False, layout=widgets.Layout(width="50px"),
                                  disabled=region or self.canvas.read_only)
        pseudo.observe(lambda c: self._edit(index, pseudo=c["new"]), "value")
        score = "" if row["score"] is None else f"{row['score']:.2f}"
        iou = "" if row["iou"] is None else f"{row['iou']:.2f}"
        return [widgets.HTML(str(index)), category, widgets.HTML(kind.replace("_", " ")), *numbers, pseudo,
                widgets.HTML(score), widgets.HTML(iou)]

    def _edit(self, index: int, **fields: object) -> None:
        try:
            self.canvas.apply(self.canvas.editor.update_object(index, **fields))
        except AstrocyteError as exc:
            self.note.value = f"<span style='color:#c00'>{_escape(str(exc))}</span>"
