"""The manual's anomaly detection quick start on the ``metal`` sample, over the public API.

Normal (``good/``) and Anomaly (``bad/``, with defect masks) images form one dataset; every Anomaly image is
kept for validation (anomaly models learn from Normal images only) and the Normal ones are split 80 / 20.
Pixel-Level PatchCore is fitted with the defaults, tested on the validation images (AUROC, AUPR, ROC
threshold, pixel AUROC), exported, and the package scores one defective image without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from astrocyte_lab import samples
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace


def anomaly(workspace: str | Path, fast: bool = False, log: Callable[[str], None] = print) -> dict:
    """Metal sample: dataset, fit, test, export, runtime; returns the quick-start summary dict."""
    from astrocyte_lab.evaluation.anomaly import evaluate_anomaly
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import train_job
    from astrocyte_lab.runtime import load_package

    ws = Workspace(workspace)
    source = samples.generate(ws.path / "samples", ["metal"])["metal"]
    name = "quickstart-metal"
    if name in ws.dataset_names():  # the quick start owns its names: an earlier run's copies are replaced
        ws.delete_dataset(name)
    if ws.model_store.exists(name):
        ws.delete_model(name)
    dataset = ws.create_dataset(name, "anomaly", [
        NamedSet("good", [Location(source / "good", category="Normal")]),
        NamedSet("bad", [Location(source / "bad", category="Anomaly")], masks=Location(source / "masks"))], seed=0)
    dataset.assign_set(dataset.select(ground_truth="Anomaly"), "validation")
    dataset.save()
    log(f"dataset {dataset}")
    config = AnomalyConfig(seed=0, memory_bank_size=2048 if fast else 8192)
    job = train_job(ws, name, name, config)
    job.subscribe(lambda e: log(f"  {e.message}") if e.kind == "status" else None)
    job.result()
    report = evaluate_anomaly(ws, name, name, "validation")
    for line in report.lines():
        log(line)
    package = export_package(ws, name, ws.path / f"{name}.astromodel")
    predictor = load_package(package)
    image = dataset.image(int(dataset.select(ground_truth="Anomaly")[0]))
    predictor.predict(image)  # warm-up
    prediction = predictor.predict(image)
    return {"module": "anomaly", "dataset": name, "images": len(dataset), "model": name,
            "metrics": report.summary(), "package": str(package),
            "runtime": {"label": prediction.label, "score": prediction.score, "ms": prediction.ms}}
