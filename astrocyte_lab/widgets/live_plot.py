"""A live line plot of losses and metrics for any job that publishes events (training, auto-train).

The plot only draws what it receives: each event value becomes a point of the series of the same name,
at x = the job's step. Points are buffered in Python lists and pushed to the browser at most every
``min_interval`` seconds (and at once at the end of an epoch or of the job), so a fast training loop
does not flood the notebook with messages. Events may arrive from the job's background thread.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

import bqplot as bq
import ipywidgets as widgets
import numpy as np

__all__ = ["PALETTE", "LivePlot"]

PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

_END_TEXT = {"done": "Done", "cancelled": "Cancelled", "error": "Failed"}


class LivePlot:
    """Line plot with one series per metric, a legend and a status line under it.

    ``metrics`` names the event values to draw when attached to a job (None: all of them);
    :meth:`add` draws any series. Display ``plot.widget`` (or ``plot`` itself) in a notebook.
    """

    def __init__(self, title: str = "", metrics: Iterable[str] | None = ("loss", "val_loss"),
                 min_interval: float = 0.2, x_label: str = "step", y_label: str = "") -> None:
        self.metrics: tuple[str, ...] | None = None if metrics is None else tuple(metrics)
        self.min_interval = float(min_interval)
        self._lock = threading.RLock()
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        self._lines: dict[str, bq.Lines] = {}
        self._dirty: set[str] = set()
        self._last_push = -math.inf
        self.x_scale = bq.LinearScale()
        self.y_scale = bq.LinearScale()
        axes = [bq.Axis(scale=self.x_scale, label=x_label, side="bottom", grid_lines="dashed"),
                bq.Axis(scale=self.y_scale, label=y_label, side="left", grid_lines="dashed")]
        self.figure = bq.Figure(marks=[], axes=axes, title=title, legend_location="top-right",
                                animation_duration=0, fig_margin={"top": 40, "bottom": 45, "left": 55, "right": 20},
                                layout=widgets.Layout(width="100%", height="320px"))
        self.status = widgets.Label(value="")
        self.widget = widgets.VBox([self.figure, self.status])

    # drawing ---------------------------------------------------------------------------------------

    def add(self, series: str, x: float, y: float, flush: bool | None = None, marker: str | None = None) -> None:
        """Append point ``(x, y)`` to ``series`` (created on first use; ``marker`` applies then).

        Non-finite values are not drawable and are skipped. ``flush`` True pushes now, False only
        buffers, None pushes when ``min_interval`` has passed since the last push.
        """
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            return
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        with self._lock:
            if series not in self._lines:
                self._new_line(series, marker)
            xs, ys = self._points[series]
            if xs and x < xs[-1]:  # late arrival (e.g. replayed while new events come in): keep x sorted
                at = bisect.bisect_right(xs, x)
                xs.insert(at, x)
                ys.insert(at, y)
            else:
                xs.append(x)
                ys.append(y)
            self._dirty.add(series)
            if flush or flush is None and time.monotonic() - self._last_push >= self.min_interval:
                self.flush()

    def flush(self) -> None:
        """Push buffered points to the browser now."""
        with self._lock:
            for series in sorted(self._dirty):
                xs, ys = self._points[series]
                line = self._lines[series]
                with line.hold_sync():
                    line.x = np.asarray(xs, dtype=np.float64)
                    line.y = np.asarray(ys, dtype=np.float64)
            self._dirty.clear()
            self._last_push = time.monotonic()

    def set_status(self, text: str) -> None:
        self.status.value = str(text)

    def clear(self) -> None:
        """Remove every series and the status (e.g. before following a new job)."""
        with self._lock:
            self._points.clear()
            self._lines.clear()
            self._dirty.clear()
            self.figure.marks = []
            self._last_push = -math.inf
        self.set_status("")

    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        """Copy of every series' points received so far, drawn or still buffered."""
        with self._lock:
            return {name: (list(xs), list(ys)) for name, (xs, ys) in self._points.items()}

    def _new_line(self, series: str, marker: str | None) -> None:
        colour = PALETTE[len(self._lines) % len(PALETTE)]
        line = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                        colors=[colour], labels=[series], display_legend=True, marker=marker, stroke_width=2)
        self._lines[series] = line
        self._points[series] = ([], [])
        self.figure.marks = [*self.figure.marks, line]

    # job events ------------------------------------------------------------------------------------

    def attach(self, job: Any, clear: bool = True) -> LivePlot:
        """Follow ``job``: draw its batch and epoch values and show its status messages."""
        if clear:
            self.clear()
        job.subscribe(self.on_event)
        return self

    def on_event(self, event: Any) -> None:
        """Draw one job event (anything with ``kind``, ``step``, ``values`` and ``message``)."""
        kind = getattr(event, "kind", "")
        if kind in ("batch", "epoch"):
            epoch = kind == "epoch"
            for name, value in (getattr(event, "values", None) or {}).items():
                if self.metrics is None or name in self.metrics:
                    self.add(name, event.step, value, flush=False if epoch else None,
                             marker="circle" if epoch else None)
            if epoch:
                self.flush()
        elif kind == "status":
            self.set_status(getattr(event, "message", ""))
        elif kind in _END_TEXT:
            self.flush()
            message = getattr(event, "message", "") or ""
            if kind == "error":
                self.set_status(f"Error: {message}" if message else _END_TEXT[kind])
            else:
                self.set_status(message or _END_TEXT[kind])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
