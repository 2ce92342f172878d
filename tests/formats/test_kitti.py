"""KITTI object labels: 2D boxes, DontCare, scores, and bad lines."""

from __future__ import annotations

import pytest

from astrocyte_lab.data.annotations import AnnotationError, Box, Polygon
from astrocyte_lab.formats import DatabaseConfigError, KittiDatabase, write_kitti

TAIL = "1.5 1.6 3.9 1.0 1.5 10.0 0.1"  # h w l x y z rotation_y


def line(kind: str, box: str, extra: str = "") -> str:
    return f"{kind} 0.00 0 -1.5 {box} {TAIL}{extra}\n"


def read(tmp_path, images, **options):
    return KittiDatabase(tmp_path / "labels", images, **options).read()


def test_round_trip(tmp_path, images):
    objects = [Box("Car", 1, 2, 30, 40), Box("Pedestrian", 10.25, 5.5, 20.75, 47), Box("Car", 0, 0, 5, 5, score=0.9)]
    path = write_kitti(tmp_path / "labels" / "img0.txt", objects)
    assert all(len(text.split()) in (15, 16) for text in path.read_text().splitlines())
    write_kitti(tmp_path / "labels" / "img2.txt", [])
    parsed = read(tmp_path, images)
    assert parsed.warnings == [] and parsed.categories == ["Car", "Pedestrian"]
    assert [(e.image.name, e.objects) for e in parsed.images] == [("img0.png", objects), ("img2.jpg", [])]


def test_writer_uses_enclosing_box_and_refuses_spaces(tmp_path, images):
    path = write_kitti(tmp_path / "labels" / "img0.txt", [Polygon("Van", ((1, 2), (9, 2), (5, 8)))])
    assert read(tmp_path, images).images[0].objects == [Box("Van", 1, 2, 9, 8)]
    with pytest.raises(DatabaseConfigError):
        write_kitti(path, [Box("Big Van", 1, 1, 2, 2)])


def test_dontcare_and_blank_lines_are_skipped(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "img0.txt",
              line("Car", "1 2 30 40") + "\n" + line("DontCare", "0 0 10 10"))
    assert read(tmp_path, images).images[0].objects == [Box("Car", 1, 2, 30, 40)]


def test_too_few_fields_names_file_and_line(tmp_path, images, make_text):
    path = make_text(tmp_path / "labels" / "img0.txt", line("Car", "1 2 30 40") + "Car 0 0 -1 1 2 30 40\n")
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images)
    assert info.value.file == str(path) and info.value.line == 2 and "8 fields" in str(info.value)


def test_non_numeric_coordinate(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "img0.txt", line("Car", "1 2 x30 40"))
    with pytest.raises(AnnotationError, match=r"img0.txt:1: right: 'x30' is not a number"):
        read(tmp_path, images)


def test_zero_size_box_is_an_error(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "img0.txt", line("Car", "10 2 10 40"))
    with pytest.raises(AnnotationError, match=r"img0.txt:1: empty or inverted box"):
        read(tmp_path, images)


def test_outside_clipped_duplicates_kept_once(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "img0.txt",
              line("Car", "50 40 90 70") + line("Car", "1 1 5 5") + line("Car", "1 1 5 5"))
    parsed = read(tmp_path, images)
    assert parsed.images[0].objects == [Box("Car", 50, 40, 64, 48), Box("Car", 1, 1, 5, 5)]
    assert "img0.txt:1:" in parsed.warnings[0] and "clipped" in parsed.warnings[0]
    assert "img0.txt:3:" in parsed.warnings[1] and "duplicate" in parsed.warnings[1]


def test_missing_image(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "000123.txt", line("Car", "1 2 30 40"))
    with pytest.raises(AnnotationError, match=r"000123.txt: image not found: expected .*000123\.\*"):
        read(tmp_path, images)
    assert read(tmp_path, images, skip_missing_images=True).images == []
