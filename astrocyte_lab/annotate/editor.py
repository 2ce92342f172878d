"""The annotation editor: tools, selection and edits on one image of a dataset, in image coordinates.

It is the engine behind the annotation canvas and has no user-interface dependency: a view feeds it
pointer and key events (already converted to image pixels) and redraws what the returned :class:`Change`
names. Every edit goes through the dataset's own methods (``set_objects``, ``set_mask``, ``set_roi``),
so ``dataset.dirty`` tells there is something to save; the editor never saves by itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from astrocyte_lab.annotate import geometry as geo
from astrocyte_lab.annotate.geometry import Point, Shape
from astrocyte_lab.data.annotations import Annotation, Box, Polygon, RotatedBox, clip, normalise_angle, transform
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.errors import AstrocyteError


class Tool(enum.StrEnum):
    SELECT = "select"
    PAN = "pan"
    BOX = "box"
    ROTATED_BOX = "rotated_box"
    POLYGON = "polygon"
    BRUSH = "brush"
    CIRCLE = "circle"
    ANNULUS = "annulus"
    RECTANGLE = "rectangle"
    ERASER = "eraser"


class Change(enum.Flag):
    """What an event changed, so a view redraws only that."""

    NONE = 0
    PREVIEW = enum.auto()  # the shape in progress / the objects being dragged
    OBJECTS = enum.auto()  # annotations or the selection
    PIXELS = enum.auto()  # a mask or the ROI
    IMAGE = enum.auto()  # another image is open
    VIEW = enum.auto()  # zoom or pan (set by the view controller)
    TOOL = enum.auto()  # tool, category or mode


OBJECT_TOOLS = (Tool.SELECT, Tool.PAN, Tool.BOX, Tool.ROTATED_BOX, Tool.POLYGON)
MASK_TOOLS = (Tool.SELECT, Tool.PAN, Tool.POLYGON, Tool.BRUSH, Tool.CIRCLE, Tool.ANNULUS, Tool.RECTANGLE,
              Tool.ERASER)
ROI_TOOLS = (Tool.PAN, Tool.POLYGON, Tool.BRUSH, Tool.CIRCLE, Tool.ANNULUS, Tool.RECTANGLE, Tool.ERASER)
_PAINT = (Tool.POLYGON, Tool.BRUSH, Tool.CIRCLE, Tool.ANNULUS, Tool.RECTANGLE, Tool.ERASER)
_KINDS = {Box: "box", RotatedBox: "rotated_box", Polygon: "polygon"}
_DELETE_KEYS = ("Delete", "Del")
UNDO_DEPTH = 30


def tools_for(module: str, roi: bool = False) -> tuple[Tool, ...]:
    """The tools offered for a module (``roi=True``: the ROI mask editor, for every module)."""
    if roi:
        return ROI_TOOLS
    if module == "detection":
        return OBJECT_TOOLS
    if module in ("segmentation", "anomaly"):
        return MASK_TOOLS
    return (Tool.PAN,)


@dataclass(frozen=True)
class Preview:
    """What to draw for the operation in progress: a shape being drawn and/or objects being dragged.

    ``objects`` maps object index to its dragged form (the view hides the stored one meanwhile);
    ``line`` is a rubber band (polygon vertices so far plus the pointer, or a rotated box's first side).
    """

    shape: Shape | None = None
    objects: dict[int, Annotation] | None = None
    line: tuple[Point, ...] = ()
    erase: bool = False


@dataclass
class _Undo:
    kind: str  # objects | mask | roi
    image_id: int | None
    before: object


class AnnotationEditor:
    """Tools and edits over one image of ``dataset`` (switch images with :meth:`open`, Space / Backspace).

    ``zoom`` (screen pixels per image pixel) scales the hit-testing tolerances, which are given in screen
    pixels (``tolerance_px``, ``handle_px``), so picking feels the same at every zoom.
    """

    def __init__(self, dataset: Dataset, image_id: int | str | None = None, module: str | None = None,
                 image_ids: Sequence[int] | None = None, zoom: float = 1.0, tolerance_px: float = 5.0,
                 handle_px: float = 7.0, brush_radius: float = 5.0) -> None:
        self.dataset = dataset
        self.module = module or dataset.module
        self._image_ids: list[int] | None = [int(i) for i in image_ids] if image_ids is not None else None
        self.zoom = float(zoom)
        self.tolerance_px, self.handle_px = float(tolerance_px), float(handle_px)
        self.brush_radius = float(brush_radius)
        self._roi_mode = False
        self._tool = self.tools[0] if self.tools[0] != Tool.PAN or len(self.tools) == 1 else self.tools[1]
        names = self.categories
        self.category: str | None = self._default_category(names)
        self.selection: list[int] = []
        self.region: np.ndarray | None = None  # selected mask region (segmentation / anomaly select tool)
        self._undo: list[_Undo] = []
        self._reset_operation()
        self.image_id: int = -1
        ids = self.image_ids
        if image_id is None and not ids:
            raise AstrocyteError(f"dataset {dataset.name!r} has no images to annotate")
        self.open(ids[0] if image_id is None else image_id)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def categories(self) -> list[str]:
        return self.dataset.categories

    @property
    def image_ids(self) -> list[int]:
        """The images Space / Backspace walk through (the dataset's order unless given)."""
        return list(self._image_ids) if self._image_ids is not None else self.dataset.ids.tolist()

    @image_ids.setter
    def image_ids(self, ids: Sequence[int] | None) -> None:
        self._image_ids = [int(i) for i in ids] if ids is not None else None

    @property
    def tools(self) -> tuple[Tool, ...]:
        return tools_for(self.module, self._roi_mode)

    @property
    def tool(self) -> Tool:
        return self._tool

    @tool.setter
    def tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        if tool not in self.tools:
            raise AstrocyteError(f"tool {tool.value!r} is not available here; choose one of "
                                 f"{[t.value for t in self.tools]}")
        self._reset_operation()
        self._tool = tool

    @property
    def roi_mode(self) -> bool:
        """True while the tools paint the dataset's ROI instead of annotations."""
        return self._roi_mode

    @roi_mode.setter
    def roi_mode(self, on: bool) -> None:
        self._reset_operation()
        self._roi_mode = bool(on)
        self.selection, self.region = [], None
        if self._tool not in self.tools:
            self._tool = next(t for t in self.tools if t != Tool.PAN) if len(self.tools) > 1 else self.tools[0]

    @property
    def tolerance(self) -> float:
        """Hit-test tolerance in image pixels at the current zoom."""
        return self.tolerance_px / max(self.zoom, 1e-6)

    @property
    def handle_tolerance(self) -> float:
        return self.handle_px / max(self.zoom, 1e-6)

    @property
    def size(self) -> tuple[int, int]:
        g = self.dataset.geometry
        return g.width, g.height

    @property
    def busy(self) -> bool:
        """True while an operation is in progress (pointer moves then matter)."""
        return bool(self._points) or self._drag is not None

    def objects(self) -> list[Annotation]:
        """Annotations (ground truth and pseudo labels) of the open image, in index order."""
        return self.dataset.objects(self.image_id)

    def predictions(self) -> list[Annotation]:
        return self.dataset.predicted_objects(self.image_id)

    def mask(self) -> np.ndarray | None:
        """The open image's mask (a cached copy; edits go through the dataset)."""
        if self._mask_cache is None:
            self._mask_cache = (self.dataset.mask(self.image_id),)
        return self._mask_cache[0]

    def predicted_mask(self) -> np.ndarray | None:
        return self.dataset.predicted_mask(self.image_id)

    @property
    def background(self) -> int:
        """Category index painted by the eraser in segmentation masks."""
        names = self.categories
        if "background" in names:
            return names.index("background")
        finder = getattr(self.dataset, "_background_index", None)
        return int(finder()) if callable(finder) else 0

    def preview(self) -> Preview | None:
        """The operation in progress, for drawing; None when idle."""
        return self._preview

    # -- navigation -------------------------------------------------------------------------------------
    def open(self, image_id: int | str) -> Change:
        """Show another image: the shape in progress and the selection are dropped."""
        if isinstance(image_id, str):
            image_id = int(self.dataset.ids[list(self.dataset.table["name"]).index(image_id)])
        self.dataset.objects(image_id)  # validates the id
        self._reset_operation()
        self.image_id = int(image_id)
        self.selection, self.region = [], None
        self._mask_cache: tuple[np.ndarray | None] | None = None
        return Change.IMAGE

    def step(self, offset: int) -> Change:
        """Move ``offset`` images along :attr:`image_ids` (stops at the ends)."""
        ids = self.image_ids
        if not ids:
            return Change.NONE
        here = ids.index(self.image_id) if self.image_id in ids else -1
        target = min(max(here + offset, 0), len(ids) - 1)
        return self.open(ids[target]) if ids[target] != self.image_id else Change.NONE

    def set_category(self, category: str | int) -> Change:
        names = self.categories
        if isinstance(category, int):
            if not 0 <= category < len(names):
                return Change.NONE
            category = names[category]
        if category not in names:
            raise AstrocyteError(f"no category {category!r} (categories: {names})")
        self.category = category
        return Change.TOOL

    # -- pointer events ------------------------------------------------------------------------------------
    def press(self, x: float, y: float, modifiers: Iterable[str] = ()) -> Change:
        """Pointer pressed at image point ``(x, y)``; ``modifiers`` may hold shift / ctrl / alt / meta."""
        p = (float(x), float(y))
        mods = {m.lower() for m in modifiers}
        tool = self._tool
        self._down = True
        if tool == Tool.PAN:
            return Change.NONE
        if tool == Tool.SELECT:
            return self._press_select(p, "shift" in mods or "ctrl" in mods)
        if tool in (Tool.BOX, Tool.RECTANGLE, Tool.CIRCLE):
            if self._points:  # click-move-click: the second click completes
                return self._finish_two_point(p)
            self._points = [p]
            self._cursor = p
            return self._update_preview()
        if tool == Tool.ROTATED_BOX:
            if len(self._points) == 2:
                return self._finish_rotated(p)
            self._points.append(p)
            self._cursor = p
            return self._update_preview()
        if tool == Tool.ANNULUS:
            if len(self._points) == 2:  # centre and outer radius set: this click sets the inner radius
                return self._finish_annulus(p)
            if self._points:
                self._points.append(p)  # click-move-click: the outer radius
                return self._update_preview()
            self._points = [p]
            self._cursor = p
            return self._update_preview()
        if tool == Tool.POLYGON:
            tol = self.tolerance
            if len(self._points) >= 3 and geo.distance(p, self._points[0]) <= tol:
                return self._finish_polygon()
            if not self._points or geo.distance(p, self._points[-1]) > tol:
                self._points.append(p)
            self._cursor = p
            return self._update_preview()
        if tool in (Tool.BRUSH, Tool.ERASER):
            self._points = [p]
            self._cursor = p
            return self._update_preview()
        return Change.NONE

    def move(self, x: float, y: float) -> Change:
        """Pointer moved (dragging, or hovering during a multi-click shape)."""
        p = (float(x), float(y))
        self._cursor = p
        if self._drag is not None:
            return self._drag_to(p)
        if not self._points:
            return Change.NONE
        if self._tool in (Tool.BRUSH, Tool.ERASER):
            if not self._down:
                return Change.NONE
            if geo.distance(p, self._points[-1]) >= max(self.brush_radius / 4, 0.5):
                self._points.append(p)
        return self._update_preview()

    def release(self, x: float, y: float) -> Change:
        p = (float(x), float(y))
        self._down = False
        self._cursor = p
        if self._drag is not None:
            return self._end_drag(p)
        if not self._points:
            return Change.NONE
        tool = self._tool
        far = geo.distance(p, self._points[0]) > self.tolerance
        if tool in (Tool.BOX, Tool.RECTANGLE, Tool.CIRCLE):
            return self._finish_two_point(p) if far else Change.NONE  # a click: wait for the second one
        if tool == Tool.ROTATED_BOX and len(self._points) == 1 and far:
            self._points.append(p)  # the first side was dragged
            return self._update_preview()
        if tool == Tool.ANNULUS and len(self._points) == 1 and far:
            self._points.append(p)
            return self._update_preview()
        if tool in (Tool.BRUSH, Tool.ERASER):
            if geo.distance(p, self._points[-1]) > 0:
                self._points.append(p)
            shape = Shape("stroke", tuple(self._points), self.brush_radius)
            erase = tool == Tool.ERASER
            self._reset_operation()
            return self._paint(shape, erase)
        return Change.NONE

    def double_click(self, x: float, y: float) -> Change:
        """A double click closes the polygon in progress (needs three distinct vertices)."""
        if self._tool == Tool.POLYGON and len(self._points) >= 3:
            return self._finish_polygon()
        return Change.NONE

    def key(self, name: str, modifiers: Iterable[str] = ()) -> Change:
        """Keyboard: Delete, digits 0-9 (category), Escape (cancel), Enter (close polygon), Space /
        Backspace (next / previous image), ctrl+z (undo), p (pseudo label <-> ground truth on the selection).
        Names are the browser's ``KeyboardEvent.key``."""
        mods = {m.lower() for m in modifiers}
        if name in _DELETE_KEYS:
            return self.delete_selected()
        if len(name) == 1 and name.isdigit() and not mods:
            return self.set_category(int(name))
        if name in ("Escape", "Esc"):
            if self.busy:
                self.cancel()
                return Change.PREVIEW
            if self.selection or self.region is not None:
                self.selection, self.region = [], None
                return Change.OBJECTS
            return Change.NONE
        if name == "Enter" and self._tool == Tool.POLYGON and len(self._points) >= 3:
            return self._finish_polygon()
        if name in (" ", "Space", "Spacebar"):
            return self.step(1)
        if name == "Backspace":
            return self.step(-1)
        if name.lower() == "z" and ({"ctrl", "meta"} & mods):
            return self.undo()
        if name == "p" and not mods and self.selection and not self._uses_masks():
            return self.toggle_pseudo(*self.selection)
        return Change.NONE

    def cancel(self) -> None:
        """Drop the shape or drag in progress without editing anything."""
        self._reset_operation()

    # -- edits ---------------------------------------------------------------------------------------------
    def delete_selected(self) -> Change:
        """Remove the selected objects (or erase the selected mask region)."""
        if self.region is not None:
            region, self.region = self.region, None
            return self._paint_mask(region, erase=True)
        if not self.selection:
            return Change.NONE
        gone = set(self.selection)
        self._set_objects([a for i, a in enumerate(self.objects()) if i not in gone])
        self.selection = []
        return Change.OBJECTS

    def add(self, annotation: Annotation) -> Change:
        """Append an annotation to the open image (what the drawing tools do on completion)."""
        self._set_objects([*self.objects(), annotation])
        self.selection = [len(self.objects()) - 1]
        return Change.OBJECTS

    def update_object(self, index: int, **fields: object) -> Change:
        """Edit one object's fields from the details table.

        Boxes take ``x, y, width, height`` (or ``x1, y1, x2, y2``), rotated boxes ``cx, cy, width, height,
        angle``, polygons ``x, y`` (a move) and ``width, height`` (a scale); all take ``category`` and
        ``pseudo``. Mask regions (segmentation / anomaly) take ``category`` only.
        """
        if self._uses_masks():
            return self._update_region(index, fields)
        objects = self.objects()
        if not 0 <= index < len(objects):
            raise AstrocyteError(f"no object {index} on this image ({len(objects)} objects)")
        old = objects[index]
        new = _updated(old, dict(fields), self.categories)
        objects[index] = new
        self._set_objects(objects)
        return Change.OBJECTS

    def toggle_pseudo(self, *indices: int) -> Change:
        """Turn pseudo labels into ground truth, or ground truth back into pseudo labels (key ``p`` on the
        selection); one undo step."""
        objects = self.objects()
        for index in indices:
            if not 0 <= index < len(objects):
                raise AstrocyteError(f"no object {index} on this image ({len(objects)} objects)")
            objects[index] = replace(objects[index], pseudo=not objects[index].pseudo)
        self._set_objects(objects)
        return Change.OBJECTS

    def invert_roi(self) -> Change:
        """Swap masked and active pixels of the dataset's ROI (undoable)."""
        if self.dataset.active_region() is None:
            return Change.NONE
        self._push("roi", None, self.dataset.active_region())
        self.dataset.invert_roi()
        return Change.PIXELS

    def clear_roi(self) -> Change:
        if self.dataset.active_region() is None:
            return Change.NONE
        self._push("roi", None, self.dataset.active_region())
        self.dataset.clear_roi()
        return Change.PIXELS

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> Change:
        """Revert the last edit made through this editor (on whatever image it was made)."""
        if not self._undo:
            return Change.NONE
        entry = self._undo.pop()
        change = Change.NONE
        if entry.image_id is not None and entry.image_id != self.image_id and entry.image_id in self.dataset.ids:
            change |= self.open(entry.image_id)
        self._reset_operation()
        self.selection, self.region = [], None
        if entry.kind == "objects":
            self.dataset.set_objects(entry.image_id, entry.before)  # type: ignore[arg-type]
            return change | Change.OBJECTS
        if entry.kind == "mask":
            self.dataset.set_mask(entry.image_id, entry.before)  # type: ignore[arg-type]
            self._mask_cache = None
            return change | Change.PIXELS
        if entry.before is None:
            self.dataset.clear_roi()
        else:
            self.dataset.set_roi(~np.asarray(entry.before, bool))
        return change | Change.PIXELS

    # -- details -------------------------------------------------------------------------------------------
    def details(self) -> list[dict]:
        """One row per annotation (or mask region): index, category, kind, coordinates, pseudo, score, IoU.

        ``iou`` is the overlap with the best-matching prediction of the same category (None without
        predictions). Coordinates: ``x, y, width, height`` (bounds) for every kind, plus ``cx, cy, angle``
        for rotated boxes (whose ``width`` / ``height`` are the sides) and ``points`` for polygons.
        """
        if self._uses_masks():
            return self._region_details()
        predictions = self.predictions()
        rows = []
        for index, ann in enumerate(self.objects()):
            x1, y1, x2, y2 = ann.bounds()
            row: dict = {"index": index, "category": ann.category, "kind": _KINDS[type(ann)], "x": x1, "y": y1,
                         "width": x2 - x1, "height": y2 - y1, "cx": None, "cy": None, "angle": None, "points": None,
                         "pseudo": ann.pseudo, "score": ann.score, "iou": None}
            if isinstance(ann, RotatedBox):
                row.update(cx=ann.cx, cy=ann.cy, width=ann.width, height=ann.height, angle=ann.angle)
            elif isinstance(ann, Polygon):
                row["points"] = [tuple(p) for p in ann.points]
            same = [p for p in predictions if p.category == ann.category]
            if same:
                row["iou"] = max(geo.iou(ann, p) for p in same)
            rows.append(row)
        return rows

    def regions(self) -> list[tuple[int, np.ndarray]]:
        """Connected regions of the mask as ``(category index, bool array)``, by category then position."""
        mask = self.mask()
        if mask is None:
            return []
        out = []
        if mask.dtype == bool:
            values = [(1, mask)]
        else:
            values = [(int(v), mask == v) for v in np.unique(mask) if int(v) != self.background]
        for value, binary in values:
            count, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
            out += [(value, labels == k) for k in range(1, count)]
        return out

    # -- internals: selection and dragging -----------------------------------------------------------------
    def _press_select(self, p: Point, extend: bool) -> Change:
        if self._uses_masks():
            return self._select_region(p)
        objects = self.objects()
        if len(self.selection) == 1 and not extend:
            chosen = objects[self.selection[0]]
            if isinstance(chosen, RotatedBox):
                knob = geo.rotation_handle(chosen, 3 * self.handle_tolerance)
                if geo.distance(p, knob) <= self.handle_tolerance:
                    self._drag = ("rotate", self.selection[0], p, {self.selection[0]: chosen})
                    return Change.NONE
            corner = geo.handle_at(chosen, p, self.handle_tolerance)
            if corner is not None:
                self._drag = ("resize", corner, p, {self.selection[0]: chosen})
                return Change.NONE
        index = geo.hit(objects, p, self.tolerance)
        if index is None:
            changed = bool(self.selection) and not extend
            if not extend:
                self.selection = []
            return Change.OBJECTS if changed else Change.NONE
        if extend:
            self.selection = [i for i in self.selection if i != index] if index in self.selection \
                else [*self.selection, index]
            return Change.OBJECTS
        if index not in self.selection:
            self.selection = [index]
        self._drag = ("move", None, p, {i: objects[i] for i in self.selection})
        return Change.OBJECTS

    def _drag_to(self, p: Point) -> Change:
        mode, arg, start, originals = self._drag  # type: ignore[misc]
        if mode == "move":
            dx, dy = p[0] - start[0], p[1] - start[1]
            moved = {i: geo.translate(a, dx, dy) for i, a in originals.items()}
        elif mode == "resize":
            (i, a), = originals.items()
            moved = {i: geo.resize(a, arg, p)}
        else:
            (i, a), = originals.items()
            moved = {i: geo.rotate_towards(a, p)}
        self._preview = Preview(objects=moved)
        return Change.PREVIEW

    def _end_drag(self, p: Point) -> Change:
        mode, arg, start, originals = self._drag  # type: ignore[misc]
        if geo.distance(p, start) == 0:
            self._reset_operation()
            return Change.PREVIEW
        self._drag_to(p)
        moved = self._preview.objects or {}
        self._reset_operation()
        objects = self.objects()
        w, h = self.size
        for i, a in moved.items():
            if isinstance(a, RotatedBox):
                a = replace(a, angle=normalise_angle(a.angle))
            if geo.degenerate(a, 1.0) or clip(a, w, h) is None:
                return Change.PREVIEW | Change.OBJECTS  # collapsed or dragged off the image: keep the original
            objects[i] = a
        self._set_objects(objects)
        return Change.PREVIEW | Change.OBJECTS

    def _select_region(self, p: Point) -> Change:
        mask = self.mask()
        w, h = self.size
        col, row = int(p[0]), int(p[1])
        had = self.region is not None
        self.region = None
        if mask is None or not (0 <= col < w and 0 <= row < h):
            return Change.OBJECTS if had else Change.NONE
        value = mask[row, col]
        if (mask.dtype == bool and not value) or (mask.dtype != bool and int(value) == self.background):
            return Change.OBJECTS if had else Change.NONE
        _, labels = cv2.connectedComponents((mask == value).astype(np.uint8), connectivity=8)
        self.region = labels == labels[row, col]
        return Change.OBJECTS

    # -- internals: finishing shapes -----------------------------------------------------------------------
    def _finish_two_point(self, p: Point) -> Change:
        a = self._points[0]
        tool = self._tool
        self._reset_operation()
        if geo.distance(a, p) <= 0:
            return Change.PREVIEW
        if tool == Tool.BOX:
            box = geo.box_from_points(self._category_or_fail(), a, p)
            return Change.PREVIEW | (self.add(box) if not geo.degenerate(box, 1.0) else Change.NONE)
        if tool == Tool.RECTANGLE:
            return self._paint(Shape("rectangle", (a, p)), False)
        return self._paint(Shape("circle", (a,), geo.distance(a, p)), False)

    def _finish_rotated(self, p: Point) -> Change:
        a, b = self._points[:2]
        self._reset_operation()
        box = geo.rotated_from_three_points(self._category_or_fail(), a, b, p)
        if box is None or geo.degenerate(box, 1.0):
            return Change.PREVIEW
        return Change.PREVIEW | self.add(box)

    def _finish_annulus(self, p: Point) -> Change:
        centre, edge = self._points[:2]
        self._reset_operation()
        r1, r2 = sorted((geo.distance(centre, edge), geo.distance(centre, p)))
        if r2 <= 0:
            return Change.PREVIEW
        return self._paint(Shape("annulus", (centre,), r2, r1), False)

    def _finish_polygon(self) -> Change:
        points = tuple(self._points)
        self._reset_operation()
        if len(points) < 3:
            return Change.PREVIEW
        if self._uses_masks() or self._roi_mode:
            return self._paint(Shape("polygon", points), False)
        polygon = Polygon(self._category_or_fail(), points)
        if geo.degenerate(polygon, 1.0):
            return Change.PREVIEW
        return Change.PREVIEW | self.add(polygon)

    def _update_preview(self) -> Change:
        tool, pts, cur = self._tool, self._points, self._cursor
        shape, line = None, ()
        if tool in (Tool.BOX, Tool.RECTANGLE):
            shape = Shape("rectangle", (pts[0], cur))
        elif tool == Tool.CIRCLE:
            shape = Shape("circle", (pts[0],), geo.distance(pts[0], cur))
        elif tool == Tool.ANNULUS:
            outer = geo.distance(pts[0], pts[1] if len(pts) > 1 else cur)
            inner = geo.distance(pts[0], cur) if len(pts) > 1 else 0.0
            shape = Shape("annulus", (pts[0],), max(outer, inner), min(outer, inner))
        elif tool == Tool.ROTATED_BOX:
            if len(pts) == 1:
                line = (pts[0], cur)
            else:
                box = geo.rotated_from_three_points("", pts[0], pts[1], cur)
                shape = Shape("polygon", tuple(map(tuple, box.corners()))) if box else None
                line = (pts[0], pts[1])
        elif tool == Tool.POLYGON:
            line = (*pts, cur)
        elif tool in (Tool.BRUSH, Tool.ERASER):
            shape = Shape("stroke", tuple(pts), self.brush_radius)
        self._preview = Preview(shape=shape, line=line, erase=tool == Tool.ERASER)
        return Change.PREVIEW

    # -- internals: writing to the dataset -----------------------------------------------------------------
    def _paint(self, shape: Shape, erase: bool) -> Change:
        pixels = geo.rasterise(shape, self.size)
        if self._roi_mode:
            return self._paint_roi(pixels, erase)
        if not self._uses_masks():
            return Change.PREVIEW
        return self._paint_mask(pixels, erase)

    def _paint_mask(self, pixels: np.ndarray, erase: bool) -> Change:
        before = self.mask()
        w, h = self.size
        if self.module == "anomaly":
            mask = np.zeros((h, w), bool) if before is None else before.copy()
            mask[pixels] = not erase
        else:
            mask = np.full((h, w), self.background, np.uint8) if before is None else before.copy()
            mask[pixels] = self.background if erase else self.categories.index(self._category_or_fail())
        self._push("mask", self.image_id, before)
        self.dataset.set_mask(self.image_id, mask)
        self._mask_cache = (mask,)
        self.region = None
        return Change.PREVIEW | Change.PIXELS

    def _paint_roi(self, pixels: np.ndarray, erase: bool) -> Change:
        active = self.dataset.active_region()
        w, h = self.size
        ignored = np.zeros((h, w), bool) if active is None else ~active
        ignored[pixels] = not erase
        self._push("roi", None, active)
        self.dataset.set_roi(ignored)
        return Change.PREVIEW | Change.PIXELS

    def _set_objects(self, objects: list[Annotation]) -> None:
        self._push("objects", self.image_id, self.objects())
        self.dataset.set_objects(self.image_id, objects)

    def _push(self, kind: str, image_id: int | None, before: object) -> None:
        self._undo.append(_Undo(kind, image_id, before))
        del self._undo[:-UNDO_DEPTH]

    def _update_region(self, index: int, fields: dict) -> Change:
        regions = self.regions()
        if not 0 <= index < len(regions):
            raise AstrocyteError(f"no region {index} on this image ({len(regions)} regions)")
        unknown = set(fields) - {"category"}
        if unknown:
            raise AstrocyteError(f"mask regions take only a new category, not {sorted(unknown)}")
        if self.module == "anomaly":
            return Change.NONE
        keep = self.category
        self.set_category(str(fields["category"]))
        try:
            return self._paint_mask(regions[index][1], erase=False)
        finally:
            self.category = keep

    def _region_details(self) -> list[dict]:
        names = self.categories
        predicted = self.predicted_mask()
        rows = []
        for index, (value, binary) in enumerate(self.regions()):
            ys, xs = np.nonzero(binary)
            name = "Anomaly" if self.module == "anomaly" else names[value]
            row = {"index": index, "category": name, "kind": "region", "x": float(xs.min()), "y": float(ys.min()),
                   "width": float(np.ptp(xs) + 1), "height": float(np.ptp(ys) + 1), "cx": None, "cy": None,
                   "angle": None, "points": None, "area": int(xs.size), "pseudo": False, "score": None, "iou": None}
            if predicted is not None:
                row["iou"] = _region_iou(binary, predicted == (True if predicted.dtype == bool else value))
            rows.append(row)
        return rows

    def _uses_masks(self) -> bool:
        return self.module in ("segmentation", "anomaly") and not self._roi_mode

    def _category_or_fail(self) -> str:
        if self.category is None:
            raise AstrocyteError("the dataset has no categories yet: add one before drawing")
        return self.category

    def _default_category(self, names: list[str]) -> str | None:
        if self.module == "anomaly" and "Anomaly" in names:
            return "Anomaly"
        if self.module == "segmentation":
            others = [n for n in names if n != "background"]
            return others[0] if others else (names[0] if names else None)
        return names[0] if names else None

    def _reset_operation(self) -> None:
        self._points: list[Point] = []
        self._cursor: Point = (0.0, 0.0)
        self._drag: tuple | None = None
        self._preview: Preview | None = None
        self._down = False


def _region_iou(region: np.ndarray, predicted: np.ndarray) -> float:
    """IoU of a region with the predicted components (same category) that overlap it."""
    count, labels = cv2.connectedComponents(predicted.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[region & (labels > 0)])
    matched = np.isin(labels, touching) & (labels > 0)
    union = np.count_nonzero(region | matched)
    return float(np.count_nonzero(region & matched) / union) if union else 0.0


def _updated(old: Annotation, fields: dict, categories: list[str]) -> Annotation:
    """``old`` with the details-table fields applied (see :meth:`AnnotationEditor.update_object`)."""
    common = {k: fields.pop(k) for k in ("category", "pseudo", "score") if k in fields}
    if "category" in common and common["category"] not in categories:
        raise AstrocyteError(f"no category {common['category']!r} (categories: {categories})")
    if "pseudo" in common:
        common["pseudo"] = bool(common["pseudo"])
    new: Annotation = replace(old, **common)
    f = {k: float(v) for k, v in fields.items()}  # type: ignore[arg-type]
    if isinstance(new, Box):
        allowed = {"x", "y", "width", "height", "x1", "y1", "x2", "y2"}
        _check_fields(f, allowed, "box")
        x1, y1 = f.get("x1", f.get("x", new.x1)), f.get("y1", f.get("y", new.y1))
        x2 = f.get("x2", x1 + f.get("width", new.x2 - new.x1))
        y2 = f.get("y2", y1 + f.get("height", new.y2 - new.y1))
        new = replace(new, x1=x1, y1=y1, x2=x2, y2=y2)
    elif isinstance(new, RotatedBox):
        _check_fields(f, {"cx", "cy", "width", "height", "angle"}, "rotated box")
        new = replace(new, cx=f.get("cx", new.cx), cy=f.get("cy", new.cy), width=f.get("width", new.width),
                      height=f.get("height", new.height), angle=normalise_angle(f.get("angle", new.angle)))
    else:
        _check_fields(f, {"x", "y", "width", "height"}, "polygon")
        x1, y1, x2, y2 = new.bounds()
        sx = f["width"] / (x2 - x1) if "width" in f and x2 > x1 else 1.0
        sy = f["height"] / (y2 - y1) if "height" in f and y2 > y1 else 1.0
        tx, ty = f.get("x", x1), f.get("y", y1)
        new = transform(new, sx, sy, tx - x1 * sx, ty - y1 * sy)
    if geo.degenerate(new, 1e-6):
        raise AstrocyteError(f"{new!r} has no area")
    return new


def _check_fields(fields: dict, allowed: set[str], kind: str) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise AstrocyteError(f"a {kind} has no field(s) {sorted(unknown)}; editable: {sorted(allowed)}")
