"""The format table: every database saves to a dict and is rebuilt from it unchanged."""

from __future__ import annotations

import json

import pytest

from astrocyte_lab.formats import (
    DATABASE_FORMATS,
    CocoDatabase,
    DatabaseConfigError,
    KittiDatabase,
    TextDatabase,
    TextFormat,
    VocDatabase,
    YoloDatabase,
    database_from_dict,
)


def databases(tmp_path):
    return [
        VocDatabase(tmp_path / "ann", tmp_path / "img", masks=tmp_path / "masks", skip_missing_images=True),
        CocoDatabase(tmp_path / "i.json", tmp_path / "img", use_segmentation=False, include_crowd=True),
        KittiDatabase(tmp_path / "labels", tmp_path / "img"),
        YoloDatabase(tmp_path / "labels", tmp_path / "img", tmp_path / "data.yaml"),
        TextDatabase(TextFormat(tmp_path / "b.csv", tmp_path, ["image", "class", "x", "y", "width", "height"],
                                separator="comma", box_format="xywh", class_by="index", index_file=tmp_path / "n",
                                index_base=1, skip_header_lines=2, pairs=None, masks=tmp_path / "m")),
    ]


def test_table_names_every_format():
    assert DATABASE_FORMATS == {"voc": VocDatabase, "coco": CocoDatabase, "kitti": KittiDatabase,
                                "yolo": YoloDatabase, "text": TextDatabase}


def test_every_database_round_trips_through_a_json_dict(tmp_path):
    for database in databases(tmp_path):
        saved = json.loads(json.dumps(database.to_dict()))
        assert DATABASE_FORMATS[saved["format"]] is type(database)
        assert database_from_dict(saved) == database


def test_text_database_accepts_a_plain_dict_config(tmp_path):
    text = databases(tmp_path)[-1]
    assert TextDatabase(text.config.to_dict()) == text


def test_unknown_or_incomplete_descriptions_are_refused(tmp_path):
    with pytest.raises(DatabaseConfigError, match="unknown database format 'labelme'"):
        database_from_dict({"format": "labelme"})
    with pytest.raises(DatabaseConfigError, match="lacks 'images'"):
        database_from_dict({"format": "voc", "annotations": "a"})
    with pytest.raises(DatabaseConfigError, match="unknown text format option"):
        database_from_dict({"format": "text", "config": {"path": "a", "image_folder": "b", "columns": [],
                                                         "colour": "red"}})


@pytest.mark.parametrize(("description", "message"), [
    ([["format", "voc"]], "a database description is a mapping"),
    ({"format": ["voc"]}, r"unknown database format \['voc'\]"),
    ({"format": "voc", "annotations": None, "images": "img"}, "option 'annotations' must be a path, not None"),
    ({"format": "coco", "annotation_file": "a.json", "images": 3}, "option 'images' must be a path, not 3"),
    ({"format": "yolo", "labels": "l", "images": "i", "names": "n", "skip_missing_images": "yes"},
     "option 'skip_missing_images' must be true or false"),
    ({"format": "text", "config": "b.csv"}, "mapping of options"),
    ({"format": "text", "config": {"path": "a", "image_folder": "b"}}, r"lacks option\(s\) \['columns'\]"),
])
def test_descriptions_of_the_wrong_type_are_refused(description, message):
    with pytest.raises(DatabaseConfigError, match=message):
        database_from_dict(description)
