"""Latency case for ``inference.py --module segmentation``: a 2048x2048x1 image segmented at 1024x1024x1.

The default MANet (tf_efficientnet_lite0 encoder) is trained for one epoch on a few generated grey 2048x2048
images with scratch masks, exported, and timed on one 2048x2048 uint8 image: the package's
``Predictor.predict`` (resize to 1024, onnxruntime, softmax, resize back, arg-max) against the same work in
PyTorch eager (the evaluation code's ``predict_probabilities`` + arg-max).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from latency_case import Case

SIZE, INPUT = 2048, 1024
VENDOR_MS = 222.0  # the vendor's published figure: 2048x2048x1 image, 1024x1024x1 input, 16-core i9-12900K
PACKAGE_ROW = "package: Predictor.predict(uint8 2048x2048 image)"
EAGER_ROW = "PyTorch eager: to_tensor + net + softmax + resize + argmax"


def write_images(folder: Path, count: int) -> None:
    """Grey textured 2048x2048 PNGs with dark scratches and their 0/1 pixel-value masks."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = cv2.resize(rng.normal(128, 25, (64, 64)).astype(np.float32), (SIZE, SIZE),
                          interpolation=cv2.INTER_CUBIC)
        image = base + rng.normal(0, 4, (SIZE, SIZE))
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(200, SIZE - 600, 2))
            end = (x + int(rng.integers(200, 500)), y + int(rng.integers(-200, 200)))
            cv2.line(image, (x, y), end, 30.0, 12)
            cv2.line(mask, (x, y), end, 1, 12)
        cv2.imwrite(str(folder / "images" / f"part_{i:02d}.png"), np.clip(image, 0, 255).astype(np.uint8))
        cv2.imwrite(str(folder / "masks" / f"part_{i:02d}.png"), mask)


def build_case(workdir: Path, threads: int) -> Case:
    import torch

    from astrocyte_lab import Workspace, segmentation_set
    from astrocyte_lab.evaluation.segmentation import predict_probabilities
    from astrocyte_lab.modules.segmentation.config import SegmentationConfig
    from astrocyte_lab.modules.segmentation.export import export_package
    from astrocyte_lab.modules.segmentation.trainer import load_network, train_job
    from astrocyte_lab.runtime import load_package

    start = time.perf_counter()
    write_images(workdir / "source", 3)
    ws = Workspace(workdir / "workspace")
    name = "latency-seg"
    dataset = ws.create_dataset(name, "segmentation", [segmentation_set(
        "synthetic", workdir / "source" / "images", workdir / "source" / "masks")], seed=0)
    g = dataset.geometry
    assert (g.width, g.height, g.channels) == (SIZE, SIZE, 1), g
    config = SegmentationConfig(epochs=1, batch_size=1, region_size=(INPUT, INPUT), seed=0)
    train_job(ws, name, name, config).result()
    package = export_package(ws, name, workdir / f"{name}.astromodel")
    build_s = time.perf_counter() - start
    predictor = load_package(package, threads=threads)
    net, record, spec = load_network(ws, name)
    net.eval()
    image = dataset.image(int(dataset.ids[0]))[:, :, 0]
    assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
    device = torch.device("cpu")

    def eager() -> np.ndarray:
        return predict_probabilities(net, spec, image, None, 0, device).argmax(0)

    agreement = float((predictor.predict(image).mask == eager()).mean())
    batch = predictor.preprocess(image)[None]
    rows = [(PACKAGE_ROW, lambda: predictor.predict(image)),
            ("  onnxruntime alone (preprocessed 1024x1024 tensor)", lambda: predictor.run(batch)),
            (EAGER_ROW, eager)]
    details = [f"model: {record['architecture']}, 1 epoch on {len(dataset)} generated images, pretrained encoder "
               f"{'loaded' if record['pretrained'] else 'NOT available (random init)'}; build + train + export "
               f"{build_s:.1f} s; package and eager masks agree on {agreement:.2%} of pixels"]
    return Case(f"{record['architecture']} segmenter, {SIZE}x{SIZE}x1 image to {INPUT}x{INPUT}x1 input, batch 1",
                rows, PACKAGE_ROW, EAGER_ROW, VENDOR_MS, "16-core Intel i9-12900K, 2048x2048x1 to 1024x1024x1",
                details)
