"""Anomaly detection quality on real data: the magnetic-tile surface-defect set (Huang et al., "Surface defect
saliency of magnetic tile", The Visual Computer 2020; research use, cite the paper; not redistributed).

A seed-0 random share (``--train-ratio``, default 80 %) of the defect-free ``MT_Free`` images trains; the other
defect-free images and every image of the five defect folders (blowhole, break, crack, fray, uneven) are
tested. Images of many sizes are resized to ``--size`` x ``--size``; the soft masks are thresholded > 127 and
resized by nearest neighbour. Prints image AUROC, AUPR, pixel AUROC (overall and per defect folder), the fit
time (the training job: features, coreset, layout, segmenter, saving; anomalib is imported before, as in a
running kernel, and its import time is printed apart) and the process's peak resident memory, for the default
configuration unless options say otherwise. The set-up (reading the set, resizing, the workspace's two datasets)
is ``suite.py``'s; the suite itself compares the defaults with plain anomalib over every anomaly dataset.

    .venv/bin/python benchmarks/quality_anomaly.py [--size 256] [--algorithm patchcore] [--architecture ...]
        [--no-layout-model] [--no-defect-segmenter] [--segmenter-patches N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from suite import DEFAULT_DATA, Prepared, Split, _shuffled, anomaly_workspace, magnetic_tile_items, prepare_anomaly

from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
from astrocyte_lab.modules.anomaly import postprocess
from astrocyte_lab.modules.anomaly.config import AnomalyConfig
from astrocyte_lab.modules.anomaly.trainer import train_job


def prepare(data: Path, work: Path, size: int, train_ratio: float) -> tuple[Prepared, Split]:
    """The suite's magnetic-tile folders at ``size`` x ``size``, with ``train_ratio`` of ``MT_Free`` training
    (the seed-0 draw this script has always used; the suite itself trains on a fixed count)."""
    items = magnetic_tile_items(data)
    free = _shuffled([i for i in items if not i.defect])
    cut = round(train_ratio * len(free))
    split = Split(free[:cut], free[cut:] + [i for i in items if i.defect])
    prepare_anomaly(split, work, (size, size))
    return Prepared("magnetic_tile", work, (size, size), cut, len(split.test), []), split


def pixel_auroc_per_defect(test, heatmaps: dict[int, np.ndarray], split: Split) -> dict[str, tuple[float, int]]:
    """Pixel AUROC over the defect-free test images plus one defect folder at a time, and its defect pixels.

    The overall pixel AUROC weighs every defect pixel alike, so the folders with large defect areas decide
    it; this tells which defect kind the heatmaps localise badly.
    """
    table = test.table
    normal = [int(i) for i in table.index[table["ground_truth"] == "Normal"]]
    out: dict[str, tuple[float, int]] = {}
    for kind in sorted({i.name.split("_", 1)[0] for i in split.test if i.defect}):
        ids = [int(i) for i in table.index[table["name"].str.startswith(kind + "_")]]
        masks = [test.mask(i) for i in ids] + [np.zeros(heatmaps[i].shape, bool) for i in normal]
        value = postprocess.pixel_auroc(masks, [heatmaps[i] for i in ids + normal])
        out[kind] = (float(value), int(sum(m.sum() for m in masks)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "magnetic_tile")
    parser.add_argument("--size", type=int, default=256, help="images are resized to size x size")
    parser.add_argument("--train-ratio", type=float, default=0.8, help="share of MT_Free used for training")
    parser.add_argument("--architecture", default=None, help="backbone (default: the module default)")
    parser.add_argument("--algorithm", default=None, choices=("patchcore", "padim"))
    parser.add_argument("--granularity", default=None, choices=("pixel", "pixel_low_res", "image"))
    parser.add_argument("--memory-bank-size", type=int, default=None)
    parser.add_argument("--coreset-ratio", type=float, default=None)
    parser.add_argument("--no-layout-model", action="store_true", help="PatchCore without its whole-image layout term")
    parser.add_argument("--no-defect-segmenter", action="store_true",
                        help="PatchCore's heatmap without the learned defect segmenter")
    parser.add_argument("--segmenter-patches", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="the model's seed (the train/test split stays seed 0)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept afterwards; default: a temporary folder")
    args = parser.parse_args()
    start = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="astro-mt-anomaly-"))
    try:
        folders, split = prepare(args.data, work / "data", args.size, args.train_ratio)
        ws = anomaly_workspace(folders, work / "ws")
        test = ws.dataset("test")
        options = {k: v for k, v in (("architecture", args.architecture), ("algorithm", args.algorithm),
                                     ("granularity", args.granularity), ("memory_bank_size", args.memory_bank_size),
                                     ("coreset_ratio", args.coreset_ratio),
                                     ("layout_model", False if args.no_layout_model else None),
                                     ("defect_segmenter", False if args.no_defect_segmenter else None),
                                     ("segmenter_patches", args.segmenter_patches)) if v is not None}
        config = AnomalyConfig(seed=args.seed, **options)
        import_start = time.perf_counter()
        import anomalib.models  # noqa: F401 - a running kernel has it loaded; the fit time leaves the import out
        import_s = time.perf_counter() - import_start
        prepared = time.perf_counter() - start
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        fit_start, fit_cpu = time.perf_counter(), time.process_time()
        load_before = os.getloadavg()[0]
        job = train_job(ws, "train", "mt-model", config)
        job.subscribe(lambda e: print(f"  {time.perf_counter() - fit_start:6.1f} s  {e.message}", flush=True)
                      if e.kind == "status" else None)
        job.result()
        fit_s, fit_cpu = time.perf_counter() - fit_start, time.process_time() - fit_cpu
        load_after = os.getloadavg()[0]
        rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        test_start = time.perf_counter()
        report = evaluate_anomaly(ws, "mt-model", "test", "all", write_back=False, keep_heatmaps=True)
        test_s = time.perf_counter() - test_start
        per_defect = pixel_auroc_per_defect(test, report.heatmaps, split)
        record = ws.model_store.record("mt-model")
        for line in report.lines():
            print(line)
        total = sum(share for _, share in per_defect.values())
        for defect, (value, share) in per_defect.items():
            print(f"pixel AUROC {defect:12s} {value:.3f}  ({share / total:.0%} of the defect pixels)")
        summary = {"image_auroc": round(report.auroc, 4), "image_aupr": round(report.aupr, 4),
                   "pixel_auroc": round(report.pixel_auroc, 4), "fit_s": round(fit_s, 1),
                   "fit_cpu_s": round(fit_cpu, 1), "load_average_fit": [round(load_before, 1), round(load_after, 1)],
                   "peak_rss_mb_before_fit": round(rss_before), "peak_rss_mb_after_fit": round(rss_fit),
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                   "pixel_auroc_per_defect": {k: round(v, 4) for k, (v, _) in per_defect.items()},
                   "test_s": round(test_s, 1), "prepare_s": round(prepared, 1), "import_s": round(import_s, 1),
                   "train_images": record["images"]["train"], "test_images": len(test),
                   "memory_bank": record["anomaly"].get("memory_bank"), "patches": record["anomaly"].get("patches"),
                   "layout": record["anomaly"].get("layout"), "segmenter": record["anomaly"].get("segmenter"),
                   "size": args.size, "architecture": config.architecture, "granularity": config.granularity,
                   "algorithm": config.algorithm, "pretrained": record["pretrained"], "seed": args.seed}
        print(json.dumps(summary))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
