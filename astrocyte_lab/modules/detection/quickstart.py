"""The manual's object detection quick starts on the generated ``hardware`` / ``wood`` samples.

Each returns the summary dict that ``astrocyte-lab quickstart detection[-rotated|-selftrain|-tiling]`` prints
as its last line: ``{"module", "dataset", "images", "model", "metrics", "package", "runtime"}`` with
``metrics`` holding ``mAP`` (IoU >= 0.5), ``mAP_50_95`` and ``ap`` per class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from astrocyte_lab import samples
from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError

Log = Callable[[str], None]


def _fresh(ws: Workspace, dataset: str | None = None, models: tuple[str, ...] = ()) -> None:
    if dataset and dataset in ws.dataset_names():
        ws.delete_dataset(dataset)
    for model in models:
        if ws.model_store.exists(model):
            ws.delete_model(model)


def _text_database(folder: Path):
    from astrocyte_lab.formats import TextDatabase, TextFormat

    return TextDatabase(TextFormat(path=folder / "labels", image_folder=folder / "images",
                                   columns=["class", "x1", "y1", "x2", "y2"], per_image=True, separator="tab"))


def _log_epochs(log: Log):
    def show(event) -> None:
        if event.kind == "epoch":
            log(f"  epoch {event.epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in event.values.items()
                                                       if k not in ("epoch", "lr")))
        elif event.kind == "status":
            log(f"  {event.message}")
    return show


def _train_test_export(ws: Workspace, dataset, name: str, config, log: Log, image_id: int | None = None,
                       labelled_only: bool = False) -> dict:
    from astrocyte_lab.evaluation.detection import evaluate_detector
    from astrocyte_lab.modules.detection.export import export_package
    from astrocyte_lab.modules.detection.trainer import train_job
    from astrocyte_lab.runtime import load_package

    job = train_job(ws, dataset.name, name, config)
    job.subscribe(_log_epochs(log))
    job.result()
    subset: str | list[int] = "validation"
    if labelled_only:  # images nobody labelled would count every detection on them as a false positive
        table = ws.dataset(dataset.name).table
        subset = [int(i) for i in table.index[(table["assigned"] == "validation") & (table["n_ground_truth"] > 0)]]
        log(f"testing the {len(subset)} labelled validation images")
    report = evaluate_detector(ws, name, dataset.name, subset)
    for line in report.lines():
        log(line)
    package = export_package(ws, name, ws.path / f"{name}.astromodel")
    predictor = load_package(package)
    dataset = ws.dataset(dataset.name)
    if image_id is None:
        image_id = int(dataset.select(assigned="validation")[0])
    image = dataset.image(image_id)
    predictor.predict(image)  # warm-up
    prediction = predictor.predict(image)
    log(f"package: {len(prediction)} objects in image {image_id}, best {prediction.label} "
        f"{prediction.score:.2f}, {prediction.ms:.1f} ms")
    return {"module": "detection", "dataset": dataset.name, "images": len(dataset), "model": name,
            "metrics": {"mAP": report.mAP, "mAP_50_95": report.mAP_50_95, "ap": report.ap,
                        "precision": report.precision, "recall": report.recall},
            "package": str(package),
            "runtime": {"label": prediction.label, "score": prediction.score, "ms": prediction.ms,
                        "objects": len(prediction)}}


def _config(fast: bool, **fields):
    from astrocyte_lab.modules.detection.config import DetectionConfig

    base = dict(architecture="nano", epochs=30 if fast else 80, batch_size=4, optimizer="adam", learning_rate=0.002,
                seed=0, pretrained=False, region_size=(288, 224) if fast else None)
    return DetectionConfig(**{**base, **fields})


def detection(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Hardware sample, tab-separated X1 Y1 X2 Y2 boxes: train a nano detector, test (mAP), export, run."""
    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["hardware"])["hardware"]
    name = "quickstart-hardware"
    _fresh(ws, name, (name,))
    dataset = ws.create_dataset(name, "detection", [DatabaseSet("labels", _text_database(source))], seed=0)
    log(f"dataset {dataset}")
    return _train_test_export(ws, dataset, name, _config(fast), log)


def detection_rotated(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Hardware sample with Pascal VOC rotated boxes (robndbox): an oriented-box (OBB) detector end to end."""
    from astrocyte_lab.formats import VocDatabase

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["hardware_rotated"])["hardware_rotated"]
    name = "quickstart-hardware-rotated"
    _fresh(ws, name, (name,))
    dataset = ws.create_dataset(name, "detection", [DatabaseSet("annotations", VocDatabase(
        source / "Annotations", source / "images"))], seed=0)
    log(f"dataset {dataset}")
    result = _train_test_export(ws, dataset, name, _config(fast, box_type="rotated"), log)
    result["module"] = "detection-rotated"
    return result


def detection_selftrain(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Hardware scenes of which 40 of 100 are labelled: teacher, pseudo labels (saved, flagged), student."""
    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["hardware_partial"])["hardware_partial"]
    name = "quickstart-selftrain"
    _fresh(ws, name, (name,))
    dataset = ws.create_dataset(name, "detection", [
        NamedSet("unlabelled", [Location(source / "images")]),
        DatabaseSet("labelled", _text_database(source))], seed=0)
    log(f"dataset {dataset}")
    config = _config(fast, self_training=True, epochs=20 if fast else 60, teacher_epochs=80)
    result = _train_test_export(ws, dataset, name, config, log, labelled_only=True)
    dataset = ws.dataset(name)
    table = dataset.table
    pseudo_images = int((table["n_pseudo"] > 0).sum())
    if pseudo_images == 0:
        raise AstrocyteError("self-training saved no pseudo label")
    result["module"] = "detection-selftrain"
    result["metrics"].update({"pseudo_labelled_images": pseudo_images, "pseudo_labels": int(table["n_pseudo"].sum()),
                              "labelled_images": int((table["n_ground_truth"] > 0).sum())})
    return result


def detection_tiling(workspace: str | Path, fast: bool = False, log: Log = print) -> dict:
    """Wood boards (1536 x 1024) with 10-30 px knots: a whole-image model against a tiled one (512 tiles)."""
    from astrocyte_lab.evaluation.detection import evaluate_detector

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["wood"])["wood"]
    name, whole = "quickstart-wood", "quickstart-wood-whole"
    _fresh(ws, name, (name, whole))
    dataset = ws.create_dataset(name, "detection", [DatabaseSet("labels", _text_database(source))], seed=0)
    log(f"dataset {dataset}")
    epochs = 15 if fast else 60
    from astrocyte_lab.modules.detection.trainer import train_job

    log("whole image shrunk to 512 x 352:")
    job = train_job(ws, name, whole, _config(fast, epochs=epochs, region_size=(512, 352), batch_size=4))
    job.subscribe(_log_epochs(log))
    job.result()
    baseline = evaluate_detector(ws, whole, name, "validation", write_back=False)
    log(f"whole-image model: mAP {baseline.mAP:.3f}")
    log("512 x 512 tiles at full resolution:")
    result = _train_test_export(ws, dataset, name, _config(fast, epochs=epochs, tiling=True, tile_size=(512, 512),
                                                            region_size=None, batch_size=8), log)
    result["module"] = "detection-tiling"
    result["metrics"].update({"whole_image_mAP": baseline.mAP, "whole_image_ap": baseline.ap})
    return result
