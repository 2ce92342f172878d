"""Anomaly detection latency case for ``benchmarks/inference.py --module anomaly`` (see ``latency_case.py``).

The vendor's anomaly row: a 2592 x 2048 x 1 image resized to a 1024 x 1024 x 1 network input, score and
heatmap. :func:`build_case` builds a Pixel-Level PatchCore model the way a user would, inside ``workdir``:
ten generated 2592x2048 grey Normal images (enough for the layout term and the defect segmenter), region size
1024 x 1024, default settings (EfficientNet-Lite0 backbone, bundled weights, 1 % coreset), export to a
package. Rows, each on one 2592x2048 uint8 image:

  package   - ``Predictor.predict(image)``: preprocessing, onnxruntime (features, memory-bank distances, layout
              and segmenter terms, anomaly map, score), heatmap resized back to 2592x2048 (what a deployment pays)
  onnx      - ``Predictor.run(tensor)`` on the preprocessed 1024x1024 tensor: onnxruntime alone
  preproc   - ``spec.to_tensor(image)`` alone
  eager     - the same prediction with the PyTorch model instead of onnxruntime (same numpy pre- and
              post-processing, ``torch.no_grad()``)

Standalone: ``.venv/bin/python benchmarks/inference_anomaly.py [--threads 2] [--runs 20]`` prints the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_case import Case  # noqa: E402

WIDTH, HEIGHT = 2592, 2048
INPUT = 1024
VENDOR_MS = 275.0
VENDOR_TEXT = "16-core Intel i9-12900K, 2592x2048x1 image, 1024x1024x1 input (vendor benchmark table)"
PACKAGE_ROW = "package: Predictor.predict(uint8 image) -> score + heatmap"
EAGER_ROW = "PyTorch eager: same pre/post-processing, torch model"


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    """Grey 2592x2048 PNGs of a smooth brushed texture (Normal); the last one gets a dark scratch."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = cv2.resize(rng.normal(128, 20, (64, 80)).astype(np.float32), (WIDTH, HEIGHT),
                          interpolation=cv2.INTER_CUBIC)
        grain = cv2.resize(rng.normal(0, 8, (HEIGHT, 64)).astype(np.float32), (WIDTH, HEIGHT))
        image = base + grain + rng.normal(0, 3, (HEIGHT, WIDTH))
        if i == count - 1:
            cv2.line(image, (900, 700), (1500, 900), 40.0, 9)
        cv2.imwrite(str(folder / f"metal_{i:02d}.png"), np.clip(image, 0, 255).astype(np.uint8))


def build_case(workdir: Path, threads: int, normal_images: int = 10) -> Case:
    import torch

    from astrocyte_lab import Location, NamedSet, Workspace
    from astrocyte_lab.modules.anomaly.config import AnomalyConfig
    from astrocyte_lab.modules.anomaly.export import export_package
    from astrocyte_lab.modules.anomaly.trainer import load_network, torch_scorer, train_job
    from astrocyte_lab.runtime import load_package

    torch.set_num_threads(threads)
    start = time.perf_counter()
    write_images(workdir / "images", normal_images + 1)
    ws = Workspace(workdir / "workspace")
    dataset = ws.create_dataset("latency", "anomaly", [NamedSet("metal", [
        Location(workdir / "images", category="Normal")])], train_ratio=1.0, seed=0)
    g = dataset.geometry
    assert (g.width, g.height, g.channels) == (WIDTH, HEIGHT, 1), g
    test_id = int(dataset.select(name_contains=f"metal_{normal_images:02d}")[0])
    dataset.remove([test_id])  # the scratched image is only for timing
    dataset.save()
    config = AnomalyConfig(region_size=(INPUT, INPUT), seed=0, batch_size=2)
    train_job(ws, "latency", "latency", config).result()
    fit_s = time.perf_counter() - start
    package = export_package(ws, "latency", workdir / "latency.astromodel")
    predictor = load_package(package, threads=threads)
    net, record, spec = load_network(ws, "latency")
    eager = torch_scorer(net, spec, record["anomaly"])
    image = cv2.imread(str(workdir / "images" / f"metal_{normal_images:02d}.png"), cv2.IMREAD_GRAYSCALE)
    tensor = spec.to_tensor(image)
    got, want = predictor.predict(image), eager.predict([image], 1)[0]
    heat = float(np.abs(got.heatmap - want.heatmap).max())
    rows = [
        (PACKAGE_ROW, lambda: predictor.predict(image)),
        ("  onnxruntime alone (preprocessed tensor)", lambda: predictor.run(tensor[None])),
        ("  preprocessing alone (spec.to_tensor)", lambda: spec.to_tensor(image)),
        (EAGER_ROW, lambda: eager.predict([image], 1)),
    ]
    details = [
        f"model: PatchCore {record['architecture']} ({'pretrained' if record['pretrained'] else 'random init'}), "
        f"{record['images']['train']} Normal images, memory bank {record['anomaly']['memory_bank']} of "
        f"{record['anomaly']['patches']} patches; dataset + fit {fit_s:.1f} s",
        f"agreement: score package {got.score:.4f} vs eager {want.score:.4f}, max |heatmap difference| {heat:.2e}; "
        f"heatmap {got.heatmap.shape[1]}x{got.heatmap.shape[0]}",
    ]
    return Case(f"PatchCore lite0 anomaly detector, {WIDTH}x{HEIGHT}x1 image to {INPUT}x{INPUT}x1 input, batch 1",
                rows, PACKAGE_ROW, EAGER_ROW, VENDOR_MS, VENDOR_TEXT, details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="astro-anomaly-latency-") as folder:
        case = build_case(Path(folder), args.threads)
        print(case.title)
        for line in case.details:
            print(line)
        results = []
        for label, call in case.rows:  # one block of calls per row (see inference.py's measure())
            for _ in range(args.warmup):
                call()
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1000.0)
            results.append((label, statistics.median(times), float(np.percentile(times, 90))))
    width = max(len(label) for label, _, _ in results)
    print(f"{'row':<{width}}  {'median ms':>10}  {'p90 ms':>8}")
    for label, med, hi in results:
        print(f"{label:<{width}}  {med:>10.1f}  {hi:>8.1f}")
    by = {label: med for label, med, _ in results}
    print(f"ratio eager / package: {by[EAGER_ROW] / by[PACKAGE_ROW]:.2f}x; vendor {VENDOR_MS} ms ({VENDOR_TEXT}); "
          f"package here / vendor: {by[PACKAGE_ROW] / VENDOR_MS:.2f}x")


if __name__ == "__main__":
    main()
