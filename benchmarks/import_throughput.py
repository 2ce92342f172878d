"""Import throughput: our dataset generation vs. a plain decode + resize loop over the same files.

Writes N 640x480 JPEG sources (textured, noisy, like camera frames), then times in one run:
  plain  - cv2.imread + cv2.resize per file, one thread, results discarded
  ours   - Workspace.create_dataset (probe, decode, correct, write zarr batch, save table)
for the original size and for a 320x240 maximum size, and prints images/s and the ratio ours/plain.

    .venv/bin/python benchmarks/import_throughput.py [--images 2000] [--workdir /tmp/astro-bench]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from astrocyte_lab import GenerationOptions, Location, NamedSet, Workspace


def write_sources(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.normal(128, 40, (60, 80)).astype(np.float32), (640, 480), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:480, 0:640]
    paths = []
    for i in range(count):
        shift = np.roll(base, (i * 7) % 480, axis=0)
        light = 0.6 + 0.4 * np.cos((xx + i * 13) / 400.0) * np.sin((yy + 30) / 500.0 + 1)
        grey = shift * light + rng.normal(0, 6, (480, 640))
        colour = np.stack([grey, grey * 0.9 + 10, grey * 0.8 + 20], axis=2)
        path = folder / f"frame_{i:05d}.jpg"
        cv2.imwrite(str(path), np.clip(colour, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def plain(paths: list[Path], size: tuple[int, int] | None) -> float:
    start = time.perf_counter()
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if size is not None:
            cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return len(paths) / (time.perf_counter() - start)


def ours(folder: Path, workspace: Path, name: str, size: tuple[int, int] | None) -> float:
    ws = Workspace(workspace)
    start = time.perf_counter()
    dataset = ws.create_dataset(name, "classification", [NamedSet("frames", [Location(folder, category="frame")])],
                                options=GenerationOptions(max_size=size), seed=0)
    elapsed = time.perf_counter() - start
    assert len(dataset) > 0
    return len(dataset) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="astro-bench-"))
    try:
        t0 = time.perf_counter()
        paths = write_sources(workdir / "sources", args.images)
        print(f"wrote {len(paths)} JPEG sources 640x480 in {time.perf_counter() - t0:.1f} s")
        for label, size in (("original 640x480", None), ("max 320x240", (320, 240))):
            cv2.setNumThreads(1)
            base = plain(paths, size)
            mine = ours(workdir / "sources", workdir / "ws", label.split()[0], size)
            print(f"{label:18} plain decode+resize {base:7.1f} img/s | astrocyte import {mine:7.1f} img/s | "
                  f"ratio {mine / base:.2f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
