"""Segmentation quality on real data: the magnetic-tile surface-defect set (Huang et al., "Surface defect
saliency of magnetic tile", The Visual Computer 2020; research use, cite the paper; not redistributed).

The five defect folders (blowhole, break, crack, fray, uneven) become one category each plus background:
each image's soft mask (0-255, > 127 = defect) is rewritten with the folder's class value. Images of
different sizes are resized to one size before import. 80 % of the images train (with validation taken from
them as the dataset's assignment), 20 % are held out and only tested. Prints IoU per category, mean IoU
(with background) and mean IoU of the defect classes, pixel accuracy, and timings. The set-up is ``suite.py``'s
(its magnetic-tile reader, split and workspace); the suite runs the product's defaults against a plain smp Unet.

    .venv/bin/python benchmarks/quality_segmentation.py [--epochs 20] [--size 224] [--data ../shared/datasets/...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from suite import (
    DEFAULT_DATA,
    Prepared,
    magnetic_tile_items,
    magnetic_tile_segmentation,
    prepare_segmentation,
    segmentation_workspace,
)

from astrocyte_lab.evaluation.segmentation import evaluate_segmenter
from astrocyte_lab.modules.segmentation.config import SegmentationConfig
from astrocyte_lab.modules.segmentation.trainer import train_job
from astrocyte_lab.training.progress import follow


def prepare(data: Path, work: Path, size: int) -> Prepared:
    """The suite's magnetic-tile segmentation folders (its held-out split) at ``size`` x ``size``."""
    split = magnetic_tile_segmentation(magnetic_tile_items(data))
    prepare_segmentation(split, work, (size, size))
    return Prepared("magnetic_tile", work, (size, size), len(split.train), len(split.test), split.classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "magnetic_tile")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=224, help="region size (square)")
    parser.add_argument("--architecture", default="manet_lite0")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="astro-mt-"))
    prepared = prepare(args.data, work / "data", args.size)
    ws = segmentation_workspace(prepared, work / "ws")
    for name in ("train", "test"):
        dataset = ws.dataset(name)
        print(f"{name}: {len(dataset)} images {dataset.geometry.width}x{dataset.geometry.height}, "
              f"categories {dataset.categories}")
    config = SegmentationConfig(architecture=args.architecture, epochs=args.epochs, batch_size=8,
                                learning_rate=2e-3, region_size=(args.size, args.size), seed=0,
                                class_imbalance="weighted")
    trained = time.perf_counter()
    job = train_job(ws, "train", "mt-model", config)
    follow(job)
    job.result()
    trained = time.perf_counter() - trained
    report = evaluate_segmenter(ws, "mt-model", "test", "all", keep_masks=False)
    print("held-out IoU per category:")
    for name, iou in report.iou.items():
        print(f"  {name:12} {iou:.3f}")
    summary = {"mean_iou": round(report.mean_iou, 4), "mean_iou_defects": round(report.mean_iou_defects, 4),
               "pixel_accuracy": round(report.accuracy, 4), "train_minutes": round(trained / 60, 1),
               "total_minutes": round((time.perf_counter() - start) / 60, 1), "epochs": args.epochs,
               "size": args.size, "architecture": args.architecture}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
