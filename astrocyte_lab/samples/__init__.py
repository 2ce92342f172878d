"""Procedural sample datasets that look like real machine-vision inspection images.

The vendor's sample data is proprietary, so these are generated: textured surfaces, lit and shaded
parts, lighting gradients, vignetting, blur and sensor noise. Generation is deterministic (the same
call writes byte-identical files) and fast at the default size; ``scale`` multiplies the image counts.

>>> from astrocyte_lab.samples import SAMPLES, generate
>>> folders = generate("data/samples", ["metal", "hardware"])  # doctest: +SKIP

Each sample folder holds a ``manifest.json`` describing its kind, counts and layout; a second call
with the same name/scale/version skips it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from astrocyte_lab.samples import components, hardware, metal, scratches, wood
from astrocyte_lab.samples.spec import SampleSpec
from astrocyte_lab.samples.writers import write_json

__all__ = ["MANIFEST", "SAMPLES", "SampleSpec", "generate", "read_manifest"]

MANIFEST = "manifest.json"
COST = {"wood": 3.5, "hardware_partial": 2.4, "components": 1.8, "hardware": 1.5, "hardware_rotated": 1.5}
"""Rough relative generation times, used only to schedule the slowest samples first."""

SAMPLES: dict[str, SampleSpec] = {
    s.name: s
    for s in (
        SampleSpec(
            "metal",
            "anomaly",
            "Brushed metal surfaces, grey 256x256: good/ images and bad/ images with scratches, dents and "
            "stains, with a 0/255 defect mask per bad image in masks/.",
            metal.generate,
        ),
        SampleSpec(
            "components",
            "classification",
            "Electronic components on a circuit board, colour 128x128, one folder per class: cap_ceramic, "
            "cap_tantalum (yellow_/black_ variants), opto (led_/lens_), resistor (blue_/beige_).",
            components.generate,
        ),
        SampleSpec(
            "hardware",
            "detection",
            "Washers, nuts, nails, screws and crimp terminals on work mats, colour JPEG 416x320, with "
            "tab-separated axis-aligned box labels (class X1 Y1 X2 Y2).",
            hardware.generate_boxes,
        ),
        SampleSpec(
            "hardware_rotated",
            "detection",
            "The hardware scenes with Pascal VOC annotations holding roLabelImg oriented boxes (robndbox).",
            hardware.generate_rotated,
        ),
        SampleSpec(
            "hardware_partial",
            "detection",
            "100 hardware scenes of which only the first 40 are labelled, for self-training.",
            hardware.generate_partial,
        ),
        SampleSpec(
            "wood",
            "detection",
            "Large wood-board images (colour JPEG 1536x1024) with tiny dead and live knots (10-30 px), "
            "tab-separated box labels; meant for tiled detection.",
            wood.generate,
        ),
        SampleSpec(
            "scratches",
            "segmentation",
            "Ground, painted and blasted surfaces, grey 256x256, with pixel-value masks "
            "(0 background, 1 scratch, 2 spot); about one image in six is defect-free.",
            scratches.generate,
        ),
    )
}


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The parsed ``manifest.json`` of a sample folder, or ``None`` if missing or unreadable."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_current(folder: Path, spec: SampleSpec, scale: int) -> bool:
    m = read_manifest(folder)
    return m is not None and (m.get("name"), m.get("scale"), m.get("version")) == (
        spec.name,
        scale,
        spec.version,
    )


def _build(dest: Path, spec: SampleSpec, scale: int) -> Path:
    """Generate into ``dest/.<name>.tmp`` and swap it into place only once complete."""
    final = dest / spec.name
    tmp = dest / f".{spec.name}.tmp"
    old = dest / f".{spec.name}.old"
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir(parents=True)
    info = spec.generator(tmp, scale)
    manifest: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "scale": scale,
        "version": spec.version,
        "generator": f"astrocyte_lab.samples.{spec.generator.__module__.rsplit('.', 1)[-1]}",
        **info,
    }
    write_json(tmp / MANIFEST, manifest)  # written last: a folder with a manifest is complete
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def generate(
    dest: str | Path,
    names: Iterable[str] | None = None,
    scale: int = 1,
    overwrite: bool = False,
    *,
    workers: int | None = None,
) -> dict[str, Path]:
    """Write sample datasets into ``dest/<name>/``; return ``{name: folder}``.

    ``names`` defaults to all of :data:`SAMPLES`. ``scale`` (integer >= 1) multiplies the image counts.
    A sample whose folder already has a manifest with the same name, scale and generator version is
    skipped unless ``overwrite``; an outdated one is regenerated. A folder without a manifest is not
    ours, so it is only replaced with ``overwrite=True``. Samples are built in ``workers`` threads
    (default: up to 4, one per CPU); the output does not depend on it.
    """
    if isinstance(names, str):
        names = [names]
    wanted = list(dict.fromkeys(SAMPLES if names is None else names))
    unknown = [n for n in wanted if n not in SAMPLES]
    if unknown:
        raise ValueError(f"unknown sample name(s) {unknown}; valid names: {', '.join(SAMPLES)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {name: root / name for name in wanted}
    todo: list[SampleSpec] = []
    for name in wanted:
        spec, folder = SAMPLES[name], out[name]
        if not overwrite:
            if _is_current(folder, spec, scale):
                continue
            if folder.exists() and read_manifest(folder) is None:
                raise FileExistsError(
                    f"{folder} exists and is not a generated sample; use overwrite=True to replace it"
                )
        todo.append(spec)
    todo.sort(key=lambda s: -COST.get(s.name, 1.0))  # longest first keeps the threads busy
    n_workers = max(1, min(len(todo), workers if workers is not None else min(4, os.cpu_count() or 1)))
    if n_workers == 1:
        for spec in todo:
            _build(root, spec, scale)
    else:
        with ThreadPoolExecutor(n_workers, thread_name_prefix="samples") as pool:
            for future in [pool.submit(_build, root, spec, scale) for spec in todo]:
                future.result()
    return out
