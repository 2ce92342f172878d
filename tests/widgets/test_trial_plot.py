"""Trial plot: a point per completed trial, the best-so-far line, status lines, stored trials."""

from __future__ import annotations

import math
from types import SimpleNamespace

import bqplot as bq

from astrocyte_lab.widgets.trial_plot import TrialPlot


def trial(number: int, value: float, message: str = "complete", finished: int = 0, total: int = 5):
    return SimpleNamespace(kind="trial", step=0, epoch=0, message=message,
                           values={"trial": number, "value": value, "best": 0.0, "finished": finished, "total": total})


class FakeJob:
    def __init__(self, past=()):
        self.past = list(past)

    def subscribe(self, callback):
        for event in self.past:
            callback(event)


def test_points_and_best_so_far_follow_trial_events_in_any_order() -> None:
    plot = TrialPlot(metric="val_accuracy")
    assert isinstance(plot.figure, bq.Figure) and plot.widget.children[1] is plot.status
    events = [trial(0, 0.6, finished=1), trial(2, 0.9, finished=2), trial(1, math.nan, "pruned", finished=3),
              trial(3, 0.7, finished=4), SimpleNamespace(kind="batch", values={"loss": 1.0}, message="")]
    plot.attach(FakeJob(events))
    points, line = plot.curves()
    assert points == [(0, 0.6), (2, 0.9), (3, 0.7)]  # the pruned trial is counted, not drawn
    assert line == [(0, 0.6), (2, 0.9), (3, 0.9)]
    assert plot.points.x.tolist() == [0, 2, 3] and plot.best.y.tolist() == [0.6, 0.9, 0.9]
    assert plot.status.value == "trial 3: complete - 4 of 5 finished"
    plot.on_event(SimpleNamespace(kind="done", values={}, message="finished"))
    assert plot.status.value == "4 trials (3 complete, 1 pruned); best 0.9 - finished"
    plot.attach(FakeJob([]))  # a new job starts from an empty plot
    assert plot.curves() == ([], []) and plot.points.x.tolist() == []


def test_stored_trials_of_a_model_record() -> None:
    rows = [{"number": 0, "state": "complete", "value": 0.5}, {"number": 1, "state": "fail", "value": None},
            {"number": 2, "state": "pruned", "value": 0.1}, {"number": 3, "state": "complete", "value": 0.75}]
    plot = TrialPlot().show_trials(rows)
    assert plot.curves() == ([(0, 0.5), (3, 0.75)], [(0, 0.5), (3, 0.75)])
    assert plot.status.value == "4 trials (2 complete, 1 fail, 1 pruned); best 0.75"
