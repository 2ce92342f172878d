"""Live loss/metric plot: series creation, throttled pushes, job events to lines and status."""

from __future__ import annotations

import math
from types import SimpleNamespace

import bqplot as bq
import ipywidgets as widgets
import numpy as np
import pytest

from astrocyte_lab.widgets.live_plot import PALETTE, LivePlot


def event(kind: str, step: int = 0, epoch: int = 0, values: dict | None = None, message: str = ""):
    return SimpleNamespace(kind=kind, step=step, epoch=epoch, values=values or {}, message=message)


def drawn(plot: LivePlot, series: str) -> tuple[list[float], list[float]]:
    line = plot._lines[series]
    return line.x.tolist(), line.y.tolist()


class FakeJob:
    def __init__(self, past=()):
        self.callbacks = []
        self.past = list(past)

    def subscribe(self, callback):
        self.callbacks.append(callback)
        for e in self.past:
            callback(e)

    def emit(self, e):
        for callback in self.callbacks:
            callback(e)


def test_widget_structure():
    plot = LivePlot(title="Training", metrics=("loss",))
    assert isinstance(plot.widget, widgets.VBox)
    figure, status = plot.widget.children
    assert isinstance(figure, bq.Figure) and figure.title == "Training" and figure.marks == []
    assert isinstance(status, widgets.Label) and status.value == ""
    assert "application/vnd.jupyter.widget-view+json" in plot._repr_mimebundle_()


def test_add_creates_lines_with_palette_colours_and_legend():
    plot = LivePlot(min_interval=0)
    plot.add("loss", 1, 0.9)
    plot.add("loss", 2, 0.7)
    plot.add("val_loss", 2, 0.8)
    assert [m.labels for m in plot.figure.marks] == [["loss"], ["val_loss"]]
    assert [m.colors for m in plot.figure.marks] == [[PALETTE[0]], [PALETTE[1]]]
    assert all(m.display_legend for m in plot.figure.marks)
    assert drawn(plot, "loss") == ([1.0, 2.0], [0.9, 0.7])
    assert drawn(plot, "val_loss") == ([2.0], [0.8])


def test_non_finite_and_non_numeric_points_are_skipped():
    plot = LivePlot(min_interval=0)
    plot.add("loss", 1, math.nan)
    plot.add("loss", 2, math.inf)
    plot.add("loss", 3, "oops")
    assert plot.series() == {}
    plot.add("loss", 4, np.float32(0.5))
    assert drawn(plot, "loss") == ([4.0], [0.5])


def test_redraws_are_throttled_until_flush():
    plot = LivePlot(min_interval=3600)
    plot.add("loss", 1, 1.0)  # first point is pushed at once
    plot.add("loss", 2, 0.5)
    plot.add("loss", 3, 0.25)
    assert drawn(plot, "loss") == ([1.0], [1.0])
    assert plot.series()["loss"] == ([1.0, 2.0, 3.0], [1.0, 0.5, 0.25])
    plot.flush()
    assert drawn(plot, "loss") == ([1.0, 2.0, 3.0], [1.0, 0.5, 0.25])
    plot.add("loss", 4, 0.2, flush=True)
    assert drawn(plot, "loss")[0][-1] == 4.0


def test_late_points_keep_x_sorted():
    plot = LivePlot(min_interval=0)
    for x in (1, 3, 2, 4):
        plot.add("loss", x, x / 10)
    assert drawn(plot, "loss") == ([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4])


def test_job_events_map_to_series_and_status():
    plot = LivePlot(min_interval=3600)
    job = FakeJob(past=[event("status", message="loading images")])
    assert plot.attach(job) is plot
    assert plot.status.value == "loading images"
    for step in range(1, 5):
        job.emit(event("batch", step=step, epoch=0, values={"loss": 1.0 / step}))
    job.emit(event("epoch", step=4, epoch=0, values={"val_loss": 0.4, "val_accuracy": 0.8}))
    # the epoch event flushes everything buffered, only the chosen metrics are drawn
    assert drawn(plot, "loss") == ([1.0, 2.0, 3.0, 4.0], [1.0, 0.5, 1 / 3, 0.25])
    assert drawn(plot, "val_loss") == ([4.0], [0.4])
    assert "val_accuracy" not in plot.series()
    assert plot._lines["val_loss"].marker == "circle" and plot._lines["loss"].marker is None
    job.emit(event("batch", step=5, values={"loss": 0.2}))
    job.emit(event("done", step=5, message="finished"))
    assert drawn(plot, "loss")[0][-1] == 5.0
    assert plot.status.value == "finished"


@pytest.mark.parametrize(("kind", "message", "text"), [
    ("error", "RuntimeError: CUDA out of memory", "Error: RuntimeError: CUDA out of memory"),
    ("error", "", "Failed"),
    ("cancelled", "", "Cancelled"),
    ("cancelled", "train cancelled", "train cancelled"),
    ("done", "", "Done"),
])
def test_end_events_set_status(kind, message, text):
    plot = LivePlot()
    plot.on_event(event(kind, message=message))
    assert plot.status.value == text


def test_all_metrics_when_none_and_unknown_kinds_ignored():
    plot = LivePlot(metrics=None, min_interval=0)
    plot.on_event(event("epoch", step=10, values={"val_loss": 0.3, "val_accuracy": 0.9}))
    plot.on_event(event("progress", step=11, values={"loss": 1.0}))
    assert set(plot.series()) == {"val_loss", "val_accuracy"}


def test_attach_clears_previous_run_unless_asked():
    plot = LivePlot(min_interval=0)
    plot.add("loss", 1, 1.0)
    plot.set_status("old")
    plot.attach(FakeJob(), clear=False)
    assert "loss" in plot.series() and plot.status.value == "old"
    plot.attach(FakeJob())
    assert plot.series() == {} and plot.figure.marks == [] and plot.status.value == ""


def test_with_a_real_job():
    jobs = pytest.importorskip("astrocyte_lab.training.jobs")

    def work(context):
        for step in range(1, 4):
            context.progress(step, 3)
            context.emit("batch", {"loss": 1.0 / step})
        context.emit("epoch", {"val_loss": 0.5}, epoch=1)
        return "ok"

    job = jobs.Job("fake training", work)
    plot = LivePlot(min_interval=3600).attach(job)  # events sent before attaching are replayed
    assert job.result(timeout=10) == "ok"
    job.wait(10)
    assert plot.series()["loss"][1] == [1.0, 0.5, 1 / 3]
    assert drawn(plot, "val_loss") == ([3.0], [0.5])
    assert plot.status.value == "finished"
