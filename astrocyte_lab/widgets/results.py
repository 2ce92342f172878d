"""Test-result views: a clickable confusion matrix, a clickable ROC curve and metric tables.

Each view draws what it is given and reports clicks through callbacks; the Dataset panel turns a click into
an image-list filter (confusion cell) or a new threshold (ROC point).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

import bqplot as bq
import ipywidgets as widgets
import numpy as np


class ConfusionMatrixView:
    """Rows: ground truth, columns: prediction; cells coloured by the row's rate; ``on_cell(truth, predicted)``."""

    def __init__(self, rows: Sequence[str], columns: Sequence[str], counts: np.ndarray,
                 on_cell: Callable[[str, str], None] | None = None) -> None:
        self.rows, self.columns = list(rows), list(columns)
        self.counts = np.asarray(counts, dtype=np.int64)
        totals = self.counts.sum(axis=1, keepdims=True)
        rates = np.divide(self.counts, totals, out=np.zeros(self.counts.shape, float), where=totals > 0)
        self.rates = rates
        self._handlers: list[Callable[[str, str], None]] = [on_cell] if on_cell else []
        x_scale, y_scale = bq.OrdinalScale(), bq.OrdinalScale(reverse=True)
        colour = bq.ColorScale(scheme="Blues", min=0.0, max=1.0)
        self.grid = bq.GridHeatMap(row=self.rows, column=self.columns, color=rates,
                                   scales={"row": y_scale, "column": x_scale, "color": colour},
                                   interactions={"click": "select"}, selected_style={"stroke": "red"},
                                   display_format=".2f", font_style={"font-size": "13px"})
        self.grid.on_element_click(self._clicked)
        axes = [bq.Axis(scale=x_scale, label="prediction", side="bottom"),
                bq.Axis(scale=y_scale, label="ground truth", side="left", orientation="vertical")]
        size = 60 + 60 * max(len(self.rows), len(self.columns))
        self.figure = bq.Figure(marks=[self.grid], axes=axes, padding_y=0.0, title="Confusion matrix (row rate)",
                                fig_margin={"top": 40, "bottom": 60, "left": 110, "right": 20},
                                layout=widgets.Layout(width=f"{size + 130}px", height=f"{size + 60}px"))
        table = "".join(f"<tr><th>{html.escape(r)}</th>" + "".join(f"<td>{int(c)}</td>" for c in row) + "</tr>"
                        for r, row in zip(self.rows, self.counts, strict=True))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        self.counts_html = widgets.HTML(f"<table class='astro-table'><tr><th>truth \\ prediction</th>{head}</tr>"
                                        f"{table}</table>")
        self.widget = widgets.VBox([self.figure, self.counts_html])

    def on_cell(self, handler: Callable[[str, str], None]) -> None:
        self._handlers.append(handler)

    def click(self, truth: str, predicted: str) -> None:
        """Act as if the cell was clicked (tests, keyboard)."""
        for handler in self._handlers:
            handler(truth, predicted)

    def _clicked(self, _mark: object, event: Mapping) -> None:
        data = event.get("data", {})
        row, column = data.get("row"), data.get("column")
        if row is None or column is None:
            return
        self.click(self.rows[int(row)] if isinstance(row, int) else str(row),
                   self.columns[int(column)] if isinstance(column, int) else str(column))


class RocView:
    """An ROC curve whose points can be clicked to pick the operating threshold; ``on_threshold(value)``."""

    def __init__(self, fpr: Sequence[float], tpr: Sequence[float], thresholds: Sequence[float],
                 threshold: float | None = None, on_threshold: Callable[[float], None] | None = None,
                 title: str = "ROC curve") -> None:
        self.fpr, self.tpr = np.asarray(fpr, float), np.asarray(tpr, float)
        self.thresholds = np.asarray(thresholds, float)
        self._handlers: list[Callable[[float], None]] = [on_threshold] if on_threshold else []
        x_scale, y_scale = bq.LinearScale(min=0.0, max=1.0), bq.LinearScale(min=0.0, max=1.0)
        curve = bq.Lines(x=self.fpr, y=self.tpr, scales={"x": x_scale, "y": y_scale}, colors=["#1f77b4"])
        self.points = bq.Scatter(x=self.fpr, y=self.tpr, scales={"x": x_scale, "y": y_scale}, default_size=40,
                                 colors=["#1f77b4"], interactions={"click": "select"},
                                 selected_style={"fill": "red", "stroke": "red"})
        self.points.on_element_click(self._clicked)
        self.chosen = bq.Scatter(x=[0.0], y=[0.0], scales={"x": x_scale, "y": y_scale}, default_size=160,
                                 colors=["#d62728"], marker="diamond")
        axes = [bq.Axis(scale=x_scale, label="false positive rate", side="bottom", grid_lines="dashed"),
                bq.Axis(scale=y_scale, label="true positive rate", side="left", grid_lines="dashed")]
        self.figure = bq.Figure(marks=[curve, self.points, self.chosen], axes=axes, title=title, animation_duration=0,
                                fig_margin={"top": 40, "bottom": 50, "left": 60, "right": 20},
                                layout=widgets.Layout(width="420px", height="380px"))
        self.label = widgets.HTML("")
        self.widget = widgets.VBox([self.figure, self.label])
        if threshold is not None:
            self.show_threshold(threshold)

    def on_threshold(self, handler: Callable[[float], None]) -> None:
        self._handlers.append(handler)

    def show_threshold(self, threshold: float) -> None:
        """Mark the curve point of ``threshold`` (the nearest listed threshold)."""
        if self.thresholds.size == 0:
            return
        index = int(np.argmin(np.abs(self.thresholds - threshold)))
        self.chosen.x, self.chosen.y = [float(self.fpr[index])], [float(self.tpr[index])]
        self.label.value = (f"threshold <b>{threshold:.4g}</b>: true positive rate {self.tpr[index]:.3f}, "
                            f"false positive rate {self.fpr[index]:.3f}")

    def pick(self, index: int) -> float:
        """Choose curve point ``index`` as if clicked; returns its threshold."""
        value = float(self.thresholds[index])
        self.show_threshold(value)
        for handler in self._handlers:
            handler(value)
        return value

    def _clicked(self, _mark: object, event: Mapping) -> None:
        index = event.get("data", {}).get("index")
        if index is not None:
            self.pick(int(index))


def metrics_table(rows: Mapping[str, Mapping[str, object]], title: str = "") -> widgets.HTML:
    """An HTML table: one row per key (e.g. category), one column per metric."""
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr><th>{html.escape(str(name))}</th>" + "".join(f"<td>{_fmt(values.get(c))}</td>" for c in columns)
        + "</tr>" for name, values in rows.items())
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return widgets.HTML(f"<table class='astro-table'>{caption}<tr><th></th>{head}</tr>{body}</table>")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-1 (absent)" if value == -1 else f"{value:.3f}"
    return html.escape("" if value is None else str(value))
