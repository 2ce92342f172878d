"""Test an anomaly detector: per-image scores, ROC curve, AUROC / AUPR, threshold, heatmaps, pixel AUROC.

Every selected image is scored by the PyTorch model through the runtime's own post-processing
(:class:`~astrocyte_lab.runtime.anomaly.AnomalyScorer`), so scores and heatmaps are those the package gives.
The threshold is the ROC point closest to the top-left corner unless one is given; the report can be moved
to any other point (:meth:`AnomalyReport.with_threshold`, :meth:`AnomalyReport.at_point`). Predictions
(Normal / Anomaly with the score) are written back to the dataset, and the threshold is stored with the
model so an export carries it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from astrocyte_lab.data.categories import ANOMALY_CATEGORIES
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.anomaly import postprocess
from astrocyte_lab.modules.anomaly.postprocess import RocCurve
from astrocyte_lab.modules.anomaly.trainer import load_network, torch_scorer
from astrocyte_lab.training.devices import advise_on_out_of_memory, resolve_device

Subset = Literal["train", "validation", "all"]
NORMAL, ANOMALY = ANOMALY_CATEGORIES
PIXEL_BUDGET = 4 << 20  # pixels entering the pixel AUROC at most: heatmaps are strided evenly beyond it


@dataclass
class AnomalyReport:
    """The test-results view: scores per image, the ROC curve and the decision at ``threshold``."""

    model: str
    dataset: str
    threshold: float
    heatmap_ratio: float
    auroc: float | None  # None when the tested images lack one of the two classes
    aupr: float | None
    pixel_auroc: float | None  # None when no tested anomaly has a mask
    curve: RocCurve | None
    predictions: pd.DataFrame = field(repr=False)  # name, ground_truth, prediction, score (index: image id)
    heatmaps: dict[int, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def confusion(self) -> pd.DataFrame:
        """Counts of ground truth (rows) against prediction (columns) at the current threshold."""
        frame = self.predictions[self.predictions["ground_truth"].isin(ANOMALY_CATEGORIES)]
        table = pd.crosstab(frame["ground_truth"], frame["prediction"])
        return table.reindex(index=list(ANOMALY_CATEGORIES), columns=list(ANOMALY_CATEGORIES), fill_value=0)

    @property
    def accuracy(self) -> float:
        frame = self.predictions[self.predictions["ground_truth"].isin(ANOMALY_CATEGORIES)]
        return float((frame["ground_truth"] == frame["prediction"]).mean()) if len(frame) else float("nan")

    def rates(self) -> tuple[float, float]:
        """``(TPR, FPR)`` at the current threshold."""
        c = self.confusion
        tpr = c.loc[ANOMALY, ANOMALY] / max(1, c.loc[ANOMALY].sum())
        fpr = c.loc[NORMAL, ANOMALY] / max(1, c.loc[NORMAL].sum())
        return float(tpr), float(fpr)

    def with_threshold(self, threshold: float) -> AnomalyReport:
        """The same scores decided at another threshold (the dataset and model are not touched)."""
        labels = np.where(self.predictions["score"].to_numpy() >= threshold, ANOMALY, NORMAL)
        return dataclasses.replace(self, threshold=float(threshold),
                                   predictions=self.predictions.assign(prediction=labels))

    def at_point(self, index: int) -> AnomalyReport:
        """Move to the ``index``-th point of the ROC curve (what clicking the curve does)."""
        if self.curve is None:
            raise AstrocyteError("this test has no ROC curve (it needs Normal and Anomaly images)")
        return self.with_threshold(float(self.curve.thresholds[index]))

    def to_dict(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, **self.summary(),
                "confusion": self.confusion.to_numpy().tolist(),
                "roc": None if self.curve is None else self.curve.to_dict()}

    def summary(self) -> dict[str, float | None]:
        """The headline figures (what ``astrocyte-lab test`` prints as JSON)."""
        tpr, fpr = self.rates()
        return {"auroc": self.auroc, "aupr": self.aupr, "pixel_auroc": self.pixel_auroc,
                "threshold": self.threshold, "heatmap_ratio": self.heatmap_ratio, "accuracy": self.accuracy,
                "tpr": tpr, "fpr": fpr}

    def lines(self) -> list[str]:
        """Confusion matrix at the threshold and the ROC figures, as text."""
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        tpr, fpr = self.rates()
        return [self.confusion.rename_axis(index="ground truth", columns="predicted").to_string(),
                f"AUROC {fmt(self.auroc)}  AUPR {fmt(self.aupr)}  pixel AUROC {fmt(self.pixel_auroc)}",
                f"threshold {self.threshold:.6g} (TPR {tpr:.3f}, FPR {fpr:.3f}), heatmap ratio {self.heatmap_ratio}"]


def evaluate_anomaly(workspace: Workspace, model_name: str, dataset_name: str,
                     subset: Subset | list[int] = "validation", *, batch_size: int = 8,
                     threshold: float | None = None, heatmap_ratio: float | None = None, write_back: bool = True,
                     keep_heatmaps: bool = False, store_threshold: bool = True,
                     device: str = "auto") -> AnomalyReport:
    """Score ``subset`` of an anomaly dataset with a model; see the module docstring.

    ``threshold`` None picks the ROC point closest to the top-left corner (the model's stored threshold
    when the images lack a class). ``store_threshold`` saves the threshold used with the model.
    ``keep_heatmaps`` keeps each image's heatmap (image resolution) in the report.
    """
    net, record, spec = load_network(workspace, model_name)
    dataset = workspace.dataset(dataset_name)
    if dataset.module != "anomaly":
        raise AstrocyteError(f"dataset {dataset_name!r} is a {dataset.module} dataset, not anomaly")
    table = dataset.table
    rows = table.loc[subset] if isinstance(subset, list) else table if subset == "all" else \
        table[table["assigned"] == subset]
    if rows.empty:
        raise AstrocyteError(f"no image to test in dataset {dataset_name!r} ({subset})")
    torch_device = resolve_device(device)
    section = dict(record["anomaly"])
    ratio = float(heatmap_ratio if heatmap_ratio is not None else section.get("heatmap_ratio", 0.9))
    scorer = torch_scorer(net.to(torch_device), spec, section, torch_device)
    scores: list[float] = []
    heatmaps: dict[int, np.ndarray] = {}
    pixel_truth, pixel_values = [], []
    ids = [int(i) for i in rows.index]
    g = dataset.geometry
    step = max(1, int(np.ceil(np.sqrt(len(ids) * g.width * g.height / PIXEL_BUDGET))))
    for first in range(0, len(ids), batch_size):
        chunk = ids[first:first + batch_size]
        with advise_on_out_of_memory(f"testing model {model_name!r}", batch_size=batch_size, region_size=spec.size,
                                     tile_size=(section.get("tiling") or {}).get("tile"), device=str(torch_device)):
            results = scorer.predict([dataset.image(i) for i in chunk], batch_size)
        for image_id, result in zip(chunk, results, strict=True):
            scores.append(result.score)
            if result.heatmap is None:
                continue
            if keep_heatmaps:
                heatmaps[image_id] = result.heatmap
            truth = rows.loc[image_id, "ground_truth"]
            mask = dataset.mask(image_id) if truth == ANOMALY else None
            if truth == NORMAL or mask is not None:
                mask = np.zeros(result.heatmap.shape, bool) if mask is None else mask
                pixel_truth.append(mask[::step, ::step])
                pixel_values.append(result.heatmap[::step, ::step])
    truth = rows["ground_truth"].tolist()
    labelled = np.array([t in ANOMALY_CATEGORIES for t in truth])
    is_anomaly = np.array([t == ANOMALY for t in truth])
    values = np.asarray(scores, np.float64)
    curve = auroc = aupr = None
    if is_anomaly[labelled].any() and (~is_anomaly[labelled]).any():
        curve = postprocess.roc(is_anomaly[labelled], values[labelled])
        auroc = postprocess.auroc(is_anomaly[labelled], values[labelled])
        aupr = postprocess.aupr(is_anomaly[labelled], values[labelled])
    if threshold is None:
        threshold = float(curve.thresholds[curve.closest_to_corner()]) if curve is not None else \
            float(section["threshold"])
    predictions = pd.DataFrame({"name": rows["name"].tolist(), "ground_truth": truth,
                                "prediction": np.where(values >= threshold, ANOMALY, NORMAL), "score": values},
                               index=rows.index)
    pixel = postprocess.pixel_auroc(pixel_truth, pixel_values) if any(m.any() for m in pixel_truth) else None
    if write_back:
        dataset.set_predictions(predictions.index.tolist(), predictions["prediction"].tolist(),
                                predictions["score"].tolist())
        dataset.save()
    if store_threshold:
        section.update(threshold=float(threshold), heatmap_ratio=ratio)
        workspace.model_store.update_record(model_name, anomaly=section)
    return AnomalyReport(model_name, dataset_name, float(threshold), ratio, auroc, aupr, pixel, curve,
                         predictions, heatmaps)
