"""Pascal VOC: 1-based boxes, roLabelImg rotated boxes, polygons, image look-up, and bad files."""

from __future__ import annotations

import math

import pytest

from astrocyte_lab.data.annotations import AnnotationError, Box, ImageAnnotations, Polygon, RotatedBox
from astrocyte_lab.formats import VocDatabase, write_voc, write_voc_folder
from astrocyte_lab.formats.common import UnsafeImagePathWarning


def voc(filename: str | None, objects: str, size: tuple[int, int] | None = (64, 48)) -> str:
    name = f"<filename>{filename}</filename>" if filename is not None else ""
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return f"<annotation>\n{name}\n{size_xml}\n{objects}\n</annotation>\n"


def box_xml(name: str, xmin: object, ymin: object, xmax: object, ymax: object) -> str:
    return (f"<object>\n<name>{name}</name>\n<difficult>0</difficult>\n<bndbox>\n<xmin>{xmin}</xmin>\n"
            f"<ymin>{ymin}</ymin>\n<xmax>{xmax}</xmax>\n<ymax>{ymax}</ymax>\n</bndbox>\n</object>")


def read(tmp_path, images, **options):
    return VocDatabase(tmp_path / "ann", images, **options).read()


def test_round_trip_boxes_rotated_and_polygons(tmp_path, images):
    entries = [
        ImageAnnotations(images / "img0.png", [Box("nut", 0, 0, 10, 8), Box("bolt", 20, 5, 64, 48),
                                               RotatedBox("nut", 30.25, 20.5, 16.0, 6.5, 33.0),
                                               Polygon("scratch", ((5, 5), (20.5, 7), (12, 30)))]),
        ImageAnnotations(images / "img2.jpg", [RotatedBox("bolt", 40, 30, 20, 10, 170.0)]),
        ImageAnnotations(images / "img1.png", []),
    ]
    write_voc_folder(tmp_path / "ann", entries)
    parsed = read(tmp_path, images)
    assert parsed.warnings == []
    by_name = {e.image.name: e for e in parsed.images}
    assert set(by_name) == {"img0.png", "img1.png", "img2.jpg"}
    assert by_name["img1.png"].objects == []
    assert by_name["img2.jpg"].size == (80, 60)
    got = by_name["img0.png"].objects
    assert got[0] == Box("nut", 0, 0, 10, 8) and got[1] == Box("bolt", 20, 5, 64, 48)
    assert got[3] == Polygon("scratch", ((5, 5), (20.5, 7), (12, 30)))
    for want, have in ((entries[0].objects[2], got[2]), (entries[1].objects[0], by_name["img2.jpg"].objects[0])):
        assert isinstance(have, RotatedBox) and have.category == want.category
        for attr in ("cx", "cy", "width", "height", "angle"):
            assert getattr(have, attr) == pytest.approx(getattr(want, attr), abs=1e-3)
    assert parsed.categories == ["nut", "bolt", "scratch"]


def test_bndbox_is_one_based_inclusive(tmp_path, images):
    path = write_voc(tmp_path / "ann" / "img0.xml", "img0.png", (64, 48, 3), [Box("a", 0, 0, 10, 8)])
    text = path.read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>10</xmax>" in text and "<ymin>1</ymin>" in text
    (tmp_path / "ann" / "img0.xml").write_text(voc("img0.png", box_xml("a", 1, 1, 64, 48)))
    assert read(tmp_path, images).images[0].objects == [Box("a", 0, 0, 64, 48)]


def test_robndbox_radians_become_degrees_and_bndbox_is_ignored(tmp_path, images, make_text):
    obj = ("<object><type>robndbox</type><name>nail</name><robndbox><cx>30</cx><cy>20</cy><w>20</w><h>6</h>"
           f"<angle>{math.pi * 0.75}</angle></robndbox>"
           "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>")
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", obj))
    (got,) = read(tmp_path, images).images[0].objects
    assert isinstance(got, RotatedBox)
    assert (got.cx, got.cy, got.width, got.height) == (30, 20, 20, 6)
    assert got.angle == pytest.approx(135.0)


def test_parts_are_ignored_and_polygon_forms(tmp_path, images, make_text):
    person = ("<object><name>person</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>40</xmax><ymax>40</ymax>"
              "</bndbox><part><name>head</name><bndbox><xmin>12</xmin><ymin>12</ymin><xmax>20</xmax>"
              "<ymax>20</ymax></bndbox></part></object>")
    pts = ("<object><name>blob</name><polygon><pt><x>1</x><y>2</y></pt><pt><x>9</x><y>2</y></pt>"
           "<pt><x>5</x><y>9.5</y></pt></polygon></object>")
    numbered = ("<object><name>blob</name><polygon><x1>30</x1><y1>30</y1><x2>40</x2><y2>30</y2><x3>35</x3>"
                "<y3>40</y3></polygon></object>")
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", person + pts + numbered))
    objects = read(tmp_path, images).images[0].objects
    assert objects == [Box("person", 10, 10, 40, 40), Polygon("blob", ((1, 2), (9, 2), (5, 9.5))),
                       Polygon("blob", ((30, 30), (40, 30), (35, 40)))]


def test_image_found_by_stem_when_filename_is_missing_or_wrong(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc(None, box_xml("a", 1, 1, 5, 5)))
    make_text(tmp_path / "ann" / "img2.xml", voc("renamed.png", box_xml("a", 1, 1, 5, 5), size=(80, 60)))
    parsed = read(tmp_path, images)
    assert [e.image for e in parsed.images] == [images / "img0.png", images / "img2.jpg"]


def test_missing_image_is_an_error_naming_file_and_expected_path(tmp_path, images, make_text):
    xml = make_text(tmp_path / "ann" / "ghost.xml", voc("ghost.png", box_xml("a", 1, 1, 5, 5)))
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images)
    assert str(xml) in str(info.value) and str(images / "ghost.png") in str(info.value)


def test_missing_image_can_be_skipped_with_a_warning(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "ghost.xml", voc("ghost.png", box_xml("a", 1, 1, 5, 5)))
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", 1, 1, 5, 5)))
    parsed = read(tmp_path, images, skip_missing_images=True)
    assert [e.image.name for e in parsed.images] == ["img0.png"]
    assert len(parsed.warnings) == 1 and "ghost.xml" in parsed.warnings[0] and "skipped" in parsed.warnings[0]


def test_malformed_xml_names_file_and_line(tmp_path, images, make_text):
    xml = make_text(tmp_path / "ann" / "img0.xml", "<annotation>\n<filename>img0.png</filename>\n<object>\n"
                                                   "</annotation>\n")
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images)
    assert info.value.file == str(xml) and info.value.line == 4 and "malformed XML" in str(info.value)


def test_not_a_voc_root_and_entities_are_refused(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", "<html/>")
    with pytest.raises(AnnotationError, match="<annotation> expected"):
        read(tmp_path, images)
    make_text(tmp_path / "ann" / "img0.xml", '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "xx">]>\n'
                                            "<annotation>&x;</annotation>")
    with pytest.raises(AnnotationError, match="entity"):
        read(tmp_path, images)


def test_non_numeric_coordinate_names_line_role_and_value(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", 1, 1, "ten", 5)))
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images)
    assert info.value.line == 10 and "xmax" in str(info.value) and "'ten'" in str(info.value)


def test_inverted_or_empty_box_is_an_error_with_line(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", 1, 1, 5, 5) + "\n" +
                                                 box_xml("b", 11, 1, 10, 5)))
    with pytest.raises(AnnotationError, match="x2 must exceed x1") as info:
        read(tmp_path, images)
    assert info.value.line == 14


def test_object_without_name_or_box_is_an_error(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", "<object><name>a</name></object>"))
    with pytest.raises(AnnotationError, match="no <bndbox>"):
        read(tmp_path, images)


def test_boxes_outside_are_clipped_or_dropped_with_warnings(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", -4, 1, 70, 10) + "\n" +
                                                 box_xml("b", 100, 100, 120, 120)))
    parsed = read(tmp_path, images)
    assert parsed.images[0].objects == [Box("a", 0, 0, 64, 10)]
    assert len(parsed.warnings) == 2
    assert "img0.xml:4:" in parsed.warnings[0] and "clipped" in parsed.warnings[0]
    assert "img0.xml:14:" in parsed.warnings[1] and "dropped" in parsed.warnings[1]


def test_duplicate_objects_are_kept_once_with_a_warning(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", 1, 1, 5, 5) + "\n" +
                                                 box_xml("a", 1, 1, 5, 5)))
    parsed = read(tmp_path, images)
    assert len(parsed.images[0].objects) == 1
    assert len(parsed.warnings) == 1 and "img0.xml:14:" in parsed.warnings[0] and "duplicate" in parsed.warnings[0]


def test_stated_size_disagreeing_with_image_warns_and_image_wins(tmp_path, images, make_text):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", box_xml("a", 1, 1, 5, 5), size=(640, 480)))
    parsed = read(tmp_path, images)
    assert parsed.images[0].size == (64, 48)
    assert "640x480" in parsed.warnings[0]


def test_mask_folder_pairs_masks_by_stem(tmp_path, images, make_text, make_image):
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", ""))
    make_text(tmp_path / "ann" / "img1.xml", voc("img1.png", ""))
    mask = make_image(tmp_path / "masks" / "img0.png")
    with pytest.raises(AnnotationError, match="no mask file for img1.png"):
        read(tmp_path, images, masks=tmp_path / "masks")
    make_image(tmp_path / "masks" / "img1.png")
    parsed = read(tmp_path, images, masks=tmp_path / "masks")
    assert parsed.images[0].mask == mask


def test_missing_annotation_folder(tmp_path, images):
    with pytest.raises(AnnotationError, match="annotation folder not found"):
        read(tmp_path, images)


# --- hardening (issue 19): bad XML named by file, image paths kept inside the folder, rotated boxes warned ---


@pytest.mark.parametrize("encoding", ["no-such-codec", "utf-16"])
def test_unusable_xml_encoding_is_an_error_naming_the_file(tmp_path, images, make_text, encoding):
    xml = make_text(tmp_path / "ann" / "img0.xml", f'<?xml version="1.0" encoding="{encoding}"?>\n<annotation/>')
    with pytest.raises(AnnotationError, match="malformed XML") as info:
        read(tmp_path, images)
    assert info.value.file == str(xml) and info.value.line == 1


def test_polygon_tags_with_absurd_numbers_are_ignored(tmp_path, images, make_text):
    huge = "x" + "9" * 5000  # int() refuses more than 4300 digits: a raw ValueError before
    odd = ("<object><name>blob</name><polygon><x1>30</x1><y1>30</y1><x2>40</x2><y2>30</y2><x3>35</x3>"
           f"<y3>40</y3><{huge}>1</{huge}></polygon></object>")
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", odd))
    assert read(tmp_path, images).images[0].objects == [Polygon("blob", ((30, 30), (40, 30), (35, 40)))]


def test_absolute_or_escaping_filename_is_not_followed(tmp_path, images, make_text, make_image):
    secret = make_image(tmp_path / "outside" / "secret.png")
    make_text(tmp_path / "ann" / "img0.xml", voc(str(secret), box_xml("a", 1, 1, 5, 5)))
    make_text(tmp_path / "ann" / "img1.xml", voc("../outside/secret.png", box_xml("a", 1, 1, 5, 5)))
    with pytest.warns(UnsafeImagePathWarning, match=r"img[01].xml:2: image path .*secret.png"):
        parsed = read(tmp_path, images)
    assert [e.image for e in parsed.images] == [images / "img0.png", images / "img1.png"]  # by the XML's stem
    assert sum("not followed" in w for w in parsed.warnings) == 2


def test_rotated_box_sticking_out_is_warned_like_a_box(tmp_path, images, make_text):
    obj = ("<object><name>nail</name><robndbox><cx>60</cx><cy>20</cy><w>20</w><h>6</h><angle>0</angle>"
           "</robndbox></object>")
    make_text(tmp_path / "ann" / "img0.xml", voc("img0.png", obj))
    parsed = read(tmp_path, images)
    assert parsed.images[0].objects == [RotatedBox("nail", 60, 20, 20, 6, 0.0)]
    (warning,) = parsed.warnings
    assert "img0.xml:4: rotated box 'nail' extends outside the 64x48 image img0.png; kept whole" in warning
