"""Detection quality on real data: DeepPCB (Tang et al., 2019; MIT), six PCB defect types on 640x640 grey images.

The 1,000 ``trainval`` images train (10 % of them validate during training); the 500 ``test`` images are only
tested. Boxes come from ``<group>/<id>_not/<id>.txt`` (``x1 y1 x2 y2 type``, type 1..6). Prints AP per class
at IoU >= 0.5 (COCO-style, 101-point), mAP@0.5, mAP@0.5:0.95 and, for comparison with the paper's 98.6, mAP at
IoU >= 0.33, with timings. Detections are scored from confidence 0.001 (the usual way to report AP). The model
is then exported with ``int8=True`` and that package is tested through the runtime (what quantisation costs).

The defaults (YOLOv8-n from scratch, 320 x 320, 20 epochs) fit the 45-minute budget on a 2-core CPU: 18 min
wall clock, 35 CPU minutes. Full resolution (640) costs about 4x per epoch.

    .venv/bin/python benchmarks/quality_detection.py [--epochs 20] [--size 320] [--architecture nano]
        [--limit N] [--data ../shared/datasets/deeppcb]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from astrocyte_lab import Workspace
from astrocyte_lab.data.sources import DatabaseSet
from astrocyte_lab.evaluation.detection import evaluate_detector
from astrocyte_lab.formats import TextDatabase, TextFormat
from astrocyte_lab.modules.detection.config import DetectionConfig
from astrocyte_lab.modules.detection.export import export_package
from astrocyte_lab.modules.detection.trainer import train_job
from astrocyte_lab.training.progress import follow

DEFECTS = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "deeppcb"


def prepare(data: Path, work: Path, split: str, limit: int | None) -> TextDatabase:
    """One folder of image links and tab-separated label files (class names) for a split list."""
    images, labels = work / split / "images", work / split / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    lines = (data / "PCBData" / f"{split}.txt").read_text().split()
    pairs = list(zip(lines[0::2], lines[1::2], strict=True))[:limit]
    for image_rel, label_rel in pairs:
        image = data / "PCBData" / image_rel.replace(".jpg", "_test.jpg")
        boxes = (data / "PCBData" / label_rel).read_text().split("\n")
        rows = []
        for row in boxes:
            parts = row.replace(",", " ").split()
            if len(parts) == 5:
                x1, y1, x2, y2, kind = (int(float(v)) for v in parts)
                rows.append(f"{DEFECTS[kind - 1]}\t{x1}\t{y1}\t{x2}\t{y2}")
        (images / image.name).symlink_to(image)
        (labels / f"{image.stem}.txt").write_text("\n".join(rows) + "\n")
    return TextDatabase(TextFormat(path=labels, image_folder=images, columns=["class", "x1", "y1", "x2", "y2"],
                                   per_image=True, separator="tab"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--architecture", default="nano")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deeppcb-"))
    started = time.perf_counter()
    ws = Workspace(work / "workspace")
    train = ws.create_dataset("deeppcb-trainval", "detection",
                              [DatabaseSet("trainval", prepare(args.data, work, "trainval", args.limit))], seed=0)
    train.shuffle(0.9, seed=0)
    train.save()
    test = ws.create_dataset("deeppcb-test", "detection",
                             [DatabaseSet("test", prepare(args.data, work, "test", args.limit))], seed=0)
    prepared = time.perf_counter() - started
    config = DetectionConfig(architecture=args.architecture, epochs=args.epochs, batch_size=args.batch_size,
                             region_size=(args.size, args.size), optimizer="adam", learning_rate=0.002, lr_warmup=2,
                             seed=0, pretrained=False, confidence=0.001, max_detections=100,
                             augmentation={"rotate": 0.0, "vertical_flip": 0.5, "hue": 0.0, "photometric": 0.2})
    job = train_job(ws, train.name, "deeppcb", config)
    follow(job)
    job.result()
    trained = time.perf_counter() - started - prepared
    report = evaluate_detector(ws, "deeppcb", test.name, "all", write_back=False)
    loose = evaluate_detector(ws, "deeppcb", test.name, "all", write_back=False, iou_threshold=0.33)
    tested = time.perf_counter() - started - prepared - trained
    packed = export_package(ws, "deeppcb", work / "deeppcb-int8.astromodel", int8=True)
    quantized = evaluate_detector(ws, "deeppcb", test.name, "all", write_back=False, package=packed)
    for line in report.lines():
        print(line)
    print(f"mAP at IoU >= 0.33 (the DeepPCB paper's criterion): {loose.mAP:.3f}")
    print(f"int8 package (export_package(..., int8=True)) tested through the runtime: mAP {quantized.mAP:.3f}, "
          f"mAP@.5:.95 {quantized.mAP_50_95:.3f}")
    print(json.dumps({"images": {"trainval": len(train), "test": len(test)}, "epochs": args.epochs,
                      "size": args.size, "architecture": args.architecture, "mAP@0.5": round(report.mAP, 4),
                      "mAP@0.5:0.95": round(report.mAP_50_95, 4), "mAP@0.33": round(loose.mAP, 4),
                      "int8_mAP@0.5": round(quantized.mAP, 4), "int8_mAP@0.5:0.95": round(quantized.mAP_50_95, 4),
                      "ap@0.5": {k: round(v, 4) for k, v in report.ap.items()},
                      "seconds": {"prepare": round(prepared, 1), "train": round(trained, 1),
                                  "test": round(tested, 1)}}))


if __name__ == "__main__":
    main()
