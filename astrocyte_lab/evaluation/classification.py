"""Test a trained classifier on a dataset: predictions written back, confusion matrix and per-class metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation import metrics as m
from astrocyte_lab.modules.classification import postprocess
from astrocyte_lab.modules.classification.trainer import load_network
from astrocyte_lab.training.data import ImageDataset
from astrocyte_lab.training.devices import advise_on_out_of_memory, resolve_device

Subset = Literal["train", "validation", "all"]


@dataclass
class ClassificationReport:
    """Everything the test-results view shows."""

    model: str
    dataset: str
    rows: list[str]  # ground-truth categories tested
    columns: list[str]  # predicted categories (the model's, plus "Undefined" for continual models)
    confusion: np.ndarray
    accuracy: float
    macro_f1: float
    classes: dict[str, m.ClassMetrics]
    predictions: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "rows": self.rows, "columns": self.columns, "confusion": self.confusion.tolist(),
                "classes": {k: vars(v) for k, v in self.classes.items()}}

    def summary(self) -> dict[str, float]:
        """The headline figures (what ``astrocyte-lab test`` prints as JSON)."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1}

    def lines(self) -> list[str]:
        """The confusion matrix and per-class precision / recall / F1, as text."""
        return [self.confusion_frame().to_string()] + [
            f"{name:20} precision {c.precision:.3f} recall {c.recall:.3f} f1 {c.f1:.3f} ({c.support} images)"
            for name, c in self.classes.items()]

    def confusion_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.confusion, index=pd.Index(self.rows, name="ground truth"),
                            columns=pd.Index(self.columns, name="predicted"))


def evaluate_classifier(workspace: Workspace, model_name: str, dataset_name: str,
                    subset: Subset | list[int] = "validation", batch_size: int = 32, device: str = "auto",
                    write_back: bool = True) -> ClassificationReport:
    """Predict ``subset`` of the dataset with the model; optionally store predictions in the dataset."""
    net, record, spec = load_network(workspace, model_name)
    dataset = workspace.dataset(dataset_name)
    categories = list(record["categories"])
    common = set(categories) & set(dataset.categories)
    if not common:
        raise AstrocyteError(f"model {model_name!r} knows {categories} and dataset {dataset_name!r} has "
                             f"{dataset.categories}: no category in common, so the test would mean nothing")
    table = dataset.table
    if isinstance(subset, list):
        rows = table.loc[subset]
    elif subset == "all":
        rows = table
    else:
        rows = table[table["assigned"] == subset]
    if rows.empty:
        raise AstrocyteError(f"no image to test in dataset {dataset_name!r} ({subset})")
    torch_device = resolve_device(device)
    net.to(torch_device)
    loader = DataLoader(ImageDataset(dataset, rows.index.tolist(), [0] * len(rows), spec), batch_size=batch_size)
    with advise_on_out_of_memory(f"testing model {model_name!r}", batch_size=batch_size, region_size=spec.size,
                                 device=str(torch_device)):
        logits, embeddings = _outputs(net, loader, torch_device)
    prototypes = workspace.model_store.tensors(model_name).get("continual.prototypes")
    labels, scores = _labels(record, logits, embeddings, prototypes)
    truth = rows["ground_truth"].tolist()
    tested = [i for i, t in enumerate(truth) if t]
    truth_l, pred_l = [truth[i] for i in tested], [labels[i] for i in tested]
    columns = categories + ([postprocess.UNDEFINED] if record.get("continual") else [])
    row_names = [c for c in dataset.categories if c in set(truth_l)]
    classes = m.per_class(truth_l, pred_l, sorted(set(row_names) | set(categories), key=_order(columns, row_names)))
    predictions = pd.DataFrame({"name": rows["name"].tolist(), "ground_truth": truth, "prediction": labels,
                                "score": scores}, index=rows.index)
    if write_back:
        _write_back(dataset, predictions)
    return ClassificationReport(model_name, dataset_name, row_names, columns,
                                m.confusion_matrix(truth_l, pred_l, row_names, columns), m.accuracy(truth_l, pred_l),
                                m.macro_f1(classes), classes, predictions)


@torch.no_grad()
def _outputs(net, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    logits, embeddings = [], []
    for images, _ in loader:
        embedding = net.embed(images.to(device))
        embeddings.append(embedding.float().cpu().numpy())
        logits.append(net.head(embedding).float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(embeddings)


def _labels(record: dict, logits: np.ndarray, embeddings: np.ndarray,
            prototypes: np.ndarray | None) -> tuple[list[str], list[float]]:
    """Predicted label and score per image: softmax for regular models, prototypes for continual ones."""
    categories = record["categories"]
    continual = record.get("continual")
    if not continual or prototypes is None:
        probs = postprocess.softmax(logits)
        return [categories[i] for i in probs.argmax(1)], probs.max(1).tolist()
    sims = postprocess.similarities(embeddings, prototypes)
    best = sims.argmax(1)
    probs = postprocess.softmax(sims * float(continual.get("temperature", postprocess.DEFAULT_TEMPERATURE)))
    labels = [categories[k] if sims[i, k] >= continual["threshold"] else postprocess.UNDEFINED
              for i, k in enumerate(best)]
    return labels, probs.max(1).tolist()


def _order(columns: list[str], rows: list[str]):
    ranking = {name: i for i, name in enumerate(columns + rows)}
    return lambda name: ranking.get(name, len(ranking))


def _write_back(dataset, predictions: pd.DataFrame) -> None:
    dataset.set_predictions(predictions.index.tolist(), predictions["prediction"].tolist(),
                            predictions["score"].tolist())
    dataset.save()
