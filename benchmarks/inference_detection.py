"""Latency case for ``inference.py --module detection``: a 1228x920x3 image detected at 512x512x3.

The vendor's row: object detection on the hardware sample, 1228x920x3 image to a 512x512x3 input, 31.7 ms on
a 16-core i9-12900K (its YOLOX-Nano). Here a YOLOv8-n detector (the manual's Nano size) is trained for one epoch
on a few generated 1228x920 hardware-like images, exported, and timed on one 1228x920 uint8 RGB image: the
package's ``Predictor.predict`` (resize to 512x512, onnxruntime, decoding, numpy NMS, boxes back in image
pixels) against the same work in PyTorch eager (the runtime head driven by the PyTorch network, which is what
the test command runs). The same model exported with ``int8=True`` (convolutions quantised, calibrated on the
training images) is timed too: an opt-in package whose AP is checked by testing the package itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from latency_case import Case

WIDTH, HEIGHT, INPUT = 1228, 920, 512
VENDOR_MS = 31.7
PACKAGE_ROW = "package: Predictor.predict(uint8 1228x920x3 image)"
EAGER_ROW = "PyTorch eager: preprocess + net + decode + NMS"
INT8_ROW = "package exported with int8=True: Predictor.predict"


def write_images(folder: Path, count: int) -> None:
    """Green mats with bright washers (discs) and dark bars, and tab-separated box labels."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[...] = (40, 110, 60)
        image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        lines = []
        for _ in range(4):
            x, y = int(rng.integers(100, WIDTH - 100)), int(rng.integers(100, HEIGHT - 100))
            cv2.circle(image, (x, y), 40, (200, 200, 200), -1)
            lines.append(f"washer\t{x - 40}\t{y - 40}\t{x + 41}\t{y + 41}")
            x, y = int(rng.integers(100, WIDTH - 200)), int(rng.integers(100, HEIGHT - 100))
            cv2.rectangle(image, (x, y), (x + 150, y + 20), (90, 70, 40), -1)
            lines.append(f"bar\t{x}\t{y}\t{x + 151}\t{y + 21}")
        cv2.imwrite(str(folder / "images" / f"mat_{i:02d}.png"), image[:, :, ::-1])
        (folder / "labels" / f"mat_{i:02d}.txt").write_text("\n".join(lines) + "\n")


def build_case(workdir: Path, threads: int) -> Case:
    import torch

    from astrocyte_lab import Workspace
    from astrocyte_lab.data.sources import DatabaseSet
    from astrocyte_lab.evaluation.detection import detector_for
    from astrocyte_lab.formats import TextDatabase, TextFormat
    from astrocyte_lab.modules.detection.config import DetectionConfig
    from astrocyte_lab.modules.detection.export import export_package
    from astrocyte_lab.modules.detection.trainer import train_job
    from astrocyte_lab.runtime import load_package

    start = time.perf_counter()
    write_images(workdir / "source", 4)
    ws = Workspace(workdir / "workspace")
    name = "latency-det"
    database = TextDatabase(TextFormat(path=workdir / "source" / "labels", image_folder=workdir / "source" / "images",
                                       columns=["class", "x1", "y1", "x2", "y2"], per_image=True, separator="tab"))
    dataset = ws.create_dataset(name, "detection", [DatabaseSet("labels", database)], seed=0)
    g = dataset.geometry
    assert (g.width, g.height, g.channels) == (WIDTH, HEIGHT, 3), g
    config = DetectionConfig(architecture="nano", epochs=1, batch_size=4, region_size=(INPUT, INPUT), seed=0,
                             pretrained=False, confidence=0.25)
    train_job(ws, name, name, config).result()
    package = export_package(ws, name, workdir / f"{name}.astromodel")
    quantized = load_package(export_package(ws, name, workdir / f"{name}-int8.astromodel", int8=True),
                             threads=threads)
    build_s = time.perf_counter() - start
    predictor = load_package(package, threads=threads)
    torch.set_num_threads(threads)
    detector, record = detector_for(ws, name, "cpu")
    image = dataset.image(int(dataset.ids[0]))
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8

    def eager():
        return detector.detect([image], 1)[0]

    ours, theirs = eager(), predictor.predict(image)
    batch = predictor.preprocess(image)[None]
    rows = [(PACKAGE_ROW, lambda: predictor.predict(image)),
            ("  onnxruntime alone (preprocessed 512x512 tensor)", lambda: predictor.run(batch)),
            (INT8_ROW, lambda: quantized.predict(image)),
            ("  int8 onnxruntime alone", lambda: quantized.run(batch)),
            (EAGER_ROW, eager)]
    details = [f"model: YOLOv8-n ({record['architecture']}), 1 epoch on {len(dataset)} generated images, random "
               f"init; build + train + export {build_s:.1f} s; detections package {len(theirs)} / eager {len(ours)}"
               f" at confidence {record['detection']['confidence']}"]
    return Case(f"YOLOv8-n detector, {WIDTH}x{HEIGHT}x3 image to {INPUT}x{INPUT}x3 input, batch 1", rows,
                PACKAGE_ROW, EAGER_ROW, VENDOR_MS, "16-core Intel i9-12900K, hardware sample 1228x920x3 to 512x512x3",
                details)
