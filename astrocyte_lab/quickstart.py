"""The manual's quick starts as thin scripts over the public API (the CLI, tutorials and tests share them).

Each returns the summary dict that ``astrocyte-lab quickstart MODULE`` prints as its last line:
``{"module", "dataset", "images", "model", "metrics", "package", "runtime": {"label", "score", "ms"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from astrocyte_lab import samples
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError

Log = Callable[[str], None]


def _fresh(ws: Workspace, dataset: str | None = None, model: str | None = None) -> None:
    """Quick-start names are owned by the quick start: an earlier run's dataset/model is replaced."""
    if dataset and dataset in ws.dataset_names():
        ws.delete_dataset(dataset)
    if model and ws.model_store.exists(model):
        ws.delete_model(model)


def classification(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Components sample: create the dataset, train, test on validation, export, predict with the runtime."""
    from astrocyte_lab.evaluation.classification import evaluate_classifier
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.export import export_package
    from astrocyte_lab.modules.classification.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["components"])["components"]
    name = "quickstart-components"
    _fresh(ws, name, name)
    dataset = ws.create_dataset(name, "classification", [NamedSet("components", [Location(
        source, use_folder_name=True)])], seed=0)
    log(f"dataset {dataset}")
    config = ClassificationConfig(epochs=6 if fast else 20, batch_size=16, learning_rate=2e-3, seed=0)
    job = train_job(ws, name, name, config)
    job.subscribe(lambda e: log(f"  epoch {e.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in e.values.items()
                                                                   if k != "epoch")) if e.kind == "epoch" else None)
    job.result()
    report = evaluate_classifier(ws, name, name, "validation")
    log(f"validation accuracy {report.accuracy:.3f}\n{report.confusion_frame()}")
    package = export_package(ws, name, ws.path / f"{name}.astromodel")
    predictor = load_package(package)
    sample_id = int(dataset.select(assigned="validation")[0])
    predictor.predict(dataset.image(sample_id))  # warm-up
    prediction = predictor.predict(dataset.image(sample_id))
    return {"module": "classification", "dataset": name, "images": len(dataset), "model": name,
            "metrics": {"accuracy": report.accuracy, "macro_f1": report.macro_f1},
            "package": str(package),
            "runtime": {"label": prediction.label, "score": prediction.score, "ms": prediction.ms}}


def continual(workspace: str | Path, fast: bool = False, log: Log = print, learn_per_class: int = 3) -> dict:
    """The manual's continual-learning tutorial on the components sample.

    Train on ceramic and black tantalum capacitors only; test on every component (yellow tantalum parts fall
    to Undefined or the wrong class, opto and resistor parts are unknown); learn a few images of each with
    the torch-free package; test again: every class is recognised.
    """
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.export import export_package
    from astrocyte_lab.modules.classification.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["components"])["components"]
    base, full, model = "quickstart-continual-base", "quickstart-continual-all", "quickstart-continual"
    _fresh(ws, base, model)
    _fresh(ws, full)
    ws.create_dataset(base, "classification", [NamedSet("known", [
        Location(source / "cap_ceramic", category="cap_ceramic"),
        Location(source / "cap_tantalum", category="cap_tantalum", name_filter="prefix", pattern="black")])], seed=0)
    everything = ws.create_dataset(full, "classification", [NamedSet("all", [Location(source, use_folder_name=True)])],
                                   seed=1)
    config = ClassificationConfig(epochs=5 if fast else 15, batch_size=16, learning_rate=2e-3, seed=0,
                                  continual=True, fast_training=True)
    train_job(ws, base, model, config).result()
    package = export_package(ws, model, ws.path / f"{model}.astromodel")
    predictor = load_package(package)
    table = everything.table
    before = _runtime_accuracy(predictor, everything, table)
    log(f"before learning: {before['per_class']}")
    rng = np.random.default_rng(0)
    taught: set[int] = set()
    for category, pick in (("cap_tantalum", table["name"].str.contains("yellow")),
                           ("opto", table["ground_truth"] == "opto"),
                           ("resistor", table["ground_truth"] == "resistor")):
        ids = rng.permutation(table.index[pick].to_numpy())[:learn_per_class]
        for image_id in ids:
            predictor.learn(everything.image(int(image_id)), category)
            taught.add(int(image_id))
    learned = predictor.save(ws.path / f"{model}-learned.astromodel")
    after = _runtime_accuracy(load_package(learned), everything, table.drop(index=list(taught)))
    log(f"after learning {len(taught)} images: {after['per_class']}")
    missing = [c for c in ("cap_ceramic", "cap_tantalum", "opto", "resistor") if after["per_class"].get(c, 0) < 0.5]
    if missing:
        raise AstrocyteError(f"continual learning did not recover {missing}: {after}")
    prediction = predictor.predict(everything.image(int(table.index[0])))
    return {"module": "continual", "dataset": full, "images": len(everything), "model": model,
            "metrics": {"accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
                        "recall_before": before["per_class"], "recall_after": after["per_class"],
                        "yellow_tantalum_before": before["yellow_tantalum"],
                        "yellow_tantalum_after": after["yellow_tantalum"],
                        "classes": list(load_package(learned).categories), "learned_images": len(taught)},
            "package": str(learned),
            "runtime": {"label": prediction.label, "score": prediction.score, "ms": prediction.ms}}


def _runtime_accuracy(predictor, dataset, rows) -> dict:
    """Accuracy and per-class recall of a package on dataset rows, plus the yellow tantalum parts alone."""
    hits: dict[str, list[bool]] = {}
    yellow: list[bool] = []
    for image_id, truth, name in zip(rows.index, rows["ground_truth"], rows["name"], strict=True):
        label = predictor.predict(dataset.image(int(image_id))).label
        hits.setdefault(truth, []).append(label == truth)
        if "yellow" in name:
            yellow.append(label == truth)
    every = [h for v in hits.values() for h in v]
    return {"accuracy": float(np.mean(every)), "per_class": {k: round(float(np.mean(v)), 3) for k, v in hits.items()},
            "yellow_tantalum": round(float(np.mean(yellow)), 3) if yellow else None}


def segmentation(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Scratches sample: pixel-value masks -> named categories, train MANet, IoU test, export, runtime."""
    from astrocyte_lab.data.sources import segmentation_set
    from astrocyte_lab.evaluation.segmentation import evaluate_segmenter
    from astrocyte_lab.modules.segmentation.config import SegmentationConfig
    from astrocyte_lab.modules.segmentation.export import export_package
    from astrocyte_lab.modules.segmentation.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["scratches"])["scratches"]
    name = "quickstart-scratches"
    _fresh(ws, name, name)
    dataset = ws.create_dataset(name, "segmentation", [segmentation_set("surface", source / "images",
                                                                        source / "masks")], seed=0)
    for value, label in (("0", "background"), ("1", "scratch"), ("2", "spot")):
        dataset.rename_category(value, label)
    dataset.save()
    log(f"dataset {dataset}")
    config = SegmentationConfig(epochs=8 if fast else 25, batch_size=4, learning_rate=2e-3, seed=0)
    job = train_job(ws, name, name, config)
    job.subscribe(lambda e: log(f"  epoch {e.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in e.values.items()
                                                                   if k != "epoch")) if e.kind == "epoch" else None)
    job.result()
    report = evaluate_segmenter(ws, name, name, "validation", keep_masks=False)
    log(f"validation IoU {report.iou}, mean IoU {report.mean_iou:.3f}")
    package = export_package(ws, name, ws.path / f"{name}.astromodel")
    predictor = load_package(package)
    image = dataset.image(int(dataset.select(assigned="validation")[0]))
    predictor.predict(image)  # warm-up
    prediction = predictor.predict(image)
    return {"module": "segmentation", "dataset": name, "images": len(dataset), "model": name,
            "metrics": {"mean_iou": report.mean_iou, "mean_iou_defects": report.mean_iou_defects,
                        "iou": report.iou, "accuracy": report.accuracy},
            "package": str(package),
            "runtime": {"label": prediction.label, "score": prediction.score, "ms": prediction.ms}}


QUICKSTARTS: dict[str, Callable[..., dict] | str] = {
    "classification": classification,
    "continual": continual,
    "segmentation": segmentation,
    # module quick starts that live beside their module, imported on use ("package.module:function")
    "anomaly": "astrocyte_lab.modules.anomaly.quickstart:anomaly",
    "detection": "astrocyte_lab.modules.detection.quickstart:detection",
    "detection-rotated": "astrocyte_lab.modules.detection.quickstart:detection_rotated",
    "detection-selftrain": "astrocyte_lab.modules.detection.quickstart:detection_selftrain",
    "detection-tiling": "astrocyte_lab.modules.detection.quickstart:detection_tiling",
}


def quickstart(name: str) -> Callable[..., dict]:
    """The quick-start function called ``name`` (see :data:`QUICKSTARTS`)."""
    import importlib

    if name not in QUICKSTARTS:
        raise AstrocyteError(f"no quick start {name!r}; choose from {sorted(QUICKSTARTS)}")
    target = QUICKSTARTS[name]
    if callable(target):
        return target
    module, _, function = target.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        raise AstrocyteError(f"the {name} quick start is not available in this astrocyte-lab yet") from exc
