"""Segmentation quality on real data: the magnetic-tile surface-defect set (Huang et al., "Surface defect
saliency of magnetic tile", The Visual Computer 2020; research use, cite the paper; not redistributed).

The five defect folders (blowhole, break, crack, fray, uneven) become one category each plus background:
each image's soft mask (0-255, > 127 = defect) is rewritten with the folder's class value. Images of
different sizes are resized to one size at generation. 80 % of the images train (with validation taken from
them as the dataset's assignment), 20 % are held out and only tested. Prints IoU per category, mean IoU
(with background) and mean IoU of the defect classes, pixel accuracy, and timings.

    .venv/bin/python benchmarks/quality_segmentation.py [--epochs 20] [--size 224] [--data ../shared/datasets/...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from astrocyte_lab import GenerationOptions, Workspace, segmentation_set
from astrocyte_lab.evaluation.segmentation import evaluate_segmenter
from astrocyte_lab.modules.segmentation.config import SegmentationConfig
from astrocyte_lab.modules.segmentation.trainer import train_job
from astrocyte_lab.training.progress import follow

DEFECTS = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "magnetic_tile"


def prepare(data: Path, work: Path, size: int, seed: int = 0) -> tuple[Path, Path, Path, Path]:
    """Train and held-out folders of images and class-valued masks (a stratified 80/20 split per folder),
    all resized to ``size`` x ``size`` (the tiles come in many sizes and both orientations)."""
    rng = np.random.default_rng(seed)
    folders = {s: (work / s / "images", work / s / "masks") for s in ("train", "test")}
    for images, masks in folders.values():
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
    for value, defect in enumerate(DEFECTS, start=1):
        files = sorted((data / defect / "Imgs").glob("*.jpg"))
        order = rng.permutation(len(files))
        held_out = set(order[: round(0.2 * len(files))].tolist())
        for index, image in enumerate(files):
            soft = cv2.imread(str(image.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
            if soft is None:
                continue
            split = "test" if index in held_out else "train"
            target_images, target_masks = folders[split]
            stem = f"{defect}_{image.stem}"
            grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
            small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(target_images / f"{stem}.png"), small)
            mask = cv2.resize(np.where(soft > 127, value, 0).astype(np.uint8), (size, size),
                              interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(target_masks / f"{stem}.png"), mask)
    return folders["train"][0], folders["train"][1], folders["test"][0], folders["test"][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=224, help="region size (square)")
    parser.add_argument("--architecture", default="manet_lite0")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="astro-mt-"))
    train_images, train_masks, test_images, test_masks = prepare(args.data, work / "data", args.size)
    ws = Workspace(work / "ws")
    options = GenerationOptions()
    names = ["background"] + [d.removeprefix("MT_").lower() for d in DEFECTS]
    for name, images, masks in (("mt-train", train_images, train_masks), ("mt-test", test_images, test_masks)):
        dataset = ws.create_dataset(name, "segmentation", [segmentation_set("tiles", images, masks)],
                                    options=options, train_ratio=0.85 if name == "mt-train" else 0.0, seed=0)
        for value, label in enumerate(names):
            if str(value) in dataset.categories:
                dataset.rename_category(str(value), label)
        dataset.save()
        print(f"{name}: {len(dataset)} images {dataset.geometry.width}x{dataset.geometry.height}, "
              f"categories {dataset.categories}")
    config = SegmentationConfig(architecture=args.architecture, epochs=args.epochs, batch_size=8,
                                learning_rate=2e-3, region_size=(args.size, args.size), seed=0,
                                class_imbalance="weighted")
    trained = time.perf_counter()
    job = train_job(ws, "mt-train", "mt-model", config)
    follow(job)
    job.result()
    trained = time.perf_counter() - trained
    report = evaluate_segmenter(ws, "mt-model", "mt-test", "all", keep_masks=False)
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
