"""MS COCO instances files: boxes, polygons, RLE masks, crowds, refused file kinds, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrocyte_lab.data.annotations import AnnotationError, Box, ImageAnnotations, Polygon, RotatedBox
from astrocyte_lab.errors import LimitError
from astrocyte_lab.formats import CocoDatabase, coco_document, rle, write_coco
from astrocyte_lab.formats.common import UnsafeImagePathWarning


def document(annotations: list[dict], images: list[dict] | None = None) -> dict:
    return {"images": images if images is not None else [{"id": 1, "file_name": "img0.png", "width": 64,
                                                          "height": 48}],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "nut"}, {"id": 7, "name": "bolt"}]}


def ann(id_: int, bbox: list, category: int = 1, **extra) -> dict:
    return {"id": id_, "image_id": 1, "category_id": category, "bbox": bbox, "iscrowd": 0, **extra}


def read(tmp_path, images, doc: dict | str, **options):
    path = tmp_path / "instances.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=1))
    return CocoDatabase(path, images, **options).read()


def test_round_trip(tmp_path, images):
    entries = [
        ImageAnnotations(images / "img0.png", [Box("nut", 1, 2, 30, 40), Box("bolt", 0, 0, 64, 48),
                                               Polygon("bolt", ((5, 5), (20.5, 7), (12, 30)))]),
        ImageAnnotations(images / "img2.jpg", [RotatedBox("nut", 40, 30, 20, 10, 30.0)]),
        ImageAnnotations(images / "img1.png", []),
    ]
    path = write_coco(tmp_path / "out.json", entries, ["nut", "bolt"], image_root=images)
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == ["nut", "bolt"]
    assert data["annotations"][0]["bbox"] == [1, 2, 29, 38] and data["annotations"][0]["area"] == 29 * 38
    parsed = CocoDatabase(path, images).read()
    assert parsed.warnings == [] and parsed.categories == ["nut", "bolt"]
    by_name = {e.image.name: e for e in parsed.images}
    assert by_name["img0.png"].objects == entries[0].objects
    assert by_name["img1.png"].objects == []
    (rotated,) = by_name["img2.jpg"].objects  # COCO has no rotated box: it comes back as its corner polygon
    assert isinstance(rotated, Polygon)
    np.testing.assert_allclose(rotated.corners(), entries[1].objects[0].corners(), atol=1e-6)


def test_document_rotated_box_area_and_bbox(tmp_path, images):
    doc = coco_document([ImageAnnotations(images / "img0.png", [RotatedBox("nut", 30, 20, 10, 4, 90.0)])],
                        ["nut"])
    (item,) = doc["annotations"]
    assert item["area"] == pytest.approx(40)
    assert item["bbox"] == pytest.approx([28, 15, 4, 10])
    assert len(item["segmentation"][0]) == 8 and doc["images"][0]["file_name"] == "img0.png"


def test_polygons_win_over_bbox_unless_disabled(tmp_path, images):
    doc = document([ann(1, [2, 2, 10, 10], segmentation=[[2, 2, 12, 2, 12, 12], [20, 20, 30, 20, 25, 30]])])
    assert read(tmp_path, images, doc).images[0].objects == [
        Polygon("nut", ((2, 2), (12, 2), (12, 12))), Polygon("nut", ((20, 20), (30, 20), (25, 30)))]
    assert read(tmp_path, images, doc, use_segmentation=False).images[0].objects == [Box("nut", 2, 2, 12, 12)]


@pytest.mark.parametrize("compact", [True, False])
def test_rle_masks_become_outline_polygons(tmp_path, images, compact):
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 5:25] = 1
    mask[30:40, 40:60] = 1
    doc = document([ann(1, [5, 10, 55, 30], segmentation=rle.encode(mask, compact))])
    objects = read(tmp_path, images, doc).images[0].objects
    assert len(objects) == 2 and all(isinstance(o, Polygon) for o in objects)
    bounds = sorted(o.bounds() for o in objects)
    assert bounds == [(5.5, 10.5, 24.5, 19.5), (40.5, 30.5, 59.5, 39.5)]  # through boundary pixel centres


def test_tiny_rle_mask_falls_back_to_bbox(tmp_path, images):
    mask = np.zeros((48, 64), np.uint8)
    mask[3, 4] = 1
    parsed = read(tmp_path, images, document([ann(1, [4, 3, 1, 1], segmentation=rle.encode(mask))]))
    assert parsed.images[0].objects == [Box("nut", 4, 3, 5, 4)] and "too small" in parsed.warnings[0]


def test_rle_string_codec():
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 1
    # runs in column order: 5 zeros, 2 ones, 2 zeros, 2 ones, 5 zeros; from the 4th run on the difference to
    # the run two places earlier is stored (2-2=0, 5-2=3)
    assert rle.encode(mask, compact=False)["counts"] == [5, 2, 2, 2, 5]
    assert rle.encode(mask)["counts"] == "52203"
    assert rle.decode_counts("52203") == [5, 2, 2, 2, 5]
    runs = [0, 100, 3, 1000, 1, 40]  # negative differences and several 5-bit groups
    assert rle.decode_counts(rle.encode_counts(runs)) == runs
    rng = np.random.default_rng(1)
    for _ in range(20):
        random_mask = (rng.random((rng.integers(1, 20), rng.integers(1, 20))) < 0.4).astype(np.uint8)
        np.testing.assert_array_equal(rle.decode(rle.encode(random_mask)), random_mask)
    with pytest.raises(ValueError):
        rle.decode({"size": [4, 4], "counts": [5, 2]})


def test_crowd_annotations_are_left_out_unless_asked(tmp_path, images):
    doc = document([ann(1, [2, 2, 10, 10]), ann(2, [20, 20, 10, 10], iscrowd=1)])
    parsed = read(tmp_path, images, doc)
    assert parsed.images[0].objects == [Box("nut", 2, 2, 12, 12)]
    assert "1 crowd annotation" in parsed.warnings[0]
    assert len(read(tmp_path, images, doc, include_crowd=True).images[0].objects) == 2


@pytest.mark.parametrize(("doc", "kind"), [
    ({"images": [], "annotations": [{"id": 1, "image_id": 1, "caption": "a nut"}]}, "captions"),
    ({"images": [], "annotations": [{"id": 1, "image_id": 1, "keypoints": [1, 2, 2], "bbox": [0, 0, 1, 1]}],
      "categories": [{"id": 1, "name": "person", "keypoints": ["nose"]}]}, "keypoints"),
    ({"images": [], "annotations": []}, "categories"),
])
def test_only_instances_files_are_read(tmp_path, images, doc, kind):
    with pytest.raises(AnnotationError, match="only MS COCO instances files are supported") as info:
        read(tmp_path, images, doc)
    assert kind in str(info.value)


def test_malformed_json_names_file_and_line(tmp_path, images):
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images, '{\n "images": [],\n "annotations": [,]\n}')
    assert info.value.line == 3 and info.value.file.endswith("instances.json") and "malformed JSON" in str(info.value)


def test_unknown_category_and_image_are_errors(tmp_path, images):
    with pytest.raises(AnnotationError, match="annotation 5: unknown category_id 3"):
        read(tmp_path, images, document([ann(5, [1, 1, 2, 2], category=3)]))
    with pytest.raises(AnnotationError, match="image_id 9"):
        read(tmp_path, images, document([{**ann(5, [1, 1, 2, 2]), "image_id": 9}]))


def test_non_numeric_and_empty_boxes_are_errors(tmp_path, images):
    with pytest.raises(AnnotationError, match=r"annotation 4 bbox width: 'wide' is not a number"):
        read(tmp_path, images, document([ann(4, [1, 1, "wide", 2])]))
    with pytest.raises(AnnotationError, match="annotation 6: empty or inverted box"):
        read(tmp_path, images, document([ann(6, [1, 1, 0, 2])]))
    with pytest.raises(AnnotationError, match="even-length"):
        read(tmp_path, images, document([ann(7, [1, 1, 2, 2], segmentation=[[1, 2, 3]])]))


def test_boxes_outside_are_clipped_and_duplicates_kept_once(tmp_path, images):
    doc = document([ann(1, [50, 40, 30, 30], category=7), ann(2, [1, 1, 5, 5]), ann(3, [1, 1, 5, 5]),
                    ann(4, [100, 100, 5, 5])])
    parsed = read(tmp_path, images, doc)
    assert parsed.images[0].objects == [Box("bolt", 50, 40, 64, 48), Box("nut", 1, 1, 6, 6)]
    assert len(parsed.warnings) == 3
    assert "annotation 1: box 'bolt' extends outside" in parsed.warnings[0]
    assert "annotation 3: duplicate" in parsed.warnings[1]
    assert "annotation 4: box 'nut' lies entirely outside" in parsed.warnings[2]


def test_missing_image_error_or_skip(tmp_path, images):
    doc = document([ann(1, [1, 1, 5, 5])], images=[{"id": 1, "file_name": "sub/gone.png", "width": 64,
                                                     "height": 48}])
    with pytest.raises(AnnotationError) as info:
        read(tmp_path, images, doc)
    assert "instances.json" in str(info.value) and str(images / "sub" / "gone.png") in str(info.value)
    parsed = read(tmp_path, images, doc, skip_missing_images=True)
    assert parsed.images == [] and "skipped" in parsed.warnings[0]


def test_images_without_annotations_are_labelled_negatives(tmp_path, images):
    parsed = read(tmp_path, images, document([], images=[{"id": 1, "file_name": "img1.png"}]))
    assert [(e.image.name, e.objects, e.size) for e in parsed.images] == [("img1.png", [], (64, 48))]


# --- hardening (issue 19): size limits, bad input named by file, image paths kept inside the folder ---


def test_rle_size_must_be_the_image_size(tmp_path, images):
    mask = np.zeros((480, 640), np.uint8)  # ten times the 64x48 image: would decode and give polygons before
    mask[10:20, 5:25] = 1
    with pytest.raises(AnnotationError, match=r"annotation 1: RLE size \[480, 640\].*image's size \[48, 64\]"):
        read(tmp_path, images, document([ann(1, [5, 10, 20, 10], segmentation=rle.encode(mask))]))


def test_rle_size_above_the_pixel_limit_is_refused_before_decoding(monkeypatch):
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(LimitError, match=r"instances.json: annotation 3 RLE.*100 x 100.*ASTROCYTE_MAX_IMAGE_PIXELS"):
        rle.decode({"size": [100, 100], "counts": [10000]}, "instances.json: annotation 3 RLE")
    with pytest.raises(ValueError, match="more than 13 characters"):  # one endless count: no quadratic big-int
        rle.decode_counts("o" * 10_000)


@pytest.mark.parametrize(("text", "message"), [
    ('{"images": [{"id": 1, "file_name": "img0.png", "width": Infinity, "height": 48}], "annotations": [], '
     '"categories": []}', "Infinity"),
    ('{"images": [{"id": 1, "file_name": "img0.png"}], "categories": [{"id": 1, "name": "nut"}], '
     '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [NaN, 1, 2, 2]}]}', "NaN"),
    ('{"images": [{"id": [1], "file_name": "img0.png"}], "annotations": [], "categories": []}',
     r"images\[0\] id: \[1\] is not an integer or string id"),
    ('{"images": [], "annotations": [], "categories": [{"id": {"a": 1}, "name": "nut"}]}',
     r"categories\[0\] id: \{'a': 1\} is not an integer or string id"),
    ('{"images": [{"id": 1, "file_name": "img0.png"}], "categories": [{"id": 1, "name": "nut"}], '
     '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1' + "0" * 400 + ', 1, 2, 2]}]}',
     "bbox x: 1000.* is too large"),
    ('{"images": [{"id": 1, "file_name": ["img0.png"]}], "annotations": [], "categories": []}',
     "'file_name' must be a string"),
    ('{"images": [{"id": 1, "file_name": "img0.png"}], "categories": [{"id": 1, "name": "nut"}], '
     '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [true, 1, 2, 2]}]}',
     "bbox x: True is not a number"),
])
def test_malformed_values_are_errors_naming_the_file(tmp_path, images, text, message):
    with pytest.raises(AnnotationError, match=message) as info:
        read(tmp_path, images, text)
    assert info.value.file.endswith("instances.json")


def test_deeply_nested_json_is_a_limit_error_naming_the_file(tmp_path, images):
    with pytest.raises(LimitError, match=r"instances.json: JSON nested 100001 levels deep"):
        read(tmp_path, images, '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize("style", ["absolute", "parent"])
def test_image_paths_leaving_the_folder_are_not_followed(tmp_path, images, make_image, style):
    secret = make_image(tmp_path / "outside" / "secret.png")
    make_image(tmp_path / "outside" / "img1.png")
    names = {"absolute": (str(secret), str(tmp_path / "outside" / "img1.png")),
             "parent": ("../outside/secret.png", "sub/../../outside/img1.png")}[style]
    doc = document([], images=[{"id": 1, "file_name": names[0]}])
    with pytest.warns(UnsafeImagePathWarning, match="instances.json"), pytest.raises(AnnotationError) as info:
        read(tmp_path, images, doc)
    assert f"expected {images / 'secret.png'}" in str(info.value)
    with pytest.warns(UnsafeImagePathWarning):  # found by base name inside the image folder instead
        parsed = read(tmp_path, images, document([], images=[{"id": 1, "file_name": names[1]}]))
    assert [e.image for e in parsed.images] == [images / "img1.png"]
    assert "not followed" in parsed.warnings[0] and "instances.json" in parsed.warnings[0]
