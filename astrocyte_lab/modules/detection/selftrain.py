"""Self-training (semi-supervised detection): a teacher labels the unlabelled images, a student learns from both.

1. The dataset must be mostly unlabelled: more than half of its non-validation images have no ground-truth
   object (otherwise plain training is the better choice and an error says so).
2. The **teacher** trains on the labelled training images (``teacher_epochs``) - or, with ``resume_from``,
   the named trained model is the teacher and this step is skipped.
3. The teacher detects objects on every unlabelled image; detections scoring at least ``pseudo_confidence``
   (default 0.5) are stored in the dataset as **pseudo labels** (``pseudo=True`` with their score) and the
   dataset is saved. Pseudo labels replace earlier pseudo labels of those images; images keep their set
   (``auto`` stays ``auto``). If fewer images received pseudo labels than there are labelled images, training
   stops with an error (the pseudo labels stay saved, for review).
4. The **student** starts from the teacher's weights and trains on the labelled images plus the
   pseudo-labelled ones; pseudo labels count less: each labelled image is shown ``round(1 / pseudo_weight)``
   times per epoch for each showing of a pseudo-labelled image (weighting by sampling, as Ultralytics' loss
   has no per-box weight).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.detection.config import DetectionConfig
from astrocyte_lab.training.data import InputSpec
from astrocyte_lab.training.jobs import JobContext


class SelfTrainingError(AstrocyteError):
    """Self-training could not go on (too few unlabelled images, or too few pseudo labels)."""


def unlabelled_ids(dataset: Dataset) -> list[int]:
    """Images outside the validation set without any ground-truth object (pseudo labels do not count)."""
    table = dataset.table
    pool = table.index[table["assigned"] != "validation"].tolist()
    return [i for i in pool if not dataset.objects(i, pseudo=False)]


def pseudo_label(dataset: Dataset, detector, ids: list[int], confidence: float, batch_size: int = 8) -> int:
    """Store the detector's detections scoring >= ``confidence`` as pseudo labels; images labelled, unsaved."""
    from astrocyte_lab.evaluation.detection import to_annotations

    names = set(dataset.categories)
    labelled = 0
    step = 1 if detector.tiled else batch_size
    for first in range(0, len(ids), step):
        chunk = ids[first:first + step]
        predictions = detector.detect([dataset.image(i) for i in chunk], batch_size, confidence=confidence)
        for image_id, prediction in zip(chunk, predictions, strict=True):
            found = [a for a in to_annotations(prediction, pseudo=True) if a.category in names]
            dataset.set_objects(image_id, [*dataset.objects(image_id, pseudo=False), *found])
            labelled += bool(found)
    return labelled


def self_train(workspace: Workspace, dataset: Dataset, net, config: DetectionConfig, spec: InputSpec, tiling,
               rotated: bool, train_ids: list[int], val_ids: list[int], seed: int, rng: np.random.Generator,
               root: Path, context: JobContext):
    """Teacher, pseudo labels, student (see the module docstring); returns the student's fit and record extras."""
    from astrocyte_lab.evaluation.detection import Detector
    from astrocyte_lab.modules.detection.model import torch_runner
    from astrocyte_lab.modules.detection.trainer import _folder, fit, samples_for
    from astrocyte_lab.training.devices import resolve_device

    unlabelled = unlabelled_ids(dataset)
    pool = len(unlabelled) + len(train_ids)
    if pool == 0 or len(unlabelled) <= 0.5 * pool:
        raise SelfTrainingError(f"self-training needs more than half of the training images unlabelled; "
                                f"{len(unlabelled)} of {pool} are: train normally instead")
    categories = dataset.categories
    if config.resume_from:
        context.emit("status", message=f"teacher: trained model {config.resume_from!r} (teacher training skipped)")
        teacher = copy.deepcopy(net).float().eval()
        teacher_history: list[dict] = []
    else:
        folder = _folder(root / "teacher", dataset, categories, rotated, spec, tiling, train_ids, val_ids, rng)
        context.emit("status", message=f"teacher: training on {len(train_ids)} labelled images "
                                       f"({len(unlabelled)} unlabelled)")
        result = fit(net, folder, config, spec, config.teacher_epochs or config.epochs, seed, context, "teacher ")
        teacher, teacher_history = result.net, result.history
    metadata = {"module": "detection", "categories": categories, "input": spec.meta_input(), "roi": spec.meta_roi(),
                "outputs": {"predictions": "predictions"},
                "detection": {"rotated": rotated, "confidence": config.pseudo_confidence, "overlap": config.overlap,
                              "max_detections": config.max_detections, "class_agnostic": config.class_agnostic,
                              "tiling": tiling.to_record() if tiling else None}}
    detector = Detector(metadata, spec._mask_uint8(), torch_runner(teacher, resolve_device(config.device)))
    context.check_cancelled()
    dataset = workspace.dataset(dataset.name)  # the current version: edits made while the teacher trained stay
    unlabelled = [i for i in unlabelled_ids(dataset) if i in set(unlabelled)]
    pseudo_images = pseudo_label(dataset, detector, unlabelled, config.pseudo_confidence)
    dataset.save()
    pseudo_count = sum(len(dataset.objects(i, pseudo=True)) for i in unlabelled)
    context.emit("status", message=f"pseudo labels: {pseudo_count} objects on {pseudo_images} of {len(unlabelled)} "
                                   f"unlabelled images (confidence >= {config.pseudo_confidence}), saved")
    if pseudo_images < len(train_ids):
        raise SelfTrainingError(f"only {pseudo_images} images received pseudo labels, fewer than the "
                                f"{len(train_ids)} labelled ones: label more images or train the teacher longer "
                                "(the pseudo labels are saved in the dataset for review)")
    with_pseudo = [i for i in unlabelled if dataset.objects(i, pseudo=True)]
    repeat = max(1, round(1 / config.pseudo_weight))
    student_folder = _folder(root / "student", dataset, categories, rotated, spec, tiling, train_ids, val_ids, rng,
                             extra_train=samples_for(dataset, with_pseudo, categories, rotated, pseudo=True),
                             repeat=repeat)
    student = copy.deepcopy(teacher).train()
    for p in student.parameters():
        p.requires_grad_(True)
    context.emit("status", message=f"student: {len(train_ids)} labelled images (x{repeat}) + {len(with_pseudo)} "
                                   "pseudo-labelled images")
    result = fit(student, student_folder, config, spec, config.epochs, seed + 1, context, "student ")
    extra = {"self_training": {"teacher_history": teacher_history, "pseudo_images": pseudo_images,
                               "pseudo_labels": pseudo_count, "unlabelled_images": len(unlabelled),
                               "pseudo_confidence": config.pseudo_confidence, "labelled_repeat": repeat,
                               "teacher": config.resume_from}}
    return result, extra
