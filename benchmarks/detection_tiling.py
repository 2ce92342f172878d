"""Tiled against whole-image detection of small knots, tested on wood boards no model has seen.

Runs the full (not ``--fast``) ``quickstart detection-tiling`` in ``--workspace`` unless its two models are
already there: ``quickstart-wood-whole`` (each 1536x1024 board shrunk to 512x352, knots become 3-10 px) and
``quickstart-wood`` (512x512 tiles at full resolution). Both train on the 12 sample boards (10 train, 2
validate). Then ``--boards`` further boards (indices 12, 13, ...: same generator, other random draws) are
written, imported and tested with both models at the default thresholds; prints AP per class at IoU >= 0.5,
mAP@0.5 and mAP@0.5:0.95 for each, and a JSON line.

    .venv/bin/python benchmarks/detection_tiling.py --workspace /tmp/qs-tile [--boards 24]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from astrocyte_lab import Workspace
from astrocyte_lab.data.sources import DatabaseSet
from astrocyte_lab.evaluation.detection import evaluate_detector
from astrocyte_lab.formats import TextDatabase, TextFormat
from astrocyte_lab.modules.detection.quickstart import detection_tiling
from astrocyte_lab.samples import wood

MODELS = {"whole image 512x352": "quickstart-wood-whole", "tiles 512x512": "quickstart-wood"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--boards", type=int, default=24, help="held-out boards to test on")
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    started = time.perf_counter()
    if not all(name in ws.model_store.names() for name in MODELS.values()):
        detection_tiling(args.workspace, fast=False)
    trained = time.perf_counter() - started
    folder = args.workspace / "held-out-boards"
    first = wood.N_IMAGES
    wood.write_boards(folder, range(first, first + args.boards))
    name = "wood-held-out"
    if name in ws.dataset_names():
        ws.delete_dataset(name)
    database = TextDatabase(TextFormat(path=folder / "labels", image_folder=folder / "images",
                                       columns=["class", "x1", "y1", "x2", "y2"], per_image=True, separator="tab"))
    ws.create_dataset(name, "detection", [DatabaseSet("held-out", database)], train_ratio=0.0, seed=0)
    summary: dict = {"boards": args.boards, "train_s": round(trained, 1)}
    for title, model in MODELS.items():
        report = evaluate_detector(ws, model, name, "all", write_back=False)
        print(f"== {title} ({model})")
        for line in report.lines():
            print(line)
        summary[model] = {"mAP@0.5": round(report.mAP, 4), "mAP@0.5:0.95": round(report.mAP_50_95, 4),
                          "ap@0.5": {k: round(v, 4) for k, v in report.ap.items()}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
