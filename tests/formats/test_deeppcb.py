"""Importing the real DeepPCB data as a text database (slow; run with ``-m slow -s`` to see the counts).

DeepPCB pairs images and labels through a list file (``trainval.txt``: ``groupG/G/ID.jpg
groupG/G_not/ID.txt``) while the tested image on disk is ``ID_test.jpg``; its label lines are
``x1 y1 x2 y2 type`` separated by spaces, with types 1..6. So: one file per image, ``pairs`` for the
pairing, ``image_stem_suffix="_test"``, and class numbers through an index file counted from 1.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from astrocyte_lab.formats import TextDatabase, TextFormat

ROOT = Path("/work/shared/datasets/deeppcb/PCBData")
TYPES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "trainval.txt").is_file(), reason="DeepPCB data not available")
def test_deeppcb_trainval_imports(tmp_path):
    names = tmp_path / "deeppcb_types.txt"
    names.write_text("\n".join(TYPES) + "\n")
    config = TextFormat(path=ROOT, image_folder=ROOT, columns=["x1", "y1", "x2", "y2", "class"], per_image=True,
                        separator="space", class_by="index", index_file=names, index_base=1,
                        pairs=ROOT / "trainval.txt", image_stem_suffix="_test")
    parsed = TextDatabase(config).read()

    listed = [line.split() for line in (ROOT / "trainval.txt").read_text().splitlines() if line.strip()]
    raw = Counter()
    for _image, label in listed:
        for line in (ROOT / label).read_text().splitlines():
            if line.strip():
                raw[TYPES[int(line.split()[4]) - 1]] += 1
    counts = Counter(o.category for e in parsed.images for o in e.objects)
    print(f"\nDeepPCB trainval: {len(parsed.images)} images, {sum(counts.values())} boxes, "
          f"{len(parsed.warnings)} warnings")
    for name in TYPES:
        print(f"  {name:10s} {counts[name]}")

    assert len(parsed.images) == len(listed) == 1000
    assert all(e.image.name.endswith("_test.jpg") and e.image.is_file() for e in parsed.images)
    assert all(e.size == (640, 640) for e in parsed.images)
    assert parsed.categories == TYPES
    assert counts == raw  # nothing clipped away, dropped or merged
    assert parsed.warnings == []
