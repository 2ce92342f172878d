"""CPU inference latency: an exported ``.astromodel`` package beside PyTorch eager on the same network.

Builds a small grey classifier at 768 x 512 x 1 (width 768, height 512) the way a user would: a temporary
dataset of a few generated 768x512 grey PNGs in two categories, one epoch of training (pretrained backbone
when its weights are available), export to a package. Then, on one 768x512 uint8 image, it times every row
of ``ROWS`` (median and p90 of ``--runs`` calls after ``--warmup`` calls, wall clock; the calls are
spread over ``--passes`` passes through the rows, so a change of machine load reaches every row alike):

  package   - ``Predictor.predict(image)``: runtime preprocessing + onnxruntime + softmax (what a deployment pays)
  onnx      - ``Predictor.run(tensor)`` on an already preprocessed tensor: onnxruntime alone
  preproc   - ``spec.to_tensor(image)`` alone: the preprocessing share
  eager     - ``spec.to_tensor(image)`` + ``net(tensor)`` under ``torch.no_grad()``: PyTorch eager, same model,
              same preprocessing

and prints the ratio eager / package beside the vendor's reference figure. onnxruntime and torch use the
same number of intra-op threads (``--threads``, default 2). ``--module`` times another module's model
instead: its case is built by ``benchmarks/inference_<module>.py`` (see ``latency_case.py``), e.g. the
segmentation row: a 2048x2048x1 image segmented at 1024x1024x1.

    .venv/bin/python benchmarks/inference.py [--module segmentation] [--architecture resnet18] [--runs 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from latency_case import Case  # noqa: E402 - the scripts folder is not a package

MODULE_CASES = ("classification", "anomaly", "detection", "segmentation")

WIDTH, HEIGHT = 768, 512
VENDOR_REFERENCE_MS = 31.9  # the vendor's published figure, 768x512x1, 16-core Intel i9-12900K
PACKAGE_ROW = "package: Predictor.predict(uint8 image)"
EAGER_ROW = "PyTorch eager: to_tensor + net(tensor)"
MARKER = ".astro-benchmark"  # a --workdir is only ever deleted when it holds this file


@dataclass
class Bench:
    """What the row functions share: the test image, the package predictor, the torch network and its spec."""

    image: np.ndarray
    predictor: object
    net: object
    spec: object
    threads: int
    tensor: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.tensor = self.spec.to_tensor(self.image)


def write_images(folder: Path, per_class: int) -> None:
    """Grey 768x512 PNGs in two category folders: smooth texture, one class with a dark scratch."""
    rng = np.random.default_rng(0)
    for category in ("good", "scratch"):
        (folder / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = cv2.resize(rng.normal(128, 30, (32, 48)).astype(np.float32), (WIDTH, HEIGHT),
                              interpolation=cv2.INTER_CUBIC)
            image = base + rng.normal(0, 5, (HEIGHT, WIDTH))
            if category == "scratch":
                x, y = int(rng.integers(100, WIDTH - 200)), int(rng.integers(100, HEIGHT - 100))
                cv2.line(image, (x, y), (x + 150, y + int(rng.integers(-60, 60))), 30.0, 4)
            cv2.imwrite(str(folder / category / f"{category}_{i:02d}.png"), np.clip(image, 0, 255).astype(np.uint8))


def build(workdir: Path, architecture: str, per_class: int) -> tuple[Path, object, object, dict, float]:
    """Dataset -> 1-epoch training -> package; returns (package, net, spec, record, seconds)."""
    from astrocyte_lab import Location, NamedSet, Workspace
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.export import export_package
    from astrocyte_lab.modules.classification.trainer import load_network, train_job

    start = time.perf_counter()
    write_images(workdir / "images", per_class)
    ws = Workspace(workdir / "workspace")
    name = "latency"
    dataset = ws.create_dataset(name, "classification", [NamedSet("synthetic", [
        Location(workdir / "images", use_folder_name=True)])], seed=0)
    g = dataset.geometry
    assert (g.width, g.height, g.channels) == (WIDTH, HEIGHT, 1), g
    config = ClassificationConfig(architecture=architecture, epochs=1, batch_size=2, pretrained=True,
                                  region_size=None, seed=0)
    train_job(ws, name, name, config).result()
    package = export_package(ws, name, workdir / f"{name}.astromodel")
    net, record, spec = load_network(ws, name)
    return package, net, spec, record, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ rows

Row = Callable[[Bench], tuple[str, Callable[[], object]] | None]


def row_package(b: Bench) -> tuple[str, Callable[[], object]]:
    return PACKAGE_ROW, lambda: b.predictor.predict(b.image)


def row_onnx(b: Bench) -> tuple[str, Callable[[], object]]:
    batch = b.tensor[None]
    return "  onnxruntime alone (preprocessed tensor)", lambda: b.predictor.run(batch)


def row_preprocess(b: Bench) -> tuple[str, Callable[[], object]]:
    return "  preprocessing alone (spec.to_tensor)", lambda: b.spec.to_tensor(b.image)


def row_eager(b: Bench) -> tuple[str, Callable[[], object]]:
    import torch

    def call() -> object:
        with torch.no_grad():
            return b.net(torch.from_numpy(b.spec.to_tensor(b.image))[None])

    return EAGER_ROW, call


ROWS: list[Row] = [row_package, row_onnx, row_preprocess, row_eager]


def measure(calls: list[Callable[[], object]], warmup: int, runs: int, passes: int) -> list[list[float]]:
    """Milliseconds per call of every row. The runs are split into ``passes`` blocks; each pass times every
    row in turn (a block of consecutive calls after a short warm-up), so a change in machine load during the
    run reaches every row, while a row never runs right after another library's thread pool was busy
    (strict call-by-call interleaving slowed torch by ~20 % here: each pool's spinning threads steal from
    the other)."""
    times: list[list[float]] = [[] for _ in calls]
    per_pass = [runs // passes + (1 if i < runs % passes else 0) for i in range(passes)]
    for index, count in enumerate(per_pass):
        for call, row_times in zip(calls, times, strict=True):
            for _ in range(warmup if index == 0 else max(2, warmup // 2)):
                call()
            for _ in range(count):
                start = time.perf_counter()
                call()
                row_times.append((time.perf_counter() - start) * 1000.0)
    return times


def fresh_workdir(path: Path | None, prefix: str, parser: argparse.ArgumentParser) -> Path:
    """An empty work folder: a new temporary one, or ``path`` (emptied only if an earlier run made it)."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    elif path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            parser.error(f"--workdir {path} is not empty and was not made by a benchmark: choose another folder")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).touch()
    return path


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def classification_case(workdir: Path, threads: int, architecture: str, per_class: int) -> Case:
    """The classification rows: the 768x512x1 classifier built by :func:`build`."""
    import torch

    from astrocyte_lab.runtime import load_package

    package, net, spec, record, build_s = build(workdir, architecture, per_class)
    predictor = load_package(package, threads=threads)
    image = np.asarray(cv2.imread(str(sorted((workdir / "images" / "scratch").glob("*.png"))[0]),
                                  cv2.IMREAD_GRAYSCALE))
    assert image.shape == (HEIGHT, WIDTH) and image.dtype == np.uint8
    bench = Bench(image, predictor, net.eval(), spec, threads)
    with torch.no_grad():
        eager_logits = net(torch.from_numpy(bench.tensor)[None]).numpy()[0]
    package_logits = predictor.run(bench.tensor[None])["logits"][0]
    agreement = float(np.abs(eager_logits - package_logits).max())
    rows = [made for made in (row(bench) for row in ROWS) if made is not None]
    details = [f"model: 1 epoch ({record['images']['train']} training + {record['images']['validation']} "
               f"validation images), pretrained weights "
               f"{'loaded' if record['pretrained'] else 'NOT available (random init)'}; build + train + export "
               f"{build_s:.1f} s; max |logit eager - package| = {agreement:.2e}"]
    return Case(f"{architecture} classifier at {spec.width}x{spec.height}x{spec.channels} (width x height x "
                "channels), batch 1", rows, PACKAGE_ROW, EAGER_ROW, VENDOR_REFERENCE_MS,
                "16-core Intel i9-12900K, 768x512x1", details)


def module_case(module: str, workdir: Path, threads: int) -> Case:
    """Another module's rows, from ``benchmarks/inference_<module>.py`` (see ``latency_case.py``)."""
    path = Path(__file__).with_name(f"inference_{module}.py")
    if not path.exists():
        raise SystemExit(f"no latency case for {module!r}: {path.name} is missing")
    spec = importlib.util.spec_from_file_location(f"inference_{module}", path)
    assert spec is not None and spec.loader is not None
    case_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(case_module)
    return case_module.build_case(workdir, threads)


def main() -> None:
    from astrocyte_lab.modules.classification.registry import ARCHITECTURES, DEFAULT_ARCHITECTURE

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", default="classification", choices=MODULE_CASES,
                        help="which module's model to time (default classification)")
    parser.add_argument("--architecture", default=DEFAULT_ARCHITECTURE, choices=sorted(ARCHITECTURES),
                        help="classification only")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per row (at least 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per row before its first pass")
    parser.add_argument("--passes", type=int, default=3, help="the runs are split into this many passes")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for onnxruntime and torch")
    parser.add_argument("--images-per-class", type=int, default=3, help="classification only")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="kept afterwards (emptied first if an earlier run made it); default: a temporary folder")
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    if not 1 <= args.passes <= args.runs:
        parser.error("--passes must be between 1 and --runs")
    load_before = os.getloadavg()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    workdir = fresh_workdir(args.workdir, "astro-latency-", parser)
    try:
        if args.module == "classification":
            case = classification_case(workdir, args.threads, args.architecture, args.images_per_class)
        else:
            case = module_case(args.module, workdir, args.threads)
        times = measure([call for _, call in case.rows], args.warmup, args.runs, args.passes)
        results = [(label, statistics.median(t), p90(t)) for (label, _), t in zip(case.rows, times, strict=True)]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    by_label = {label: (med, hi) for label, med, hi in results}
    package_ms = by_label[case.package_row][0]
    eager_ms = by_label[case.eager_row][0]
    load_after = os.getloadavg()
    print(f"CPU inference latency, {case.title}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (this benchmark itself "
          f"adds up to {args.threads})")
    print(f"threads: onnxruntime intra-op {args.threads} (inter-op 1), torch {torch.get_num_threads()} "
          f"(inter-op {torch.get_num_interop_threads()}); onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__}")
    for line in case.details:
        print(line)
    print(f"timing: {args.runs} calls per row in {args.passes} passes over the rows, {args.warmup} warm-up calls "
          "before the first pass, wall clock per call\n")
    width = max(len(label) for label, _, _ in results)
    print(f"{'row':<{width}}  {'median ms':>10}  {'p90 ms':>8}")
    for label, med, hi in results:
        print(f"{label:<{width}}  {med:>10.1f}  {hi:>8.1f}")
    print(f"\nratio eager / package (median): {eager_ms / package_ms:.2f}x")
    print(f"vendor reference: {case.vendor_ms} ms ({case.vendor_text}); "
          f"package here / reference: {package_ms / case.vendor_ms:.2f}x")


if __name__ == "__main__":
    main()
