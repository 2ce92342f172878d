"""``benchmarks/suite.py --quick`` end to end on a stand-in for the shared datasets (never the real ones): the
product run and every library-alone baseline give real figures, in the JSON and in the printed table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "suite.py"
DATASETS = ("magnetic_tile", "kolektorsdd")


def run_suite(tmp_path: Path, *args: str) -> tuple[dict, str]:
    """The suite as a user runs it; returns its JSON report and the printed table."""
    report = tmp_path / "suite.json"
    done = subprocess.run([sys.executable, str(SUITE), *args, "--json", str(report)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(report.read_text()), done.stdout


def assert_figures(row: dict, metrics: tuple[str, str], lowest: float) -> None:
    for name in metrics:
        value = row["metrics"][name]
        assert value is not None and math.isfinite(value) and lowest <= value <= 1.0, row
    assert row["fit_s"] > 0 and row["ms_per_image"] > 0 and row["peak_rss_mb"] > 100, row


def test_anomaly_quick_runs_the_product_and_both_baselines_on_every_dataset(standin: Path, tmp_path: Path) -> None:
    result, table = run_suite(tmp_path, "--module", "anomaly", "--quick", "--seeds", "0", "--size", "64",
                              "--data", str(standin))
    runs = ("product default", "anomalib PatchCore", "anomalib PaDiM")
    assert [(r["dataset"], r["run"]) for r in result["rows"]] == [(d, r) for d in DATASETS for r in runs]
    for row in result["rows"]:
        assert_figures(row, ("image_auroc", "pixel_auroc"), 0.6)  # the metal sample's defects are plain to see
    assert [(m["dataset"], m["run"]) for m in result["means"]] == [("mean of 2", r) for r in runs]
    for row in result["means"]:
        assert_figures(row, ("image_auroc", "pixel_auroc"), 0.6)
    protocol = result["protocol"]
    assert protocol["magnetic_tile"]["input_wh"] == [64, 64]  # tiles of many aspects: a square
    assert protocol["kolektorsdd"]["input_wh"] == [32, 64]  # tall images keep their aspect
    assert all(p["train_images"] == 24 and p["test_images"] == 16 for p in protocol.values())
    assert "| mean of 2 | all | product default |" in table and "| kolektorsdd | 0 | anomalib PaDiM |" in table


def test_config_overrides_reach_the_product_and_name_its_row(standin: Path, tmp_path: Path) -> None:
    result, _ = run_suite(tmp_path, "--module", "segmentation", "--quick", "--seeds", "1", "--size", "64",
                          "--datasets", "kolektorsdd", "--data", str(standin), "--config", "epochs=1")
    assert [r["run"] for r in result["rows"]] == ["product default epochs=1", "smp Unet (plain loop)"]
    assert result["config"] == {"epochs": 1} and result["rows"][0]["seed"] == 1
    for row in result["rows"]:
        assert_figures(row, ("defect_iou", "mean_iou"), 0.0)


def test_unknown_config_fields_are_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SUITE), "--module", "anomaly", "--config", "layout=false",
                           "--data", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "layout" in done.stderr and "Extra inputs" in done.stderr


def test_modules_not_yet_in_the_suite_print_their_rows(tmp_path: Path) -> None:
    result, table = run_suite(tmp_path, "--module", "detection")
    assert [(r["dataset"], r["note"]) for r in result["rows"]] == [("deeppcb", "not yet")]
    assert "deeppcb" in table and "not yet" in table
