"""Tests for the procedural sample datasets (astrocyte_lab.samples)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab.samples import MANIFEST, SAMPLES, generate, read_manifest
from astrocyte_lab.samples.writers import rotated_corners

HW_SIZE = (416, 320)
WOOD_SIZE = (1536, 1024)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All samples at the default scale, generated once for the module."""
    dest = tmp_path_factory.mktemp("samples")
    folders = generate(dest)
    assert set(folders) == set(SAMPLES)
    return dest


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _names(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def _tab_boxes(path: Path) -> list[tuple[str, int, int, int, int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        assert len(fields) == 5, (path, line)
        rows.append((fields[0], *(int(v) for v in fields[1:])))
    return rows


# ------------------------------------------------------------------------------------------- API


def test_registry_kinds() -> None:
    assert set(SAMPLES) == {
        "metal",
        "components",
        "hardware",
        "hardware_rotated",
        "hardware_partial",
        "wood",
        "scratches",
    }
    for name, spec in SAMPLES.items():
        assert spec.name == name
        assert spec.kind in {"anomaly", "classification", "detection", "segmentation"}
        assert spec.description and callable(spec.generator)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid names"):
        generate(tmp_path, ["metal", "nope"])
    with pytest.raises(ValueError):
        generate(tmp_path, ["metal"], scale=0)
    with pytest.raises(ValueError):
        generate(tmp_path, ["metal"], scale=1.5)  # type: ignore[arg-type]
    assert not (tmp_path / "metal").exists()


def test_foreign_folder_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "scratches").mkdir()
    (tmp_path / "scratches" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate(tmp_path, ["scratches"])
    assert (tmp_path / "scratches" / "mine.txt").exists()


def test_manifests(root: Path) -> None:
    for name, spec in SAMPLES.items():
        m = read_manifest(root / name)
        assert m is not None
        assert (m["name"], m["kind"], m["scale"], m["version"]) == (name, spec.kind, 1, spec.version)
        assert m["counts"] and m["layout"]
        assert not (root / f".{name}.tmp").exists()


# ------------------------------------------------------------------------------ determinism etc.


def test_deterministic(root: Path, tmp_path: Path) -> None:
    names = ["metal", "components", "hardware_rotated", "scratches"]
    generate(tmp_path, names)
    for name in names:
        files = sorted(p.relative_to(root / name) for p in (root / name).rglob("*") if p.is_file())
        other = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
        assert files == other
        for rel in files[::3] + [Path(MANIFEST)]:
            assert (root / name / rel).read_bytes() == (tmp_path / name / rel).read_bytes(), rel


def test_idempotent(root: Path) -> None:
    watched = [root / "metal" / MANIFEST, root / "metal" / "good" / "good_000.png", root / "wood" / MANIFEST]
    before = [p.stat().st_mtime_ns for p in watched]
    generate(root, ["metal", "wood"])
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_overwrite_and_leftover_tmp(tmp_path: Path) -> None:
    (tmp_path / ".scratches.tmp").mkdir()
    (tmp_path / ".scratches.tmp" / "half.png").write_bytes(b"x")  # an interrupted earlier run
    generate(tmp_path, ["scratches"])
    assert not (tmp_path / ".scratches.tmp").exists()
    manifest = tmp_path / "scratches" / MANIFEST
    first = manifest.read_bytes()
    stamp = manifest.stat().st_mtime_ns
    generate(tmp_path, "scratches", overwrite=True)
    assert manifest.read_bytes() == first
    assert manifest.stat().st_mtime_ns >= stamp
    assert not (tmp_path / ".scratches.old").exists()


def test_scale_doubles_counts(root: Path, tmp_path: Path) -> None:
    generate(tmp_path, ["scratches"], scale=2)
    m = json.loads((tmp_path / "scratches" / MANIFEST).read_text())
    assert m["scale"] == 2 and m["counts"]["images"] == 96
    assert len(_names(tmp_path / "scratches" / "images")) == 96
    assert len(_names(tmp_path / "scratches" / "masks")) == 96
    # per-image seeds do not depend on the scale: the first images are the same
    for name in ("surface_000.png", "surface_047.png"):
        a = (tmp_path / "scratches" / "images" / name).read_bytes()
        assert a == (root / "scratches" / "images" / name).read_bytes()


# ------------------------------------------------------------------------------------- datasets


def test_metal(root: Path) -> None:
    d = root / "metal"
    good = _names(d / "good", "*.png")
    bad = _names(d / "bad", "*.png")
    assert len(good) == 60 and len(bad) == 24
    for defect in ("scratch", "dent", "stain"):
        assert sum(n.startswith(f"{defect}_") for n in bad) == 8
    assert _names(d / "masks", "*.png") == bad
    img = _read(d / "good" / good[0])
    assert img.shape == (256, 256) and img.dtype == np.uint8
    assert 40 < img.mean() < 220 and img.std() > 3  # textured, not flat
    for name in bad:
        mask = _read(d / "masks" / name)
        assert mask.shape == (256, 256) and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}, name
        assert 0 < (mask > 0).mean() < 0.2
        assert _read(d / "bad" / name).shape == (256, 256)


def test_components(root: Path) -> None:
    d = root / "components"
    for cls in ("cap_ceramic", "cap_tantalum", "opto", "resistor"):
        files = _names(d / cls, "*.png")
        assert len(files) == 24, cls
        img = _read(d / cls / files[0])
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    tantalum = _names(d / "cap_tantalum", "*.png")
    assert all(n.startswith(("yellow_", "black_")) for n in tantalum)
    assert sum(n.startswith("yellow_") for n in tantalum) == 12
    # yellow bodies are visibly more yellow (high R and G, low B) than black ones
    yellow = np.mean([_read(d / "cap_tantalum" / n)[40:88, 40:88].astype(float) for n in tantalum if "yellow" in n], 0)
    black = np.mean([_read(d / "cap_tantalum" / n)[40:88, 40:88].astype(float) for n in tantalum if "black" in n], 0)
    assert yellow[..., 2].mean() > black[..., 2].mean() + 20


def _check_tab_labels(folder: Path, size: tuple[int, int], max_objects: int) -> int:
    classes = (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
    n_objects = 0
    for label in sorted((folder / "labels").glob("*.txt")):
        assert (folder / "images" / f"{label.stem}.jpg").exists()
        rows = _tab_boxes(label)
        assert 1 <= len(rows) <= max_objects, label
        for cls, x1, y1, x2, y2 in rows:
            assert cls in classes
            assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1], (label, x1, y1, x2, y2)
        n_objects += len(rows)
    return n_objects


def test_hardware(root: Path) -> None:
    d = root / "hardware"
    assert (d / "classes.txt").read_text().splitlines() == ["washer", "nut", "nail", "screw", "crimpterminal"]
    images = _names(d / "images", "*.jpg")
    assert len(images) == 60 and len(_names(d / "labels", "*.txt")) == 60
    img = _read(d / "images" / images[0])
    assert img.shape == (HW_SIZE[1], HW_SIZE[0], 3)
    assert _check_tab_labels(d, HW_SIZE, 6) >= 60
    seen = {row[0] for p in (d / "labels").glob("*.txt") for row in _tab_boxes(p)}
    assert seen == {"washer", "nut", "nail", "screw", "crimpterminal"}


def test_hardware_boxes_hit_the_parts(root: Path) -> None:
    """The box region differs from the mat around it: the labels sit on drawn parts."""
    d = root / "hardware"
    for label in sorted((d / "labels").glob("*.txt"))[:10]:
        img = cv2.cvtColor(_read(d / "images" / f"{label.stem}.jpg"), cv2.COLOR_BGR2GRAY).astype(float)
        for _cls, x1, y1, x2, y2 in _tab_boxes(label):
            inside = img[y1:y2, x1:x2]
            ring = img[max(0, y1 - 6) : y2 + 6, max(0, x1 - 6) : x2 + 6]
            assert inside.std() > 8 or abs(inside.mean() - np.median(ring)) > 8


def test_hardware_rotated(root: Path) -> None:
    d = root / "hardware_rotated"
    images = _names(d / "images", "*.jpg")
    xmls = sorted((d / "Annotations").glob("*.xml"))
    assert len(images) == 60 and len(xmls) == 60
    w_img, h_img = HW_SIZE
    for path in xmls:
        tree = ET.parse(path).getroot()
        size = tree.find("size")
        assert size is not None
        assert (int(size.findtext("width")), int(size.findtext("height")), int(size.findtext("depth"))) == (
            w_img,
            h_img,
            3,
        )
        objects = tree.findall("object")
        assert 1 <= len(objects) <= 6
        for obj in objects:
            assert obj.findtext("name") in {"washer", "nut", "nail", "screw", "crimpterminal"}
            assert obj.findtext("difficult") == "0"
            rb = obj.find("robndbox")
            assert rb is not None
            cx, cy, w, h, angle = (float(rb.findtext(k)) for k in ("cx", "cy", "w", "h", "angle"))
            assert 0.0 <= angle < math.pi
            assert w > 0 and h > 0
            corners = rotated_corners(cx, cy, w, h, angle)
            assert corners[:, 0].min() >= -1e-3 and corners[:, 0].max() <= w_img + 1e-3, path
            assert corners[:, 1].min() >= -1e-3 and corners[:, 1].max() <= h_img + 1e-3, path
            bb = obj.find("bndbox")
            assert bb is not None
            x1, y1, x2, y2 = (int(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 0 <= x1 < x2 <= w_img and 0 <= y1 < y2 <= h_img
            assert x1 <= corners[:, 0].min() + 1e-3 and x2 >= corners[:, 0].max() - 1e-3


def test_hardware_partial(root: Path) -> None:
    d = root / "hardware_partial"
    images = _names(d / "images", "*.jpg")
    labels = _names(d / "labels", "*.txt")
    assert len(images) == 100 and len(labels) == 40
    assert [Path(n).stem for n in labels] == [Path(n).stem for n in images[:40]]
    _check_tab_labels(d, HW_SIZE, 6)


def test_wood(root: Path) -> None:
    d = root / "wood"
    assert (d / "classes.txt").read_text().splitlines() == ["dead_knot", "live_knot"]
    images = _names(d / "images", "*.jpg")
    assert len(images) == 12 and len(_names(d / "labels", "*.txt")) == 12
    assert _read(d / "images" / images[0]).shape == (WOOD_SIZE[1], WOOD_SIZE[0], 3)
    _check_tab_labels(d, WOOD_SIZE, 6)
    classes = set()
    for label in (d / "labels").glob("*.txt"):
        rows = _tab_boxes(label)
        assert len(rows) >= 2
        for cls, x1, y1, x2, y2 in rows:
            classes.add(cls)
            assert 6 <= x2 - x1 <= 45 and 6 <= y2 - y1 <= 45  # tiny objects
    assert classes == {"dead_knot", "live_knot"}


def test_scratches(root: Path) -> None:
    d = root / "scratches"
    images = _names(d / "images", "*.png")
    assert len(images) == 48 and _names(d / "masks", "*.png") == images
    m = read_manifest(d)
    assert m is not None and m["mask_values"] == {"0": "background", "1": "scratch", "2": "spot"}
    values: set[int] = set()
    free = 0
    for name in images:
        img, mask = _read(d / "images" / name), _read(d / "masks" / name)
        assert img.shape == mask.shape == (256, 256) and mask.dtype == np.uint8
        u = set(np.unique(mask).tolist())
        assert u <= {0, 1, 2}
        values |= u
        free += u == {0}
    assert values == {0, 1, 2}
    assert free == m["counts"]["defect_free"] == 8
