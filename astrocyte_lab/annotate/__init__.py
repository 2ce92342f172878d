"""Annotation editing on dataset images: tools, selection, edits and view geometry (no widget code).

:class:`AnnotationEditor` works in image pixels on one image of a :class:`~astrocyte_lab.data.dataset.Dataset`;
:class:`CanvasController` maps canvas events (zoom, pan, double clicks, keys) onto it. The ipycanvas
widget in :mod:`astrocyte_lab.widgets.canvas` is a thin view over both.
"""

from astrocyte_lab.annotate.controller import CanvasController
from astrocyte_lab.annotate.editor import AnnotationEditor, Change, Preview, Tool, tools_for
from astrocyte_lab.annotate.geometry import Shape
from astrocyte_lab.annotate.view import Viewport, compose, display_pixels

__all__ = ["AnnotationEditor", "CanvasController", "Change", "Preview", "Shape", "Tool", "Viewport", "compose",
           "display_pixels", "tools_for"]
