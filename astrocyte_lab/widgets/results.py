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
    """An ROC curve; a click on the plot picks the nearest curve point as the operating threshold.

    Drawn on an ipycanvas canvas, whose mouse events reach Python directly (a few milliseconds), so picking a
    point needs no plotting-library hit test. ``on_threshold(value)`` is called with the picked threshold.
    """

    WIDTH, HEIGHT = 420, 380
    LEFT, RIGHT, TOP, BOTTOM = 58, 16, 34, 48

    def __init__(self, fpr: Sequence[float], tpr: Sequence[float], thresholds: Sequence[float],
                 threshold: float | None = None, on_threshold: Callable[[float], None] | None = None,
                 title: str = "ROC curve") -> None:
        from ipycanvas import Canvas

        self.fpr, self.tpr = np.asarray(fpr, float), np.asarray(tpr, float)
        self.thresholds = np.asarray(thresholds, float)
        self.title = title
        self.chosen_index: int | None = None
        self._handlers: list[Callable[[float], None]] = [on_threshold] if on_threshold else []
        self.canvas = Canvas(width=self.WIDTH, height=self.HEIGHT,
                             layout=widgets.Layout(width=f"{self.WIDTH}px", height=f"{self.HEIGHT}px"))
        self.canvas.add_class("astro-roc")
        self.canvas.on_mouse_down(self._clicked)
        self.canvas.on_client_ready(self.draw)
        self.label = widgets.HTML("")
        self.widget = widgets.VBox([self.canvas, self.label])
        if threshold is not None:
            self.show_threshold(threshold)
        else:
            self.draw()

    # -- geometry -------------------------------------------------------------------------------------------
    def to_pixels(self, fpr: float, tpr: float) -> tuple[float, float]:
        width = self.WIDTH - self.LEFT - self.RIGHT
        height = self.HEIGHT - self.TOP - self.BOTTOM
        return self.LEFT + fpr * width, self.TOP + (1.0 - tpr) * height

    def to_rates(self, x: float, y: float) -> tuple[float, float]:
        width = self.WIDTH - self.LEFT - self.RIGHT
        height = self.HEIGHT - self.TOP - self.BOTTOM
        return (x - self.LEFT) / width, 1.0 - (y - self.TOP) / height

    def nearest(self, fpr: float, tpr: float) -> int:
        """Index of the curve point closest to ``(fpr, tpr)``."""
        return int(np.argmin((self.fpr - fpr) ** 2 + (self.tpr - tpr) ** 2))

    # -- actions --------------------------------------------------------------------------------------------
    def on_threshold(self, handler: Callable[[float], None]) -> None:
        self._handlers.append(handler)

    def show_threshold(self, threshold: float) -> None:
        """Mark the curve point of ``threshold`` (the nearest listed threshold)."""
        if self.thresholds.size == 0:
            return
        finite = np.where(np.isfinite(self.thresholds), self.thresholds, np.nan)
        index = int(np.nanargmin(np.abs(finite - threshold))) if np.isfinite(finite).any() else 0
        self.chosen_index = index
        self.label.value = (f"threshold <b>{threshold:.4g}</b>: true positive rate {self.tpr[index]:.3f}, "
                            f"false positive rate {self.fpr[index]:.3f}")
        self.draw()

    def pick(self, index: int) -> float:
        """Choose curve point ``index`` as if clicked; returns its threshold."""
        value = float(self.thresholds[index])
        self.show_threshold(value)
        for handler in self._handlers:
            handler(value)
        return value

    def _clicked(self, x: float, y: float) -> None:
        fpr, tpr = self.to_rates(x, y)
        if -0.1 <= fpr <= 1.1 and -0.1 <= tpr <= 1.1 and self.fpr.size:
            self.pick(self.nearest(fpr, tpr))

    # -- drawing --------------------------------------------------------------------------------------------
    def draw(self) -> None:
        from ipycanvas import hold_canvas

        c = self.canvas
        with hold_canvas():
            c.clear()
            c.fill_style = "white"
            c.fill_rect(0, 0, self.WIDTH, self.HEIGHT)
            c.fill_style, c.font, c.text_align = "#222", "14px sans-serif", "center"
            c.fill_text(self.title, self.WIDTH / 2, 20)
            x0, y0 = self.to_pixels(0, 0)
            x1, y1 = self.to_pixels(1, 1)
            c.stroke_style, c.line_width = "#bbb", 1
            c.set_line_dash([4, 4])
            c.stroke_line(x0, y0, x1, y1)  # chance
            c.set_line_dash([])
            c.stroke_style = "#555"
            c.stroke_rect(x0, y1, x1 - x0, y0 - y1)
            c.font = "11px sans-serif"
            for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
                tx, _ = self.to_pixels(tick, 0)
                _, ty = self.to_pixels(0, tick)
                c.text_align = "center"
                c.fill_text(f"{tick:g}", tx, y0 + 15)
                c.text_align = "right"
                c.fill_text(f"{tick:g}", x0 - 6, ty + 4)
            c.text_align = "center"
            c.fill_text("false positive rate", (x0 + x1) / 2, self.HEIGHT - 8)
            c.save()
            c.translate(14, (y0 + y1) / 2)
            c.rotate(-np.pi / 2)
            c.fill_text("true positive rate", 0, 0)
            c.restore()
            if self.fpr.size:
                points = [self.to_pixels(f, t) for f, t in zip(self.fpr, self.tpr, strict=True)]
                c.stroke_style, c.line_width = "#1f77b4", 2
                c.stroke_lines(points)
                c.fill_style = "#1f77b4"
                for px, py in points:
                    c.fill_circle(px, py, 3)
                if self.chosen_index is not None:
                    px, py = points[self.chosen_index]
                    c.fill_style = "#d62728"
                    c.fill_circle(px, py, 7)


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
