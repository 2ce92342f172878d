"""Canvas-pixel events to editor events: zoom, pan, double clicks, keys.

ipycanvas reports only positions (no buttons, no modifiers on the mouse, no double clicks, wheel as a
delta): this turns that stream into :class:`~astrocyte_lab.annotate.editor.AnnotationEditor` calls and
tells the view which layers to redraw. No widget code here, so it is tested without a browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from astrocyte_lab.annotate.editor import AnnotationEditor, Change, Tool
from astrocyte_lab.annotate.view import Viewport

DOUBLE_CLICK_S = 0.4
DOUBLE_CLICK_PX = 6.0
ZOOM_STEP = 1.25
PAN_KEYS = {"ArrowLeft": (1, 0), "ArrowRight": (-1, 0), "ArrowUp": (0, 1), "ArrowDown": (0, -1)}


class CanvasController:
    """Owns the :class:`Viewport` of a ``width`` x ``height`` canvas and drives ``editor`` from canvas events."""

    def __init__(self, editor: AnnotationEditor, width: int, height: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.editor = editor
        w, h = editor.size
        self.viewport = Viewport(w, h, int(width), int(height))
        self._clock = clock
        self._down = False
        self._panning: tuple[float, float] | None = None
        self._last_click: tuple[float, float, float] | None = None
        self.pointer: tuple[float, float] | None = None  # last pointer position, image pixels
        self._screen_pointer: tuple[float, float] | None = None
        self.fit()

    # -- view ----------------------------------------------------------------------------------------------
    def fit(self) -> Change:
        self.viewport.fit()
        self.editor.zoom = self.viewport.zoom
        return Change.VIEW

    def zoom(self, factor: float, sx: float | None = None, sy: float | None = None) -> Change:
        self.viewport.zoom_at(factor, sx, sy)
        self.editor.zoom = self.viewport.zoom
        return Change.VIEW

    def image_changed(self) -> None:
        """Call after the editor opened another image: keep the view unless the size changed."""
        w, h = self.editor.size
        if (w, h) != (self.viewport.image_width, self.viewport.image_height):
            self.viewport.image_width, self.viewport.image_height = w, h
            self.fit()

    # -- mouse -----------------------------------------------------------------------------------------------
    def mouse_down(self, sx: float, sy: float) -> Change:
        self._down = True
        self._screen_pointer = (sx, sy)
        x, y = self.pointer = self.viewport.to_image(sx, sy)
        now = self._clock()
        double = (self._last_click is not None and now - self._last_click[2] <= DOUBLE_CLICK_S
                  and abs(sx - self._last_click[0]) <= DOUBLE_CLICK_PX
                  and abs(sy - self._last_click[1]) <= DOUBLE_CLICK_PX)
        self._last_click = None if double else (sx, sy, now)
        if self.editor.tool == Tool.PAN:
            self._panning = (sx, sy)
            return Change.NONE
        change = self.editor.press(x, y)
        if double:
            change |= self.editor.double_click(x, y)
        return change

    def mouse_move(self, sx: float, sy: float) -> Change:
        self._screen_pointer = (sx, sy)
        x, y = self.pointer = self.viewport.to_image(sx, sy)
        if self._panning is not None:
            px, py = self._panning
            self.viewport.pan(sx - px, sy - py)
            self._panning = (sx, sy)
            return Change.VIEW
        if self._down or self.editor.busy:
            return self.editor.move(x, y)
        return Change.NONE

    def mouse_up(self, sx: float, sy: float) -> Change:
        self._down = False
        if self._panning is not None:
            self._panning = None
            return Change.NONE
        x, y = self.pointer = self.viewport.to_image(sx, sy)
        return self.editor.release(x, y)

    def mouse_out(self, sx: float, sy: float) -> Change:
        """Leaving the canvas ends a drag where it left (the button-up would never arrive)."""
        return self.mouse_up(sx, sy) if self._down else Change.NONE

    def wheel(self, dx: float, dy: float) -> Change:
        """Wheel (delta in browser units): zoom around the last pointer position."""
        if dy == 0:
            return Change.NONE
        factor = ZOOM_STEP if dy < 0 else 1 / ZOOM_STEP
        sx, sy = self._screen_pointer if self._screen_pointer is not None else (None, None)
        return self.zoom(factor, sx, sy)

    # -- keys --------------------------------------------------------------------------------------------------
    def key(self, name: str, shift: bool = False, ctrl: bool = False, meta: bool = False) -> Change:
        """Arrows pan, ``+`` / ``-`` zoom, ``f`` fits; everything else goes to the editor."""
        if name in PAN_KEYS:
            dx, dy = PAN_KEYS[name]
            self.viewport.pan(dx * self.viewport.width / 10, dy * self.viewport.height / 10)
            return Change.VIEW
        if name in ("+", "="):
            return self.zoom(ZOOM_STEP)
        if name == "-":
            return self.zoom(1 / ZOOM_STEP)
        if name == "f" and not (ctrl or meta):
            return self.fit()
        mods = [m for m, on in (("shift", shift), ("ctrl", ctrl), ("meta", meta)) if on]
        change = self.editor.key(name, mods)
        if Change.IMAGE in change:
            self.image_changed()
        return change
