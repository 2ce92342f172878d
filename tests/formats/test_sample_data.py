"""The generated hardware samples read through the text and VOC databases the manual's quick start uses."""

from __future__ import annotations

import pytest

from astrocyte_lab.data.annotations import Box, RotatedBox
from astrocyte_lab.formats import TextDatabase, TextFormat, VocDatabase
from astrocyte_lab.samples import generate, read_manifest

CLASSES = ["washer", "nut", "nail", "screw", "crimpterminal"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("samples"), ["hardware", "hardware_rotated", "hardware_partial"])


def tab_labels(folder) -> TextFormat:
    """The quick start's text description: one file per image, tab separator, X1 Y1 X2 Y2."""
    return TextFormat(path=folder / "labels", image_folder=folder / "images",
                      columns=["class", "x1", "y1", "x2", "y2"], per_image=True, separator="tab",
                      index_file=folder / "classes.txt")


def label_lines(folder) -> int:
    return sum(1 for f in (folder / "labels").glob("*.txt") for line in f.read_text().splitlines() if line.strip())


@pytest.mark.parametrize("name", ["hardware", "hardware_partial"])
def test_tab_separated_samples(samples, name):
    folder = samples[name]
    manifest = read_manifest(folder)
    parsed = TextDatabase(tab_labels(folder)).read()
    assert parsed.warnings == []
    assert len(parsed.images) == manifest["counts"]["labelled"] == (60 if name == "hardware" else 40)
    assert sum(len(e.objects) for e in parsed.images) == label_lines(folder) > len(parsed.images)
    assert parsed.categories == CLASSES
    assert all(isinstance(o, Box) for e in parsed.images for o in e.objects)
    assert all(e.size == tuple(manifest["image_size"]) for e in parsed.images)


def test_rotated_voc_sample(samples):
    folder = samples["hardware_rotated"]
    parsed = VocDatabase(folder / "Annotations", folder / "images").read()
    objects = [o for e in parsed.images for o in e.objects]
    xml_objects = sum(f.read_text().count("<object>") for f in (folder / "Annotations").glob("*.xml"))
    assert parsed.warnings == []
    assert len(parsed.images) == 60 and len(objects) == xml_objects > 60
    assert sorted(parsed.categories) == sorted(CLASSES)
    assert all(isinstance(o, RotatedBox) and 0 <= o.angle < 180 and o.width >= o.height for o in objects)
