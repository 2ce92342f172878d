"""Auto train vs the default manual configuration on a sample dataset, same epochs per training.

    .venv/bin/python benchmarks/auto_train.py classification --trials 6 --epochs 6
    .venv/bin/python benchmarks/auto_train.py segmentation --trials 6 --epochs 5 --region-size 128x128

Trains the module's default config once (seed 0), then runs auto train with the same config as the base
(its searched values are the first trial; early stopping off so every trial has the same epoch budget),
tests both models on the validation images and prints one JSON line per model and a trial table. The
validation images also choose the best trial, so the auto figure is an optimistic estimate. Run again with
the same ``--workspace`` after an interruption: the manual model is kept and the stored study resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from astrocyte_lab import Location, NamedSet, Workspace, samples, segmentation_set
from astrocyte_lab.training.auto import auto_train, trials_frame


def build(ws: Workspace, module: str) -> str:
    if module == "classification":
        source = samples.generate(ws.path / "samples", ["components"])["components"]
        ws.create_dataset("components", "classification",
                          [NamedSet("components", [Location(source, use_folder_name=True)])], seed=0)
        return "components"
    source = samples.generate(ws.path / "samples", ["scratches"])["scratches"]
    dataset = ws.create_dataset("scratches", "segmentation",
                                [segmentation_set("surface", source / "images", source / "masks")], seed=0)
    for value, label in (("0", "background"), ("1", "scratch"), ("2", "spot")):
        dataset.rename_category(value, label)
    dataset.save()
    return "scratches"


def test(ws: Workspace, module: str, model: str, dataset: str) -> dict:
    if module == "classification":
        from astrocyte_lab.evaluation.classification import evaluate_classifier

        report = evaluate_classifier(ws, model, dataset, "validation")
        return {"accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4)}
    from astrocyte_lab.evaluation.segmentation import evaluate_segmenter

    report = evaluate_segmenter(ws, model, dataset, "validation", keep_masks=False)
    return {"mean_iou": round(report.mean_iou, 4), "mean_iou_defects": round(report.mean_iou_defects, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=["classification", "segmentation"])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--region-size", default=None, help="WxH (default: the dataset size)")
    parser.add_argument("--devices", default="cpu", help="comma-separated, one trial per entry at a time")
    parser.add_argument("--workspace", default=None, help="default: a temporary folder")
    parser.add_argument("--random-init", action="store_true", help="no pretrained weights")
    args = parser.parse_args()
    from astrocyte_lab.modules.registry import entry

    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="auto-bench-"))
    again = ws.model_store.exists("manual")  # an earlier run in this workspace: keep its manual model and study
    dataset = "components" if args.module == "classification" else "scratches"
    if not again:
        build(ws, args.module)
    options = {"epochs": args.epochs, "seed": 0, "pretrained": not args.random_init}
    if args.region_size:
        options["region_size"] = tuple(int(v) for v in args.region_size.lower().split("x"))
    config = entry(args.module).load("config")(**options)
    start = time.perf_counter()
    if not again:
        entry(args.module).load("train_job")(ws, dataset, "manual", config).result()
    manual_s = time.perf_counter() - start if not again else ws.model_store.record("manual")["duration_s"]
    start = time.perf_counter()
    job = auto_train(ws, dataset, "auto", config, intensity=args.trials, devices=args.devices.split(","),
                     early_stopping=False)
    job.subscribe(lambda e: print(f"trial {e.values['trial']:.0f}: {e.message} {e.values['value']:.4f} "
                                  f"(best {e.values['best']:.4f})", file=sys.stderr, flush=True)
                  if e.kind == "trial" else None)
    job.result()
    auto_s = time.perf_counter() - start
    for name, seconds in (("manual", manual_s), ("auto", auto_s)):
        record = ws.model_store.record(name)
        print(json.dumps({"model": name, "module": args.module, "epochs": args.epochs, "trials": args.trials
                          if name == "auto" else 1, "seconds": round(seconds, 1),
                          "recorded": {k: round(v, 4) for k, v in record["metrics"].items()},
                          "validation_test": test(ws, args.module, name, dataset)}))
    frame = trials_frame(ws, "auto")
    columns = ["number", "state", "value", "duration_s"] + [c for c in frame.columns if c.startswith("param_")]
    print(frame[columns].to_string(index=False))
    print(f"workspace: {ws.path}", file=sys.stderr)


if __name__ == "__main__":
    main()
