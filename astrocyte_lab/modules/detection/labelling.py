"""Labelling helpers: Smart Label (a helper model proposes pseudo labels), approving pseudo labels, and the
overlapping-annotations filter (near-duplicate boxes, usually an object annotated twice).

All of them edit the dataset in memory like every other edit: ``dataset.save()`` keeps the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from astrocyte_lab.data.annotations import Annotation, RotatedBox
from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError

DUPLICATE_IOU = 0.9  # boxes overlapping at least this much count as "almost fully overlapped"


def smart_label(workspace: Workspace, dataset: Dataset, model_name: str, images: Iterable[int | str], *,
                confidence: float = 0.5, overlap: float = 0.45, max_detections: int | None = None,
                replace_pseudo: bool = True, device: str = "auto") -> dict[int, int]:
    """Label ``images`` with a helper model's detections as pseudo labels (kept apart from ground truth).

    Detections scoring at least ``confidence`` after NMS at ``overlap`` become pseudo labels with their score;
    categories the dataset lacks are added. Earlier pseudo labels of those images are replaced unless
    ``replace_pseudo`` is False; ground truth is never touched. Returns the number of labels added per image id.
    Nothing is saved.
    """
    from astrocyte_lab.evaluation.detection import detector_for, to_annotations

    if dataset.module != "detection":
        raise AstrocyteError(f"smart label needs a detection dataset, {dataset.name!r} is {dataset.module}")
    detector, record = detector_for(workspace, model_name, device, confidence=confidence, overlap=overlap,
                                    max_detections=max_detections)
    for name in record["categories"]:
        if name not in dataset.categories:
            dataset.add_category(name)
    added: dict[int, int] = {}
    for selector in images:
        image_id = int(dataset.ids[dataset._position(selector)])
        prediction = detector.detect([dataset.image(image_id)], 8)[0]
        found = to_annotations(prediction, pseudo=True)
        kept = dataset.objects(image_id, pseudo=False) if replace_pseudo else dataset.objects(image_id)
        dataset.set_objects(image_id, [*kept, *found])
        added[image_id] = len(found)
    return added


def set_pseudo(dataset: Dataset, images: Iterable[int | str], pseudo: bool) -> int:
    """The manual's toggle: turn an image's pseudo labels into ground truth (``pseudo=False``: approved, score
    dropped) or its ground truth back into pseudo labels. Returns how many objects changed."""
    changed = 0
    for selector in images:
        objects = dataset.objects(selector)
        flipped = [replace(a, pseudo=pseudo, score=a.score if pseudo else None) if a.pseudo != pseudo else a
                   for a in objects]
        changed += sum(a.pseudo != b.pseudo for a, b in zip(objects, flipped, strict=True))
        dataset.set_objects(selector, flipped)
    return changed


def approve_pseudo_labels(dataset: Dataset, images: Iterable[int | str]) -> int:
    return set_pseudo(dataset, images, pseudo=False)


def _iou(a: Annotation, b: Annotation) -> float:
    if isinstance(a, RotatedBox) or isinstance(b, RotatedBox):
        from astrocyte_lab.evaluation.detection import _polygon_iou

        return _polygon_iou(a.corners(), b.corners())
    from astrocyte_lab.runtime.detection import box_iou

    return float(box_iou(np.array([a.bounds()]), np.array([b.bounds()]))[0, 0])


def overlapping_pairs(objects: Sequence[Annotation], threshold: float = DUPLICATE_IOU,
                      same_category: bool = False) -> list[tuple[int, int, float]]:
    """Index pairs of annotations that overlap almost fully (IoU >= ``threshold``), with their IoU."""
    pairs = []
    for i in range(len(objects)):
        for j in range(i + 1, len(objects)):
            if same_category and objects[i].category != objects[j].category:
                continue
            value = _iou(objects[i], objects[j])
            if value >= threshold:
                pairs.append((i, j, value))
    return pairs


def overlapping_annotations(dataset: Dataset, threshold: float = DUPLICATE_IOU, pseudo: bool | None = None,
                            same_category: bool = False) -> dict[int, list[tuple[int, int, float]]]:
    """The overlapping-annotations filter: image id -> near-duplicate pairs, for images that have any.

    ``pseudo`` picks ground truth only (False), pseudo labels only (True) or both (None).
    """
    found = {}
    for image_id in dataset.ids.tolist():
        objects = dataset.objects(int(image_id), pseudo=pseudo)
        pairs = overlapping_pairs(objects, threshold, same_category) if len(objects) > 1 else []
        if pairs:
            found[int(image_id)] = pairs
    return found


def pseudo_filter(dataset: Dataset, mode: str = "all") -> list[int]:
    """The tri-state pseudo-labels filter: ``exclude`` images with pseudo labels, ``only`` those, or ``all``."""
    if mode not in ("exclude", "all", "only"):
        raise AstrocyteError(f"pseudo-label filter is exclude, all or only, not {mode!r}")
    ids = [int(i) for i in dataset.ids.tolist()]
    if mode == "all":
        return ids
    has = {i for i in ids if dataset.objects(i, pseudo=True)}
    return [i for i in ids if (i in has) == (mode == "only")]
