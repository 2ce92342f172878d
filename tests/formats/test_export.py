"""Dataset-level export (VOC tar / COCO / YOLO) and re-import: annotations survive the round trip."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace, samples, segmentation_set
from astrocyte_lab.data.annotations import Box, Polygon, RotatedBox
from astrocyte_lab.data.sources import DatabaseSet
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.formats import CocoDatabase, TextDatabase, TextFormat, VocDatabase, YoloDatabase
from astrocyte_lab.formats.export import export_annotated, import_voc_export


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    samples.generate(root, ["hardware", "hardware_rotated", "hardware_partial", "scratches"])
    return root


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def hardware_text(root: Path, name: str = "hardware") -> TextDatabase:
    return TextDatabase(TextFormat(path=root / name / "labels", image_folder=root / name / "images",
                                   columns=["class", "x1", "y1", "x2", "y2"], per_image=True))


def all_objects(dataset) -> dict[str, list]:
    names = dataset.table["name"].tolist()
    return {Path(n).stem: dataset.objects(i) for n, i in zip(names, dataset.ids.tolist(), strict=True)}


def assert_same_objects(a: dict[str, list], b: dict[str, list], tol: float = 1e-3) -> None:
    assert a.keys() == b.keys()
    for stem in a:
        assert len(a[stem]) == len(b[stem]), stem
        for x, y in zip(a[stem], b[stem], strict=True):
            assert type(x) is type(y) and x.category == y.category
            if isinstance(x, RotatedBox):
                assert np.allclose(x.corners(), y.corners(), atol=tol)
            else:
                assert np.allclose(x.bounds(), y.bounds(), atol=tol)


def test_sample_hardware_variants_import(ws: Workspace, sample_root: Path) -> None:
    plain = ws.create_dataset("hw", "detection", [DatabaseSet("db", hardware_text(sample_root))])
    assert len(plain) == 60 and plain.table["n_ground_truth"].min() >= 1
    rotated = ws.create_dataset("rot", "detection", [DatabaseSet("db", VocDatabase(
        sample_root / "hardware_rotated" / "Annotations", sample_root / "hardware_rotated" / "images"))])
    assert all(isinstance(o, RotatedBox) for o in rotated.objects(0))
    partial = ws.create_dataset("partial", "detection", [
        NamedSet("unlabelled", [Location(sample_root / "hardware_partial" / "images")]),
        DatabaseSet("labelled", hardware_text(sample_root, "hardware_partial"))])
    table = partial.table
    assert len(partial) == 100
    assert int((table["n_ground_truth"] > 0).sum()) == 40
    assert (table["named_set"] == "labelled").sum() == 40


@pytest.mark.parametrize("variant", ["hardware", "hardware_rotated"])
def test_voc_tar_round_trip(ws: Workspace, sample_root: Path, tmp_path: Path, variant: str) -> None:
    if variant == "hardware":
        database = hardware_text(sample_root)
    else:
        database = VocDatabase(sample_root / variant / "Annotations", sample_root / variant / "images")
    original = ws.create_dataset("orig", "detection", [DatabaseSet("db", database)], seed=4)
    archive = export_annotated(original, tmp_path / "orig.tar")
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert {"labels.txt", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt"} <= members
    back = import_voc_export(ws, archive, "back")
    assert back.categories == original.categories
    assert_same_objects(all_objects(original), all_objects(back))
    assert back.table["assigned"].tolist() == original.table["assigned"].tolist()
    assert np.array_equal(back.image(0), original.image(0))


def test_coco_and_yolo_exports_read_back(ws: Workspace, sample_root: Path, tmp_path: Path) -> None:
    original = ws.create_dataset("orig", "detection", [DatabaseSet("db", hardware_text(sample_root))])
    original.add_object(0, RotatedBox(original.categories[0], 100, 100, 40, 10, 30.0))
    original.save()
    coco = export_annotated(original, tmp_path / "coco", "coco")
    yolo = export_annotated(original, tmp_path / "yolo", "yolo")
    from_coco = ws.create_dataset("coco", "detection", [DatabaseSet("db", CocoDatabase(
        coco / "annotations.json", coco / "images"))])
    from_yolo = ws.create_dataset("yolo", "detection", [DatabaseSet("db", YoloDatabase(
        yolo / "labels", yolo / "images", yolo / "classes.txt"))])
    assert_same_objects(all_objects(original), all_objects(from_yolo), tol=0.05)
    coco_objects = all_objects(from_coco)
    rotated_back = coco_objects[Path(original.table["name"].iloc[0]).stem][-1]
    assert isinstance(rotated_back, Polygon)  # COCO has no rotated box: it returns as its 4-corner polygon
    assert np.allclose(rotated_back.corners(), original.objects(0)[-1].corners(), atol=1e-3)
    boxes_only = {k: [o for o in v if isinstance(o, Box)] for k, v in coco_objects.items()}
    expected = {k: [o for o in v if isinstance(o, Box)] for k, v in all_objects(original).items()}
    assert_same_objects(expected, boxes_only)


def test_segmentation_tar_round_trip_keeps_masks_and_names(ws: Workspace, sample_root: Path, tmp_path: Path) -> None:
    seg = ws.create_dataset("seg", "segmentation", [segmentation_set(
        "s", sample_root / "scratches" / "images", sample_root / "scratches" / "masks")])
    for value, name in (("0", "background"), ("1", "scratch"), ("2", "spot")):
        seg.rename_category(value, name)
    seg.save()
    back = import_voc_export(ws, export_annotated(seg, tmp_path / "seg.tar"), "seg-back", "segmentation")
    assert back.categories == ["background", "scratch", "spot"]
    for a, b in zip(seg.ids.tolist(), back.ids.tolist(), strict=True):
        assert np.array_equal(seg.mask(a), back.mask(b))


def test_export_refuses_what_it_cannot_hold(ws: Workspace, tmp_path: Path, sample_root: Path) -> None:
    cls = ws.create_dataset("cls", "classification", [NamedSet("s", [Location(
        sample_root / "hardware" / "images", category="part")])])
    with pytest.raises(AstrocyteError, match="astrods"):
        export_annotated(cls, tmp_path / "x.tar")
    det = ws.create_dataset("det", "detection", [DatabaseSet("db", hardware_text(sample_root))])
    with pytest.raises(AstrocyteError, match="unknown export format"):
        export_annotated(det, tmp_path / "x", "pascal")  # type: ignore[arg-type]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(AstrocyteError, match="not empty"):
        export_annotated(det, tmp_path / "full", "yolo")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_bad_import_leaves_no_half_dataset(ws: Workspace, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar at all")
    with pytest.raises(AstrocyteError, match="bogus.tar"):
        import_voc_export(ws, bogus, "broken")
    assert "broken" not in ws.dataset_names()
    assert not (ws.path / "imports" / "broken").exists()


# -- review of the issue-19 hardening: label values, text-file limit, name conflicts --------------------------------
def _voc_folder(tmp_path: Path, labels: bytes) -> Path:
    folder = tmp_path / "voc"
    (folder / "JPEGImages").mkdir(parents=True)
    (folder / "labels.txt").write_bytes(labels)
    return folder


@pytest.mark.parametrize("value", ["²", "1" * 5000, "-1", "1_000", "٣"])
def test_label_values_must_be_plain_digits(ws: Workspace, tmp_path: Path, value: str) -> None:
    """``str.isdigit`` accepted '²' and 5000 digits, which ``int`` then refused with a raw ValueError."""
    folder = _voc_folder(tmp_path, f"0 background\n{value} odd\n".encode())
    with pytest.raises(AstrocyteError, match=r"labels\.txt:2: expected 'value name'"):
        import_voc_export(ws, folder, "x")
    assert ws.dataset_names() == [] and not (ws.path / "imports" / "x").exists()


def test_export_text_files_are_read_under_the_annotation_limit(ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    from astrocyte_lab.errors import LimitError

    folder = _voc_folder(tmp_path, b"0 background\n1 a-rather-long-category-name\n")
    monkeypatch.setenv("ASTROCYTE_MAX_ANNOTATION_FILE_BYTES", "16")
    with pytest.raises(LimitError, match=r"labels\.txt: .*ASTROCYTE_MAX_ANNOTATION_FILE_BYTES"):
        import_voc_export(ws, folder, "x")
    assert ws.dataset_names() == []


def test_import_under_an_existing_name_keeps_that_dataset(ws: Workspace, tmp_path: Path, sample_root: Path) -> None:
    """The import used to go on to ``create_dataset``, whose NameConflictError the clean-up then answered by
    deleting the user's existing dataset of that name."""
    from astrocyte_lab.errors import NameConflictError

    mine = ws.create_dataset("det", "detection", [DatabaseSet("db", hardware_text(sample_root))])
    with pytest.raises(NameConflictError, match="'det' already exists"):
        import_voc_export(ws, export_annotated(mine, tmp_path / "det.tar"), "det")
    assert ws.dataset_names() == ["det"] and len(ws.dataset("det")) == len(mine)
    assert not (ws.path / "imports" / "det").exists()
