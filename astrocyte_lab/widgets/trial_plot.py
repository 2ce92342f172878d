"""The auto-train trial plot: one point per finished trial (its validation metric) and the best so far.

It draws the ``trial`` events of an auto-train job (:func:`astrocyte_lab.training.auto.auto_train`) or the
trials stored in an auto-trained model's record; it computes nothing but the running maximum it shows.
Events may arrive from the job's background threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

import bqplot as bq
import ipywidgets as widgets
import numpy as np

__all__ = ["TrialPlot"]


class TrialPlot:
    """Scatter of completed trials' values by trial number, the best-so-far line, and a status line."""

    def __init__(self, title: str = "Trials", metric: str = "validation metric") -> None:
        self._lock = threading.RLock()
        self._trials: dict[int, tuple[float, str]] = {}  # number -> (value or nan, state)
        self.x_scale = bq.LinearScale()
        self.y_scale = bq.LinearScale()
        self.points = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                                 colors=["#1f77b4"], default_size=48, labels=["trial"], display_legend=True)
        self.best = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                             colors=["#d62728"], labels=["best so far"], display_legend=True,
                             interpolation="step-after", stroke_width=2)
        axes = [bq.Axis(scale=self.x_scale, label="trial", side="bottom", grid_lines="dashed", tick_format="d"),
                bq.Axis(scale=self.y_scale, label=metric, side="left", grid_lines="dashed")]
        self.figure = bq.Figure(marks=[self.points, self.best], axes=axes, title=title, legend_location="bottom-right",
                                animation_duration=0, fig_margin={"top": 40, "bottom": 45, "left": 55, "right": 20},
                                layout=widgets.Layout(width="100%", height="300px"))
        self.status = widgets.Label(value="")
        self.widget = widgets.VBox([self.figure, self.status])

    def add_trial(self, number: int, value: float | None, state: str = "complete") -> None:
        """Record one finished trial (a value that is None or not finite is counted but not drawn)."""
        value = float("nan") if value is None else float(value)
        with self._lock:
            self._trials[int(number)] = (value, state)
            self._redraw()

    def show_trials(self, rows: Iterable[dict]) -> TrialPlot:
        """Draw stored trials (``record["auto"]["trials"]`` of an auto-trained model)."""
        with self._lock:
            self._trials.clear()
            for row in rows:
                value = row.get("value") if row.get("state") == "complete" else None
                self._trials[int(row["number"])] = (float("nan") if value is None else float(value), row["state"])
            self._redraw()
        self.status.value = self._summary()
        return self

    def curves(self) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The drawn points and the best-so-far line, as (trial, value) pairs."""
        with self._lock:
            done = sorted((n, v) for n, (v, _) in self._trials.items() if math.isfinite(v))
        best, line = -math.inf, []
        for number, value in done:
            best = max(best, value)
            line.append((number, best))
        return done, line

    def _redraw(self) -> None:
        points, line = self.curves()
        with self.points.hold_sync():
            self.points.x = np.asarray([n for n, _ in points], dtype=np.float64)
            self.points.y = np.asarray([v for _, v in points], dtype=np.float64)
        with self.best.hold_sync():
            self.best.x = np.asarray([n for n, _ in line], dtype=np.float64)
            self.best.y = np.asarray([v for _, v in line], dtype=np.float64)

    def _summary(self) -> str:
        states = [s.split(":")[0] for _, s in self._trials.values()]
        counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
        _, line = self.curves()
        best = f"; best {line[-1][1]:.4g}" if line else ""
        return f"{len(states)} trials ({counts}){best}"

    # job events ------------------------------------------------------------------------------------

    def attach(self, job: Any, clear: bool = True) -> TrialPlot:
        """Follow an auto-train job: a point per ``trial`` event, its status lines under the plot."""
        if clear:
            with self._lock:
                self._trials.clear()
                self._redraw()
            self.status.value = ""
        job.subscribe(self.on_event)
        return self

    def on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        values = getattr(event, "values", None) or {}
        message = getattr(event, "message", "") or ""
        if kind == "trial" and "trial" in values:
            self.add_trial(int(values["trial"]), values.get("value"), message or "complete")
            finished, total = values.get("finished"), values.get("total")
            progress = f" - {finished:.0f} of {total:.0f} finished" if finished and total else ""
            self.status.value = f"trial {values['trial']:.0f}: {message or 'complete'}{progress}"
        elif kind in ("done", "cancelled", "error"):
            self.status.value = f"{self._summary()} - {'failed: ' if kind == 'error' else ''}{message or kind}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
