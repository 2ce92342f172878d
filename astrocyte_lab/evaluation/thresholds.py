"""Move an anomaly model's operating point after a test: the user picks another point of the ROC curve.

The tested images are decided again at the new threshold (no model run), the decisions replace the dataset's
predictions, and the threshold is stored with the model so the next export carries it.
"""

from __future__ import annotations

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.evaluation.anomaly import AnomalyReport


def apply_threshold(workspace: Workspace, report: AnomalyReport, threshold: float) -> AnomalyReport:
    """The report decided at ``threshold``, written back to its dataset and stored with its model."""
    moved = report.with_threshold(float(threshold))
    dataset = workspace.dataset(report.dataset)
    rows = moved.predictions
    dataset.set_predictions(rows.index.tolist(), rows["prediction"].tolist(), rows["score"].tolist())
    dataset.save()
    section = dict(workspace.model_store.record(report.model).get("anomaly") or {})
    section["threshold"] = float(threshold)
    workspace.model_store.update_record(report.model, anomaly=section)
    return moved
