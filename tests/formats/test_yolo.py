"""YOLO labels: detection, oriented and polygon lines, names files, and bad lines."""

from __future__ import annotations

import pytest

from astrocyte_lab.data.annotations import AnnotationError, Box, ImageAnnotations, Polygon, RotatedBox
from astrocyte_lab.formats import YoloDatabase, read_class_names, write_yolo


def read(tmp_path, images, names=None, **options):
    return YoloDatabase(tmp_path / "labels", images, names or tmp_path / "labels" / "classes.txt", **options).read()


def close(a, b, tolerance=1e-3):
    assert type(a) is type(b) and a.category == b.category
    if isinstance(a, RotatedBox):
        for attr in ("cx", "cy", "width", "height", "angle"):
            assert getattr(a, attr) == pytest.approx(getattr(b, attr), abs=tolerance)
    else:
        assert a.corners() == pytest.approx(b.corners(), abs=tolerance)


def test_round_trip(tmp_path, images):
    entries = [
        ImageAnnotations(images / "img0.png", [Box("nut", 1, 2, 30, 40), Box("bolt", 0, 0, 64, 48),
                                               RotatedBox("nut", 30, 20, 16, 6, 33.3),
                                               Polygon("bolt", ((5, 5), (20.5, 7), (12, 30)))]),
        ImageAnnotations(images / "img2.jpg", [Box("bolt", 3.3, 4.4, 70.1, 55.5)]),
        ImageAnnotations(images / "img1.png", []),
    ]
    names = write_yolo(tmp_path / "labels", entries, ["nut", "bolt"])
    assert names == tmp_path / "labels" / "classes.txt"
    text = (tmp_path / "labels" / "img0.txt").read_text().splitlines()
    assert [len(t.split()) for t in text] == [5, 5, 9, 7]
    parsed = read(tmp_path, images)
    assert parsed.warnings == [] and parsed.categories == ["nut", "bolt"]
    by_name = {e.image.name: e for e in parsed.images}
    assert by_name["img1.png"].objects == []
    for entry in entries:
        got = by_name[entry.image.name].objects
        assert len(got) == len(entry.objects)
        for want, have in zip(entry.objects, got, strict=True):
            close(have, want)


@pytest.mark.parametrize("yaml_text", [
    "path: ../data\nnames: [nut, 'bolt', \"screw\"]\nnc: 3\n",
    "names:\n  - nut\n  - bolt  # a comment\n  - screw\ntrain: images/\n",
    "names:\n  0: nut\n  1: bolt\n  2: 'screw'\n",
    "nc: 3\nnames: {0: nut, 1: bolt,\n  2: screw}\n",
    "names:\n- nut\n- bolt\n- screw\n",
])
def test_yaml_names(tmp_path, make_text, yaml_text):
    path = make_text(tmp_path / "data.yaml", yaml_text)
    assert read_class_names(path) == ["nut", "bolt", "screw"]


def test_yaml_names_errors(tmp_path, make_text):
    with pytest.raises(AnnotationError, match="no 'names:'"):
        read_class_names(make_text(tmp_path / "a.yaml", "nc: 2\n"))
    with pytest.raises(AnnotationError, match="without gaps"):
        read_class_names(make_text(tmp_path / "b.yaml", "names:\n  0: a\n  2: b\n"))
    with pytest.raises(AnnotationError, match="listed twice"):
        read_class_names(make_text(tmp_path / "names.txt", "a\nb\na\n"))


def test_data_yaml_names_and_normalised_conversion(tmp_path, images, make_text):
    names = make_text(tmp_path / "data.yaml", "names: [nut, bolt]\n")
    make_text(tmp_path / "labels" / "img0.txt", "1 0.5 0.5 0.25 0.5\n\n0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
    (box, rotated) = read(tmp_path, images, names).images[0].objects
    assert box == Box("bolt", 24, 12, 40, 36)
    close(rotated, RotatedBox("nut", 9.6, 7.2, 6.4, 4.8, 0.0))


def test_wrong_value_count(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    path = make_text(tmp_path / "labels" / "img0.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images)
    assert info.value.file == str(path) and info.value.line == 2 and "4 values" in str(info.value)


def test_unknown_class_index(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\nbolt\n")
    make_text(tmp_path / "labels" / "img0.txt", "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"img0.txt:2: unknown class index 2 \(the names file lists 2"):
        read(tmp_path, images)


def test_non_numeric_value(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "img0.txt", "0 0.5 abc 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"img0.txt:1: cy: 'abc' is not a number"):
        read(tmp_path, images)


def test_zero_size_box(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "img0.txt", "0 0.5 0.5 0 0.2\n")
    with pytest.raises(AnnotationError, match=r"img0.txt:1: empty or inverted box"):
        read(tmp_path, images)


def test_outside_clipped_dropped_and_duplicates(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "img0.txt",
              "0 1.0 0.5 0.5 0.5\n0 3.0 3.0 0.2 0.2\n0 0.25 0.25 0.25 0.25\n0 0.25 0.25 0.25 0.25\n")
    parsed = read(tmp_path, images)
    assert parsed.images[0].objects == [Box("nut", 48, 12, 64, 36), Box("nut", 8, 6, 24, 18)]
    assert [w.split(": ", 1)[0].rsplit("/", 1)[-1] for w in parsed.warnings] == ["img0.txt:1", "img0.txt:2",
                                                                                 "img0.txt:4"]


def test_missing_image(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "gone.txt", "0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"gone.txt: image not found"):
        read(tmp_path, images)
    parsed = read(tmp_path, images, skip_missing_images=True)
    assert parsed.images == [] and len(parsed.warnings) == 1


# --- hardening (issue 19): oriented boxes that are not rectangles, rotated boxes sticking out ---


def obb_line(corners: list[tuple[float, float]], width: int = 64, height: int = 48) -> str:
    return "0 " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in corners)


def test_oriented_box_that_is_not_a_rectangle_warns_and_uses_the_enclosing_rectangle(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "img0.txt", obb_line([(10, 10), (30, 10), (40, 20), (20, 20)]) + "\n")
    parsed = read(tmp_path, images)
    (got,) = parsed.images[0].objects
    close(got, RotatedBox("nut", 25, 15, 30, 10, 0.0))  # not 20 x 14.1 from the first three corners
    (warning,) = parsed.warnings
    assert "img0.txt:1: oriented box for 'nut': the 4 corners are not a rectangle" in warning


def test_oriented_box_with_rounded_corners_is_still_a_rectangle(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    corners = [(round(x), round(y)) for x, y in RotatedBox("nut", 30, 20, 16, 6, 33.3).corners()]
    make_text(tmp_path / "labels" / "img0.txt", obb_line(corners) + "\n")
    parsed = read(tmp_path, images)
    assert parsed.warnings == []
    (got,) = parsed.images[0].objects
    assert isinstance(got, RotatedBox) and got.angle == pytest.approx(33.3, abs=3)


def test_rotated_box_sticking_out_gets_the_clip_warning(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "classes.txt", "nut\n")
    make_text(tmp_path / "labels" / "img0.txt", obb_line([(50, 10), (70, 10), (70, 20), (50, 20)]) + "\n"
              + obb_line([(70, 10), (90, 10), (90, 20), (70, 20)]) + "\n")
    parsed = read(tmp_path, images)
    (got,) = parsed.images[0].objects
    close(got, RotatedBox("nut", 60, 15, 20, 10, 0.0))
    assert "img0.txt:1: rotated box 'nut' extends outside the 64x48 image img0.png; kept whole" in parsed.warnings[0]
    assert "img0.txt:2: rotated box 'nut' has its centre outside the 64x48 image img0.png; dropped" \
        in parsed.warnings[1]


def test_enclosing_rectangle_keeps_the_first_edge_as_the_width_side():
    from astrocyte_lab.data.annotations import rotated_from_corners
    from astrocyte_lab.formats.yolo import enclosing_rectangle, rectangle_error

    skewed = [(10, 10), (10, 30), (20, 40), (20, 20)]  # first edge vertical, a parallelogram
    assert rectangle_error(skewed) > 1
    box = rotated_from_corners("nut", enclosing_rectangle(skewed))
    close(box, RotatedBox("nut", 15, 25, 30, 10, 90.0))
