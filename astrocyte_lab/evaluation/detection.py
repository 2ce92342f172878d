"""Test a trained object detector: AP per class, mAP, per-box IoU, predictions written back to the dataset.

The images go through the runtime's own detection head (:class:`astrocyte_lab.runtime.detection.Detector`:
same preprocessing, decoding, tiling and NMS as the deployed package) with the PyTorch network in place of
ONNX, so a test measures what the package will do.

**Metrics** (COCO conventions): a detection matches the unmatched ground-truth object of its class with the
highest IoU when that IoU reaches the threshold, detections taken in decreasing score order; AP is the area
under the precision envelope sampled at 101 recall points. ``mAP`` / ``ap`` use IoU >= 0.5 (``mAP@0.5``);
``mAP_50_95`` averages the thresholds 0.50, 0.55, ..., 0.95. Rotated boxes use the exact polygon IoU. Classes
without ground truth in the tested images are left out of the means. The AP counts only detections at or above
the test's confidence threshold (what the package reports); a lower threshold gives a fuller curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from astrocyte_lab.data.annotations import Annotation, Box, RotatedBox
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.runtime.detection import DetectionPrediction, Detector, box_iou

Subset = Literal["train", "validation", "all"]
COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


# ----------------------------------------------------------------------------------------------- geometry


def _polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    pa, pb = a.astype(np.float32).reshape(-1, 1, 2), b.astype(np.float32).reshape(-1, 1, 2)
    area_a, area_b = abs(cv2.contourArea(pa)), abs(cv2.contourArea(pb))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(pred: list[np.ndarray], truth: list[np.ndarray], rotated: bool) -> np.ndarray:
    """IoU between predicted and true geometries: xyxy boxes, or 4-corner polygons when ``rotated``."""
    if not pred or not truth:
        return np.zeros((len(pred), len(truth)))
    if not rotated:
        return box_iou(np.stack(pred), np.stack(truth))
    return np.array([[_polygon_iou(p, t) for t in truth] for p in pred])


def object_geometry(annotation: Annotation, rotated: bool) -> np.ndarray:
    if rotated:
        return annotation.corners().astype(np.float64)
    return np.asarray(annotation.bounds(), np.float64)


def prediction_geometry(prediction: DetectionPrediction, rotated: bool) -> list[np.ndarray]:
    if not rotated:
        return [np.asarray(b, np.float64) for b in prediction.boxes]
    assert prediction.rotated is not None
    return [RotatedBox("", *map(float, r)).corners() for r in prediction.rotated]


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO AP: the precision envelope sampled at recall 0, 0.01, ..., 1."""
    if recall.size == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(index < recall.size, envelope[np.minimum(index, recall.size - 1)], 0.0)
    return float(sampled.mean())


@dataclass
class ImageResult:
    classes: np.ndarray  # predicted class per detection
    scores: np.ndarray
    ious: np.ndarray  # (detections, ground truth) IoU
    truth: np.ndarray  # ground-truth class per object


def match(result: ImageResult, threshold: float, category: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, true positive flags)`` of one image's detections of ``category`` at an IoU threshold."""
    det = np.flatnonzero(result.classes == category)
    det = det[np.argsort(-result.scores[det], kind="stable")]
    gts = np.flatnonzero(result.truth == category)
    used = np.zeros(gts.size, bool)
    tp = np.zeros(det.size, bool)
    for k, d in enumerate(det):
        if not gts.size:
            break
        ious = np.where(used, -1.0, result.ious[d, gts])
        best = int(np.argmax(ious))
        if ious[best] >= threshold:
            used[best] = True
            tp[k] = True
    return result.scores[det], tp


def class_ap(results: list[ImageResult], category: int, threshold: float) -> tuple[float, float, float] | None:
    """AP, precision and recall (at the tested confidence) of one class; None without ground truth."""
    total = int(sum(int((r.truth == category).sum()) for r in results))
    if total == 0:
        return None
    scores, flags = [], []
    for r in results:
        s, tp = match(r, threshold, category)
        scores.append(s)
        flags.append(tp)
    score = np.concatenate(scores) if scores else np.zeros(0)
    tp = np.concatenate(flags) if flags else np.zeros(0, bool)
    order = np.argsort(-score, kind="stable")
    tp = tp[order]
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, tp.size + 1)
    return (average_precision(recall, precision), float(precision[-1]) if tp.size else 0.0,
            float(recall[-1]) if tp.size else 0.0)


# ----------------------------------------------------------------------------------------------- the report


@dataclass
class DetectionReport:
    """Everything the detection test-results view shows."""

    model: str
    dataset: str
    categories: list[str]
    ap: dict[str, float]  # per class, IoU >= iou_threshold (0.5 by default)
    ap_50_95: dict[str, float]
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    mAP: float
    mAP_50_95: float
    iou_threshold: float
    confidence: float
    overlap: float
    max_detections: int
    images: int
    predictions: pd.DataFrame = field(repr=False)  # one row per detection: image, category, score, box, IoU

    def to_dict(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "mAP": self.mAP, "mAP_50_95": self.mAP_50_95,
                "ap": self.ap, "ap_50_95": self.ap_50_95, "precision": self.precision, "recall": self.recall,
                "support": self.support, "iou_threshold": self.iou_threshold, "confidence": self.confidence,
                "overlap": self.overlap, "max_detections": self.max_detections, "images": self.images}

    def summary(self) -> dict:
        return {"mAP": self.mAP, "mAP_50_95": self.mAP_50_95, **{f"AP {k}": v for k, v in self.ap.items()}}

    def lines(self) -> list[str]:
        out = [f"{self.images} images; confidence >= {self.confidence}, NMS IoU {self.overlap}, "
               f"at most {self.max_detections} detections; AP at IoU >= {self.iou_threshold}"]
        for name in self.categories:
            if name in self.ap:
                out.append(f"{name:20} AP {self.ap[name]:.3f}  AP@.5:.95 {self.ap_50_95[name]:.3f}  "
                           f"precision {self.precision[name]:.3f}  recall {self.recall[name]:.3f}  "
                           f"({self.support[name]} objects)")
            else:
                out.append(f"{name:20} no ground truth in the tested images")
        out.append(f"mAP {self.mAP:.3f}  mAP@.5:.95 {self.mAP_50_95:.3f}")
        return out


def _subset_ids(table: pd.DataFrame, subset: Subset | list[int]) -> list[int]:
    if isinstance(subset, list):
        return [int(i) for i in subset]
    if subset == "all":
        return table.index.tolist()
    if subset not in ("train", "validation"):
        raise AstrocyteError(f"subset must be train, validation, all or a list of image ids, not {subset!r}")
    return table.index[table["assigned"] == subset].tolist()


def to_annotations(prediction: DetectionPrediction, pseudo: bool = False) -> list[Annotation]:
    """A runtime prediction as dataset annotations (with scores)."""
    found: list[Annotation] = []
    for k, label in enumerate(prediction.labels):
        score = float(prediction.scores[k])
        if prediction.rotated is not None:
            cx, cy, w, h, angle = (float(v) for v in prediction.rotated[k])
            if w > 0 and h > 0:
                found.append(RotatedBox(label, cx, cy, w, h, angle % 180.0, pseudo, score))
        else:
            x1, y1, x2, y2 = (float(v) for v in prediction.boxes[k])
            if x2 > x1 and y2 > y1:
                found.append(Box(label, x1, y1, x2, y2, pseudo, score))
    return found


def detector_for(workspace: Workspace, model_name: str, device: str = "auto", **thresholds) -> tuple[Detector, dict]:
    """The runtime detection head driven by the stored PyTorch network, and the model's record."""
    from astrocyte_lab.modules.detection.model import detector_metadata, load_network, torch_runner
    from astrocyte_lab.training.devices import resolve_device

    net, record, spec = load_network(workspace, model_name)
    metadata = detector_metadata(record, spec, **thresholds)
    return Detector(metadata, spec._mask_uint8(), torch_runner(net, resolve_device(device))), record


def _package_detector(package: str | Path, **thresholds) -> tuple[Detector, dict]:
    """The runtime head of a detection package, with any given thresholds applied, and its categories."""
    from astrocyte_lab.runtime import load_package

    predictor = load_package(package)
    if predictor.module != "detection" or not isinstance(predictor.head, Detector):
        raise AstrocyteError(f"{package} is a {predictor.module} package, not a detection one")
    given = {name: value for name, value in thresholds.items() if value is not None}
    if given:
        predictor.configure(**given)
    return predictor.head, {"categories": list(predictor.categories)}


def evaluate_detector(workspace: Workspace, model_name: str, dataset_name: str,
                      subset: Subset | list[int] = "validation", *, batch_size: int = 8, write_back: bool = True,
                      confidence: float | None = None, overlap: float | None = None,
                      max_detections: int | None = None, class_agnostic: bool | None = None,
                      iou_threshold: float = 0.5, device: str = "auto",
                      package: str | Path | None = None) -> DetectionReport:
    """Detect on ``subset`` of a dataset and score against its ground truth (pseudo labels are not truth).

    Thresholds default to the model's. With ``write_back`` the detections are stored as the images'
    predicted objects (kept apart from ground truth) and the dataset is saved. ``package`` tests an exported
    ``.astromodel`` file (e.g. an int8 one) through the torch-free runtime instead of the stored network;
    ``model_name`` then only names the report.
    """
    from astrocyte_lab.training.devices import advise_on_out_of_memory  # torch: only once a test runs

    if package is not None:
        detector, record = _package_detector(package, confidence=confidence, overlap=overlap,
                                             max_detections=max_detections, class_agnostic=class_agnostic)
    else:
        detector, record = detector_for(workspace, model_name, device, confidence=confidence, overlap=overlap,
                                        max_detections=max_detections, class_agnostic=class_agnostic)
    dataset = workspace.dataset(dataset_name)
    if dataset.module != "detection":
        raise AstrocyteError(f"dataset {dataset_name!r} is a {dataset.module} dataset, not detection")
    categories = list(record["categories"])
    if [c for c in dataset.categories if c in categories] == [] and dataset.categories:
        raise AstrocyteError(f"model {model_name!r} knows {categories}, dataset {dataset_name!r} has "
                             f"{dataset.categories}: no category in common")
    ids = _subset_ids(dataset.table, subset)
    if not ids:
        raise AstrocyteError(f"no image in subset {subset!r} of dataset {dataset_name!r}")
    rotated = detector.rotated
    index = {name: k for k, name in enumerate(categories)}
    results: list[ImageResult] = []
    rows: list[dict] = []
    for first in range(0, len(ids), batch_size if not detector.tiled else 1):
        chunk = ids[first:first + (batch_size if not detector.tiled else 1)]
        with advise_on_out_of_memory(f"testing model {model_name!r}", batch_size=batch_size,
                                     tile_size=detector.settings.tile):
            predictions = detector.detect([dataset.image(i) for i in chunk], batch_size)
        for image_id, prediction in zip(chunk, predictions, strict=True):
            truth = [a for a in dataset.objects(image_id, pseudo=False) if a.category in index]
            ious = iou_matrix(prediction_geometry(prediction, rotated), [object_geometry(a, rotated) for a in truth],
                              rotated)
            truth_classes = np.array([index[a.category] for a in truth], np.int64)
            results.append(ImageResult(prediction.classes, prediction.scores, ious, truth_classes))
            for k, label in enumerate(prediction.labels):
                same = ious[k, truth_classes == prediction.classes[k]] if len(truth) else np.zeros(0)
                x1, y1, x2, y2 = (float(v) for v in prediction.boxes[k])
                rows.append({"image_id": image_id, "category": label, "score": float(prediction.scores[k]),
                             "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                             "angle": float(prediction.rotated[k][4]) if prediction.rotated is not None else None,
                             "iou": float(same.max()) if same.size else 0.0})
            if write_back:
                dataset.set_predicted_objects(image_id, to_annotations(prediction))
    if write_back:
        dataset.save()
    ap, ap_5095, precision, recall, support = {}, {}, {}, {}, {}
    for k, name in enumerate(categories):
        base = class_ap(results, k, iou_threshold)
        if base is None:
            continue
        ap[name], precision[name], recall[name] = base
        ap_5095[name] = float(np.mean([class_ap(results, k, t)[0] for t in COCO_THRESHOLDS]))  # type: ignore[index]
        support[name] = int(sum(int((r.truth == k).sum()) for r in results))
    s = detector.settings
    return DetectionReport(
        model=model_name, dataset=dataset_name, categories=categories, ap=ap, ap_50_95=ap_5095,
        precision=precision, recall=recall, support=support,
        mAP=float(np.mean(list(ap.values()))) if ap else 0.0,
        mAP_50_95=float(np.mean(list(ap_5095.values()))) if ap_5095 else 0.0, iou_threshold=iou_threshold,
        confidence=s.confidence if confidence is None else confidence,
        overlap=s.overlap if overlap is None else overlap,
        max_detections=s.max_detections if max_detections is None else max_detections, images=len(ids),
        predictions=pd.DataFrame(rows, columns=["image_id", "category", "score", "x1", "y1", "x2", "y2", "angle",
                                                "iou"]))
