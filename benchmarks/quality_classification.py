"""Classification quality on real data: the ELPV solar-cell electroluminescence set, held-out test split.

The ELPV dataset holds 2,624 grey 300x300 electroluminescence images of mono- and polycrystalline solar
cells, each rated by experts with a defect probability of 0, 1/3, 2/3 or 1. Two tasks are trained and tested:

  4-class  p000 / p033 / p067 / p100  (the four ratings)
  2-class  functional (0) / defective (> 0)

A stratified test split (``--test-fraction``, default 25 %, by rating and cell type, fixed seed) is written to
its own dataset and never seen in training: training and validation (the library's own stratified 80/20
draw) use only the remaining images. Training uses the public API with defaults chosen in advance, not
tuned on the test split: tf_efficientnet_lite0 with its bundled ImageNet weights, ``--size`` square input,
AdamW with a one-cycle schedule, the library's inverse-frequency class weights, early stopping on validation
loss (the best epoch's weights are kept), and the default classification augmentation plus vertical flips
(a cell image is symmetric top to bottom as well as left to right). The held-out dataset is then tested with
``evaluate_classifier(ws, model, heldout, "all")``.

Prints accuracy, macro F1, the confusion matrix and per-class recall on the test split, the training time
per task and the total wall time. Meant to finish within 30 minutes on a 2-core CPU with the defaults.

    .venv/bin/pip install elpv-dataset     # benchmark-only dependency, not a project requirement
    .venv/bin/python benchmarks/quality_classification.py [--tasks 2,4] [--epochs 8] [--size 160]
                                                          [--workdir /tmp/astro-elpv]

Data: Buerhop-Lutz, C.; Deitsch, S.; Maier, A.; Gallwitz, F.; Berger, S.; Doll, B.; Hauch, J.; Camus, C.;
Brabec, C. J. "A Benchmark for Visual Identification of Defective Solar Cells in Electroluminescence
Imagery." European PV Solar Energy Conference and Exhibition (EU PVSEC), 2018. And Deitsch, S.; Christlein,
V.; Berger, S.; Buerhop-Lutz, C.; Maier, A.; Gallwitz, F.; Riess, C. "Automatic classification of defective
photovoltaic module cells in electroluminescence images." Solar Energy 185 (2019) 455-468. The images are
licensed CC BY-NC-SA 4.0 by their authors; this script reads them from the installed ``elpv-dataset``
package at run time and does not redistribute them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

RATINGS = {0: "p000", 1: "p033", 2: "p067", 3: "p100"}  # defect probability * 3 -> category name
BINARY = {0: "functional", 1: "defective"}
MARKER = ".astro-benchmark"  # a --workdir is only ever deleted when it holds this file


def load_elpv() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(images (N, 300, 300) uint8, rating 0-3, cell type, file stems)`` from the installed package."""
    try:
        from elpv_dataset import utils as elpv
    except ImportError as exc:  # a benchmark-only dependency
        raise SystemExit("this benchmark needs the ELPV data: .venv/bin/pip install elpv-dataset") from exc
    images, probabilities, types = elpv.load_dataset()
    labels_csv = Path(elpv.__file__).parent / "data" / "labels.csv"
    stems = [Path(line.split()[0]).stem for line in labels_csv.read_text().splitlines() if line.strip()]
    ratings = np.rint(np.asarray(probabilities) * 3).astype(np.int64)
    assert len(stems) == len(images) == len(ratings), (len(stems), len(images), len(ratings))
    return np.asarray(images), ratings, np.asarray(types), stems


def heldout_mask(ratings: np.ndarray, types: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for test images: ``fraction`` of every (rating, cell type) group, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(ratings), dtype=bool)
    for rating in np.unique(ratings):
        for kind in np.unique(types):
            members = np.flatnonzero((ratings == rating) & (types == kind))
            test[rng.permutation(members)[:round(fraction * len(members))]] = True
    return test


def write_task(root: Path, images: np.ndarray, labels: list[str], stems: list[str], test: np.ndarray) -> None:
    """``root/trainval/<category>/*.png`` and ``root/test/<category>/*.png``."""
    for image, label, stem, is_test in zip(images, labels, stems, test, strict=True):
        folder = root / ("test" if is_test else "trainval") / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{stem}.png"), image)


def run_task(ws, task: str, root: Path, args: argparse.Namespace) -> dict:
    from astrocyte_lab import Location, NamedSet
    from astrocyte_lab.evaluation.classification import evaluate_classifier
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.trainer import train_job
    from astrocyte_lab.training.augment import VerticalFlip, default_classification

    name = f"elpv-{task}class"
    trainval = ws.create_dataset(name, "classification", [NamedSet("trainval", [
        Location(root / "trainval", use_folder_name=True)])], seed=args.seed)
    heldout = ws.create_dataset(f"{name}-test", "classification", [NamedSet("test", [
        Location(root / "test", use_folder_name=True)])], seed=args.seed)
    table = trainval.table
    counts = table.groupby(["assigned", "ground_truth"]).size().unstack(fill_value=0)
    print(f"\n=== {task}-class: {len(trainval)} train+validation images, {len(heldout)} held-out test images")
    print(counts.to_string())

    augmentation = default_classification()
    augmentation.vertical_flip = VerticalFlip(enabled=True)
    config = ClassificationConfig(architecture="tf_efficientnet_lite0", pretrained=True, epochs=args.epochs,
                                  batch_size=args.batch_size, learning_rate=args.learning_rate,
                                  region_size=(args.size, args.size), early_stopping=True,
                                  patience=args.patience, seed=args.seed, augmentation=augmentation)
    started = time.perf_counter()
    job = train_job(ws, name, name, config)
    job.subscribe(lambda e: print(
        f"  epoch {e.epoch:2d}  loss {e.values['loss']:.3f}  val_loss {e.values['val_loss']:.3f}  "
        f"val_accuracy {e.values['val_accuracy']:.3f}  ({time.perf_counter() - started:.0f} s)", flush=True)
        if e.kind == "epoch" else (print(f"  {e.message}", flush=True) if e.kind == "status" else None))
    job.result()
    train_s = time.perf_counter() - started
    record = ws.model_store.record(name)

    started = time.perf_counter()
    report = evaluate_classifier(ws, name, heldout.name, "all")
    test_s = time.perf_counter() - started
    print(f"  trained in {train_s:.0f} s ({len(record['history'])} epochs, best epoch {record['best_epoch']}, "
          f"stopped early: {record['stopped_early']}, pretrained: {record['pretrained']}); "
          f"tested {len(heldout)} images in {test_s:.0f} s")
    print(f"  TEST accuracy {report.accuracy:.4f}   macro F1 {report.macro_f1:.4f}")
    print("  confusion matrix (rows: ground truth, columns: predicted)")
    print("  " + report.confusion_frame().to_string().replace("\n", "\n  "))
    print("  per class: " + ", ".join(f"{c} recall {m.recall:.3f} (n={m.support})"
                                      for c, m in report.classes.items() if m.support))
    return {"task": task, "accuracy": report.accuracy, "macro_f1": report.macro_f1, "train_s": train_s,
            "epochs": len(record["history"]), "best_epoch": record["best_epoch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="2,4", help="comma-separated: 2 (functional/defective), 4 (ratings)")
    parser.add_argument("--epochs", type=int, default=8, help="most epochs (early stopping may end sooner)")
    parser.add_argument("--size", type=int, default=160, help="square network input in pixels (images: 300)")
    parser.add_argument("--patience", type=int, default=3, help="early stopping: epochs without improvement")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="test split, validation split and training seed")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="kept afterwards (emptied first if an earlier run made it); default: a temporary folder")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks or any(t not in ("2", "4") for t in tasks):
        parser.error("--tasks takes 2, 4 or 2,4")

    import torch

    from astrocyte_lab import Workspace

    wall = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="astro-elpv-"))
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            parser.error(f"--workdir {workdir} is not empty and was not made by a benchmark: choose another folder")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()
    try:
        images, ratings, types, stems = load_elpv()
        test = heldout_mask(ratings, types, args.test_fraction, args.seed)
        print(f"ELPV: {len(images)} images {images.shape[2]}x{images.shape[1]} grey; ratings "
              f"{dict(zip(RATINGS.values(), np.bincount(ratings, minlength=4).tolist(), strict=True))}; "
              f"held-out test {int(test.sum())} ({args.test_fraction:.0%}, stratified by rating and cell type, "
              f"seed {args.seed})")
        print(f"settings: tf_efficientnet_lite0 pretrained, input {args.size}x{args.size}, at most {args.epochs} "
              f"epochs, early stopping patience {args.patience}, batch {args.batch_size}, lr {args.learning_rate}; "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}")
        ws = Workspace(workdir / "workspace")
        results = []
        for task in tasks:
            names = RATINGS if task == "4" else BINARY
            labels = [names[int(r) if task == "4" else int(r > 0)] for r in ratings]
            write_task(workdir / f"task{task}", images, labels, stems, test)
            results.append(run_task(ws, task, workdir / f"task{task}", args))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - wall
    print("\n=== summary (held-out test split)")
    for r in results:
        print(f"  {r['task']}-class: accuracy {r['accuracy']:.4f}, macro F1 {r['macro_f1']:.4f}, training "
              f"{r['train_s'] / 60:.1f} min ({r['epochs']} epochs, best {r['best_epoch']})")
    print(f"  total wall time {total / 60:.1f} min; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
