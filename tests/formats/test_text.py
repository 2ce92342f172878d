"""Configurable text databases: column roles, box formats, separators, class indices, pairs, preview."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrocyte_lab.data.annotations import AnnotationError, Box, ImageAnnotations, Polygon, RotatedBox
from astrocyte_lab.errors import LimitError
from astrocyte_lab.formats import DatabaseConfigError, TextDatabase, TextFormat, preview, write_text
from astrocyte_lab.formats.common import UnsafeImagePathWarning
from astrocyte_lab.formats.text import split_line


def global_db(tmp_path, images, text: str, columns: list[str], **options) -> TextFormat:
    path = tmp_path / "boxes.txt"
    path.write_text(text)
    return TextFormat(path=path, image_folder=images.parent, columns=columns, **options)


def read(config: TextFormat):
    return TextDatabase(config).read()


@pytest.mark.parametrize(("box_format", "columns", "values"), [
    ("xywh", ["x", "y", "width", "height"], "10 5 20 30"),
    ("tblr", ["top", "bottom", "left", "right"], "5 35 10 30"),
    ("xyxy", ["x1", "y1", "x2", "y2"], "10 5 30 35"),
    ("cxcywh", ["cx", "cy", "width", "height"], "20 20 20 30"),
])
def test_box_formats_give_the_same_box(tmp_path, images, box_format, columns, values):
    config = global_db(tmp_path, images, f"images/img0.png nut {values}\n", ["image", "class", *columns],
                       separator="space", box_format=box_format)
    parsed = read(config)
    assert parsed.images[0].image == images / "img0.png"
    assert parsed.images[0].objects == [Box("nut", 10, 5, 30, 35)]


def test_manual_example_several_boxes_per_image_and_extra_columns(tmp_path, images, make_text):
    # Image file, class, X, Y, Width, Height, one box per line, the same image on several lines
    make_text(tmp_path / "names.txt", "part\n")
    config = global_db(tmp_path, images,
                       "images/img0.png\t1\t10\t5\t20\t30\tignored\nimages/img1.png\t1\t0\t0\t8\t8\n"
                       "images/img0.png\t1\t40\t20\t10\t10\n",
                       ["image", "class", "x", "y", "width", "height"], box_format="xywh", class_by="index",
                       index_file=tmp_path / "names.txt", index_base=1)
    parsed = read(config)
    assert [(e.image.name, e.objects) for e in parsed.images] == [
        ("img0.png", [Box("part", 10, 5, 30, 35), Box("part", 40, 20, 50, 30)]),
        ("img1.png", [Box("part", 0, 0, 8, 8)])]
    assert parsed.categories == ["part"]


@pytest.mark.parametrize(("separator", "line"), [
    ("space", "images/img0.png   nut \t 1  2 10 12"),
    ("tab", "images/img0.png\tnut\t1\t2\t10\t12"),
    ("comma", 'images/img0.png, "nut", 1, 2, 10, 12'),
    ("semicolon", "images/img0.png;nut;1;2;10;12"),
    ("tab", "images\\img0.png\tnut\t1\t2\t10\t12"),  # written on Windows
])
def test_separators(tmp_path, images, separator, line):
    config = global_db(tmp_path, images, line + "\n", ["image", "class", "x1", "y1", "x2", "y2"],
                       separator=separator)
    assert read(config).images[0].objects == [Box("nut", 1, 2, 10, 12)]


def test_split_line_space_runs_are_one_separator():
    assert split_line("  a \t b   c ", "space") == ["a", "b", "c"]
    assert split_line("a,,c", "comma") == ["a", "", "c"]


def test_inclusive_coordinates_add_one_to_right_and_bottom(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space", coordinates_inclusive=True)
    assert read(config).images[0].objects == [Box("nut", 1, 2, 11, 13)]


def test_angle_column_gives_rotated_boxes(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 20 20 16 6 -30\nimages/img0.png nut 40 20 10 4 1\n",
                       ["image", "class", "cx", "cy", "width", "height", "angle"], separator="space",
                       box_format="cxcywh")
    first, second = read(config).images[0].objects
    assert first == RotatedBox("nut", 20, 20, 16, 6, 150.0)
    config.angle_unit = "radians"
    assert read(config).images[0].objects[1].angle == pytest.approx(57.29578, abs=1e-4)
    assert second.angle == 1.0


def test_whole_image_labels(tmp_path, images):
    config = global_db(tmp_path, images, "file,label\nimages/img0.png,good\nimages/img1.png,bad\n"
                       "images/img1.png,scratched\nimages/img1.png,bad\n",
                       ["image", "class"], separator="comma", target="image", skip_header_lines=1)
    parsed = read(config)
    assert [(e.image.name, e.labels, e.objects) for e in parsed.images] == [
        ("img0.png", ["good"], []), ("img1.png", ["bad", "scratched"], [])]
    assert parsed.categories == ["good", "bad", "scratched"]
    assert "boxes.txt:5:" in parsed.warnings[0] and "duplicate label" in parsed.warnings[0]


def test_per_image_files_are_paired_by_stem(tmp_path, images, make_text):
    make_text(tmp_path / "labels" / "img0.txt", "nut\t1\t2\t10\t12\nbolt\t20\t20\t30\t40\n")
    make_text(tmp_path / "labels" / "img2.txt", "")
    make_text(tmp_path / "labels" / "notes.csv", "not a label file")
    make_text(tmp_path / "labels" / "classes.txt", "bolt\nnut\n")
    config = TextFormat(path=tmp_path / "labels", image_folder=images, columns=["class", "x1", "y1", "x2", "y2"],
                        per_image=True, index_file=tmp_path / "labels" / "classes.txt")
    parsed = read(config)
    assert [(e.image.name, len(e.objects)) for e in parsed.images] == [("img0.png", 2), ("img2.jpg", 0)]
    assert parsed.categories == ["bolt", "nut"]  # the index file fixes the order for inline names


def test_pairs_list_and_image_stem_suffix(tmp_path, make_image, make_text):
    root = tmp_path / "data"
    make_image(root / "g1" / "a" / "001_test.jpg")
    make_image(root / "g1" / "a" / "002_test.jpg")
    make_text(root / "g1" / "a_not" / "001.txt", "1 2 10 12 2\n")
    make_text(root / "g1" / "a_not" / "002.txt", "5 5 9 9 1\n")
    make_text(root / "list.txt", "g1/a/001.jpg g1/a_not/001.txt\ng1/a/002.jpg g1/a_not/002.txt\n")
    make_text(tmp_path / "names.txt", "open\nshort\n")
    config = TextFormat(path=root, image_folder=root, columns=["x1", "y1", "x2", "y2", "class"], per_image=True,
                        separator="space", class_by="index", index_file=tmp_path / "names.txt", index_base=1,
                        pairs=root / "list.txt", image_stem_suffix="_test")
    parsed = read(config)
    assert [(e.image, e.objects) for e in parsed.images] == [
        (root / "g1" / "a" / "001_test.jpg", [Box("short", 1, 2, 10, 12)]),
        (root / "g1" / "a" / "002_test.jpg", [Box("open", 5, 5, 9, 9)])]
    assert parsed.categories == ["open", "short"]
    rows = preview(config, rows=5)
    assert rows[0]["file"].endswith("001.txt") and rows[0]["object"] == Box("short", 1, 2, 10, 12)
    (root / "list.txt").write_text("g1/a/001.jpg g1/a_not/001.txt\ng1/a/003.jpg g1/a_not/003.txt\n")
    with pytest.raises(AnnotationError, match=r"list.txt:2: label file not found"):
        read(config)
    config.skip_missing_images = True
    assert len(read(config).images) == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"columns": ["image", "class", "x1", "y1", "x2"]}, "missing: y2"),
    ({"columns": ["image", "class", "x1", "y1", "x2", "y2", "width"]}, "do not belong"),
    ({"columns": ["image", "class", "x1", "x1", "x2", "y2"]}, "more than one column"),
    ({"columns": ["image", "x1", "y1", "x2", "y2"]}, "hold the class"),
    ({"columns": ["class", "x1", "y1", "x2", "y2"]}, "needs a column naming the image"),
    ({"columns": ["image", "class", "x1", "y1", "x2", "y2"], "per_image": True}, "leave the image column"),
    ({"columns": ["image", "class", "x1", "y1", "x2", "y2"], "class_by": "index"}, "index file"),
    ({"columns": ["image", "class", "x1", "y1", "x2", "y2"], "separator": "pipe"}, "separator must be"),
    ({"columns": ["image", "class", "left"]}, "unknown column role"),
    ({"columns": ["image", "class", "x"], "target": "image"}, "no coordinate columns"),
])
def test_contradictory_options_are_refused(tmp_path, images, options, message):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\n", **options)
    if message == "unknown column role":
        config.columns = ["image", "class", "lft"]
    with pytest.raises(DatabaseConfigError, match=message):
        read(config)


def test_too_few_columns_names_file_and_line(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\nimages/img0.png nut 1 2 10\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space")
    with pytest.raises(AnnotationError) as info:
        read(config)
    assert info.value.file.endswith("boxes.txt") and info.value.line == 2 and "5 column(s)" in str(info.value)


def test_non_numeric_value_names_line_role_and_value(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 1O 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space")
    with pytest.raises(AnnotationError, match=r"boxes.txt:1: x2: '1O' is not a number"):
        read(config)


def test_unknown_class_index(tmp_path, images, make_text):
    make_text(tmp_path / "names.txt", "open\nshort\n")
    config = global_db(tmp_path, images, "images/img0.png 2 1 2 10 12\nimages/img0.png 3 1 2 10 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space", class_by="index",
                       index_file=tmp_path / "names.txt", index_base=1)
    with pytest.raises(AnnotationError, match=r"boxes.txt:2: unknown class index 3 .*numbered 1 to 2"):
        read(config)


def test_zero_size_box(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 5 5 0 10\n",
                       ["image", "class", "x", "y", "width", "height"], separator="space", box_format="xywh")
    with pytest.raises(AnnotationError, match=r"boxes.txt:1: empty or inverted box"):
        read(config)


def test_outside_and_duplicate_lines_warn(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut -5 2 10 12\nimages/img0.png nut 70 60 80 70\n"
                       "images/img0.png nut 1 2 3 4\nimages/img0.png nut 1 2 3 4\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space")
    parsed = read(config)
    assert parsed.images[0].objects == [Box("nut", 0, 2, 10, 12), Box("nut", 1, 2, 3, 4)]
    assert [w.split(": ")[0].rsplit("/", 1)[-1] for w in parsed.warnings] == ["boxes.txt:1", "boxes.txt:2",
                                                                              "boxes.txt:4"]
    assert "clipped" in parsed.warnings[0] and "dropped" in parsed.warnings[1] and "duplicate" in parsed.warnings[2]


def test_missing_image_error_or_skip(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\nImages/gone.png nut 1 2 10 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space")
    with pytest.raises(AnnotationError) as info:
        read(config)
    assert info.value.line == 2 and str(images.parent / "Images" / "gone.png") in str(info.value)
    config.skip_missing_images = True
    parsed = read(config)
    assert len(parsed.images) == 1 and "boxes.txt:2:" in parsed.warnings[0]


def test_masks_matched_by_stem(tmp_path, images, make_image):
    mask = make_image(tmp_path / "masks" / "img0.png")
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space", masks=tmp_path / "masks")
    assert read(config).images[0].mask == mask


def test_preview_reports_roles_objects_and_errors(tmp_path, images):
    config = global_db(tmp_path, images, "header\nimages/img0.png nut 1 2 10 12 x\n\nimages/img0.png nut 1 2 a 12\n"
                       "images/img0.png nut 1\nimages/img1.png nut 1 2 3 4\n",
                       ["image", "class", "x1", "y1", "x2", "y2", "unassigned"], separator="space",
                       skip_header_lines=1)
    rows = preview(config, rows=3)
    assert [r["line"] for r in rows] == [2, 4, 5]
    assert rows[0]["values"] == {"image": "images/img0.png", "class": "nut", "x1": "1", "y1": "2", "x2": "10",
                                 "y2": "12"}
    assert rows[0]["cells"][-1] == "x" and rows[0]["image"] == "images/img0.png"
    assert rows[0]["object"] == Box("nut", 1, 2, 10, 12) and rows[0]["error"] is None
    assert rows[1]["object"] is None and rows[1]["error"] == "x2: 'a' is not a number"
    assert rows[2]["values"]["y2"] is None and "column(s)" in rows[2]["error"]
    config.columns = ["unassigned"] * 6  # what a form starts with: every row shows why nothing parses
    rows = preview(config)
    assert len(rows) == 4 and all("hold the class" in r["error"] for r in rows)


def test_write_text_round_trip_per_image_and_global(tmp_path, images):
    entries = [ImageAnnotations(images / "img0.png", [Box("nut", 1, 2, 30, 40), Box("bolt", 0.5, 0, 64, 48)]),
               ImageAnnotations(images / "img2.jpg", [Polygon("nut", ((1, 2), (9, 2), (5, 8)))]),
               ImageAnnotations(images / "img1.png", [])]
    config = write_text(tmp_path / "labels", entries, images)
    assert (tmp_path / "labels" / "img0.txt").read_text() == "nut\t1\t2\t30\t40\nbolt\t0.5\t0\t64\t48\n"
    expected = {"img0.png": entries[0].objects, "img2.jpg": [Box("nut", 1, 2, 9, 8)], "img1.png": []}
    assert {e.image.name: e.objects for e in read(config).images} == expected
    config = write_text(tmp_path / "all.tsv", entries, images.parent, per_image=False)
    assert (tmp_path / "all.tsv").read_text().startswith("images/img0.png\tnut\t1\t2\t30\t40\n")
    parsed = read(config)
    assert [e.objects for e in parsed.images] == [expected["img0.png"], expected["img2.jpg"]]  # img1: no line
    with pytest.raises(DatabaseConfigError):
        write_text(tmp_path / "bad", [ImageAnnotations(images / "img0.png", [Box("a\tb", 1, 1, 2, 2)])], images)


# --- hardening (issue 19): options of the wrong type, oversized fields, image paths kept inside the folder ---


@pytest.mark.parametrize(("options", "message"), [
    ({"skip_header_lines": "1"}, "option 'skip_header_lines' must be a whole number, not '1'"),
    ({"index_base": "1"}, "option 'index_base' must be a whole number, not '1'"),
    ({"columns": None}, "option 'columns' must be a list of column roles, not None"),
    ({"per_image": "no"}, "option 'per_image' must be true or false"),
    ({"path": None}, "option 'path' must be a path, not None"),
])
def test_options_of_the_wrong_type_are_config_errors(tmp_path, images, options, message):
    values = {"path": tmp_path / "boxes.txt", "image_folder": images, "columns": ["image", "class", "x1", "y1", "x2",
                                                                                  "y2"], **options}
    with pytest.raises(DatabaseConfigError, match=message):
        TextFormat(**values)
    with pytest.raises(DatabaseConfigError, match=message):
        TextDatabase({key: str(value) if isinstance(value, Path) else value for key, value in values.items()})


def test_options_changed_to_the_wrong_type_are_refused_by_read_and_preview(tmp_path, images):
    config = global_db(tmp_path, images, "images/img0.png nut 1 2 10 12\n", ["image", "class", "x1", "y1", "x2", "y2"],
                       separator="space")
    config.skip_header_lines = "1"
    with pytest.raises(DatabaseConfigError, match="skip_header_lines"):
        read(config)
    with pytest.raises(DatabaseConfigError, match="skip_header_lines"):
        preview(config)


def test_csv_field_over_pythons_limit_is_an_error_naming_file_and_line(tmp_path, images):
    config = global_db(tmp_path, images, f'images/img0.png,nut,1,2,10,12\nimages/img0.png,"{"x" * 200_000}",1,2,3,4\n',
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="comma")
    with pytest.raises(AnnotationError, match=r"boxes.txt:2: unreadable comma-separated line \(field larger"):
        read(config)
    rows = preview(config)
    assert rows[0]["error"] is None and "field larger" in rows[1]["error"]


def test_field_over_the_text_field_limit_is_a_limit_error(tmp_path, images, monkeypatch):
    monkeypatch.setenv("ASTROCYTE_MAX_TEXT_FIELD_CHARS", "100")
    config = global_db(tmp_path, images, f"images/img0.png {'n' * 101} 1 2 10 12\n",
                       ["image", "class", "x1", "y1", "x2", "y2"], separator="space")
    with pytest.raises(LimitError, match=r"boxes.txt:1: longest field \(characters\) is 101, above the limit of 100"):
        read(config)


def test_image_column_leaving_the_image_folder_is_not_followed(tmp_path, images, make_image, make_text):
    secret = make_image(tmp_path / "outside" / "secret.png")
    make_image(tmp_path / "outside" / "img1.png")
    path = make_text(tmp_path / "boxes.txt", f"{secret}\tnut\t1\t2\t10\t12\n")
    config = TextFormat(path=path, image_folder=images, columns=["image", "class", "x1", "y1", "x2", "y2"])
    with pytest.warns(UnsafeImagePathWarning, match=r"boxes.txt:1: image path"), \
            pytest.raises(AnnotationError, match=f"expected {images / 'secret.png'}"):
        read(config)
    path.write_text("../outside/img1.png\tnut\t1\t2\t10\t12\n")
    with pytest.warns(UnsafeImagePathWarning):
        parsed = read(config)
    assert [e.image for e in parsed.images] == [images / "img1.png"] and "not followed" in parsed.warnings[0]


def test_pairs_list_paths_leaving_their_folders_are_not_followed(tmp_path, make_image, make_text):
    root = tmp_path / "data"
    make_image(root / "001.jpg")
    make_image(tmp_path / "outside" / "001.jpg", seed=5)
    make_text(root / "001.txt", "1 2 10 12 nut\n")
    make_text(tmp_path / "outside" / "001.txt", "5 5 9 9 secret\n")
    make_text(root / "list.txt", f"{tmp_path / 'outside' / '001.jpg'} ../outside/001.txt\n")
    config = TextFormat(path=root, image_folder=root, columns=["x1", "y1", "x2", "y2", "class"], per_image=True,
                        separator="space", pairs=root / "list.txt")
    with pytest.warns(UnsafeImagePathWarning) as record:
        parsed = read(config)
    assert sorted(str(w.message).split(": ")[1].split(" path")[0] for w in record) == ["image", "label"]
    assert all("list.txt:1: " in str(w.message) for w in record)
    assert [(e.image, e.objects) for e in parsed.images] == [(root / "001.jpg", [Box("nut", 1, 2, 10, 12)])]
    assert len(parsed.warnings) == 2
