"""Single-file export/import of a dataset and whole-workspace backup/restore."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from astrocyte_lab.data.sources import Location, NamedSet, segmentation_set
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError, FormatVersionError, NameConflictError


@pytest.fixture
def seg(ws, images, tmp_path):
    """A segmentation dataset with edited categories, a hand-drawn mask, an ROI and a description."""
    for i in range(3):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        mask = np.zeros((24, 32), np.uint8)
        mask[: 4 + i] = 5
        images.write(tmp_path / f"mask/p{i}.png", mask)
    ds = ws.create_dataset("seg", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")],
                           description="exported", seed=2)
    ds.rename_category("5", "crack")
    drawn = np.zeros((24, 32), np.uint8)
    drawn[10:20, 10:20] = 1
    ds.set_mask(2, drawn)
    roi = np.zeros((24, 32), bool)
    roi[:, :3] = True
    ds.set_roi(roi, invert=False)
    ds.assign_set(0, "validation")
    ds.save()
    return ds


def assert_same_dataset(a, b) -> None:
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.categories == b.categories and a.module == b.module and a.description == b.description
    assert a.geometry == b.geometry and a.bit_depth == b.bit_depth
    for image_id in a.ids:
        np.testing.assert_array_equal(a.image(int(image_id)), b.image(int(image_id)))
        ma, mb = a.mask(int(image_id)), b.mask(int(image_id))
        assert (ma is None) == (mb is None)
        if ma is not None:
            np.testing.assert_array_equal(ma, mb)
    ra, rb = a.active_region(), b.active_region()
    assert (ra is None) == (rb is None)
    if ra is not None:
        np.testing.assert_array_equal(ra, rb)
    assert a.roi_bbox() == b.roi_bbox()


def test_export_import_round_trip_under_new_name(ws, seg, tmp_path):
    file = ws.export_dataset("seg", tmp_path / "seg.astrods")
    assert file.is_file() and not list(tmp_path.glob(".*.partial"))
    other = Workspace(tmp_path / "other")
    imported = other.import_dataset(file, name="renamed")
    assert other.dataset_names() == ["renamed"] and imported.name == "renamed"
    assert_same_dataset(ws.dataset("seg"), other.dataset("renamed"))
    assert imported.categories == ["0", "crack"] and imported.roi_bbox() == (3, 0, 29, 24)
    # the import is a working dataset: edit and save it without touching the original
    imported.relabel(0, "crack")
    imported.save()
    assert other.dataset("renamed").table.loc[0, "ground_truth"] == "crack"
    assert ws.dataset("seg").table.loc[0, "ground_truth"] == ""


def test_import_keeps_original_name_and_refuses_conflicts(ws, seg, tmp_path):
    file = ws.export_dataset("seg", tmp_path / "seg.astrods")
    other = Workspace(tmp_path / "other")
    assert other.import_dataset(file).name == "seg"
    with pytest.raises(NameConflictError):
        other.import_dataset(file)
    with pytest.raises(NameConflictError):
        ws.import_dataset(file)
    assert ws.import_dataset(file, name="seg copy").name == "seg copy"


def test_export_contains_only_the_saved_version(ws, seg, tmp_path):
    seg.relabel(1, "crack")  # unsaved: not exported
    file = ws.export_dataset("seg", tmp_path / "seg.astrods")
    imported = Workspace(tmp_path / "other").import_dataset(file)
    assert imported.table.loc[1, "ground_truth"] == ""
    with tarfile.open(file) as tar:
        versions = {n.split("/")[1] for n in tar.getnames() if n.startswith("versions/")}
    assert len(versions) == 1


def _tar_with(members: dict[str, bytes], path):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["random_bytes", "empty", "tar_without_manifest", "manifest_only",
                                  "truncated_export", "bad_json", "corrupt_table", "missing_batch"])
def test_import_of_corrupt_file_is_a_clear_error(ws, seg, tmp_path, kind):
    path = tmp_path / f"{kind}.astrods"
    if kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "tar_without_manifest":
        _tar_with({"hello.txt": b"hi"}, path)
    elif kind == "manifest_only":
        _tar_with({"astrocyte-dataset.json": json.dumps({"format_version": 1, "name": "m"}).encode()}, path)
    elif kind == "truncated_export":
        data = ws.export_dataset("seg", tmp_path / "full.astrods").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind in ("corrupt_table", "missing_batch"):
        full = ws.export_dataset("seg", tmp_path / "full.astrods")
        members = {}
        with tarfile.open(full) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    members[member.name] = tar.extractfile(member).read()
        if kind == "corrupt_table":
            table_meta = next(n for n in members if n.startswith("versions/") and n.count("/") == 2
                              and n.endswith("zarr.json"))
            members[table_meta] = b"garbage"
        else:
            members = {n: d for n, d in members.items() if not n.startswith("pixels/")}
        _tar_with(members, path)
    else:
        _tar_with({"astrocyte-dataset.json": b"{not json"}, path)
    other = Workspace(tmp_path / "other")
    with pytest.raises(AstrocyteError, match=str(path.name)):
        other.import_dataset(path, name="x")
    assert other.dataset_names() == []
    assert list((other.path / "datasets").iterdir()) == []  # no staging folder left behind


def test_import_missing_file(ws, tmp_path):
    with pytest.raises(AstrocyteError, match="no such file"):
        ws.import_dataset(tmp_path / "nothing.astrods")


def test_import_newer_export_format(ws, tmp_path):
    path = _tar_with({"astrocyte-dataset.json": json.dumps({"format_version": 99, "name": "m"}).encode()},
                     tmp_path / "new.astrods")
    with pytest.raises(FormatVersionError):
        ws.import_dataset(path)


def test_import_rejects_path_traversal(ws, seg, tmp_path):
    manifest = json.dumps({"format_version": 1, "name": "evil"}).encode()
    path = _tar_with({"astrocyte-dataset.json": manifest, "../escaped.txt": b"x"}, tmp_path / "evil.astrods")
    with pytest.raises(AstrocyteError):
        ws.import_dataset(path)
    assert not (ws.path / "datasets/escaped.txt").exists() and not (ws.path / "escaped.txt").exists()
    assert ws.dataset_names() == ["seg"]


def test_backup_and_restore_into_new_folder(ws, seg, images, tmp_path):
    images.folder(tmp_path / "cls/A", 2)
    ws.create_dataset("cls", "classification", [NamedSet("s", [Location(tmp_path / "cls", use_folder_name=True)])])
    file = ws.backup(tmp_path / "backup.tar")
    restored = Workspace.restore(file, tmp_path / "restored")
    assert restored.dataset_names() == ws.dataset_names() == ["cls", "seg"]
    for name in ws.dataset_names():
        assert_same_dataset(ws.dataset(name), restored.dataset(name))
    assert [(i.name, i.images, i.description) for i in restored.datasets()] == [
        (i.name, i.images, i.description) for i in ws.datasets()]


def test_restore_refuses_non_empty_folder_without_overwrite(ws, seg, tmp_path):
    file = ws.backup(tmp_path / "backup.tar")
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(AstrocyteError, match="not empty"):
        Workspace.restore(file, target)
    assert (target / "keep.txt").read_text() == "mine" and sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    restored = Workspace.restore(file, target, overwrite=True)
    assert restored.dataset_names() == ["seg"] and not (target / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".busy")]  # no staging/old folders left


def test_restore_into_existing_empty_folder(ws, seg, tmp_path):
    file = ws.backup(tmp_path / "backup.tar")
    (tmp_path / "empty").mkdir()
    assert Workspace.restore(file, tmp_path / "empty").dataset_names() == ["seg"]


def test_backup_inside_workspace_refused(ws, seg):
    with pytest.raises(AstrocyteError, match="outside the workspace"):
        ws.backup(ws.path / "b.tar")


def test_restore_of_non_backup_refused(ws, seg, tmp_path):
    export = ws.export_dataset("seg", tmp_path / "seg.astrods")
    with pytest.raises(AstrocyteError, match="backup"):
        Workspace.restore(export, tmp_path / "r")
    (tmp_path / "junk.tar").write_bytes(b"junk" * 100)
    with pytest.raises(AstrocyteError):
        Workspace.restore(tmp_path / "junk.tar", tmp_path / "r")
    assert not (tmp_path / "r").exists()
