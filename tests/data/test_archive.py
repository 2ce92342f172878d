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
from astrocyte_lab.errors import AstrocyteError, FormatVersionError, LimitError, NameConflictError
from tests.data.tar_helpers import symlink_chain_tar


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


# -- hardening (issue 19): crafted archives, manifests, interrupted restores ----------------------------------------
def _import_with(kind: str, ws, file, tmp_path):
    from astrocyte_lab.formats.export import import_voc_export

    if kind == "dataset":
        return ws.import_dataset(file, name="x")
    if kind == "backup":
        return Workspace.restore(file, tmp_path / "r")
    if kind == "model":
        return ws.import_model(file, "m")
    return import_voc_export(ws, file, "v")


_MANIFESTS = {
    "dataset": {"astrocyte-dataset.json": json.dumps({"format_version": 1, "name": "evil"}).encode()},
    "backup": {"astrocyte-backup.json": json.dumps({"format_version": 1, "kind": "workspace"}).encode()},
    "model": {"model.json": json.dumps({"module": "classification", "categories": ["a"],
                                        "input": {"width": 8, "height": 8, "channels": 1}}).encode()},
    "voc": {"labels.txt": b"0 a\n"},
}


@pytest.mark.parametrize(("kind", "up"), [("dataset", 3), ("backup", 1), ("model", 3), ("voc", 3)])
def test_every_importer_refuses_a_symlink_chain_escape(ws, tmp_path, kind, up):
    """Issue 19 item 1: on Python 3.11.7 ``filter="data"`` let this tar overwrite a file outside the target."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/keep.txt").write_text("keep")
    file = symlink_chain_tar(tmp_path / ("evil.tar" if kind == "voc" else f"evil.{kind}"), up, _MANIFESTS[kind])
    with pytest.raises(AstrocyteError, match=r"evil\..*symbolic link"):
        _import_with(kind, ws, file, tmp_path)
    assert (tmp_path / "outside/keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["outside", "ws", file.name])
    assert [p.name for p in ws.path.rglob("*")] == ["workspace.json", "datasets", "models"]


@pytest.mark.parametrize("manifest", [{"format_version": "1.5", "name": "m"}, {"format_version": 1.5, "name": "m"},
                                      {"format_version": None, "name": "m"}, [1, 2], "text",
                                      {"format_version": 1, "name": ["m"]}])
def test_export_manifest_of_wrong_type_is_a_clear_error(ws, tmp_path, manifest):
    path = _tar_with({"astrocyte-dataset.json": json.dumps(manifest).encode()}, tmp_path / "odd.astrods")
    with pytest.raises(AstrocyteError, match=r"odd\.astrods:astrocyte-dataset\.json: "):
        ws.import_dataset(path)
    backup = _tar_with({"astrocyte-backup.json": json.dumps(manifest).encode()}, tmp_path / "odd.tar")
    with pytest.raises(AstrocyteError, match=r"odd\.tar"):
        Workspace.restore(backup, tmp_path / "r")
    assert ws.dataset_names() == [] and not (tmp_path / "r").exists()


def test_restore_of_compressed_bomb_refused_before_writing(ws, tmp_path, monkeypatch):
    """A small .tar.gz backup holding a large zero file (scaled down: 16 MiB) is refused by the ratio check."""
    monkeypatch.setenv("ASTROCYTE_MAX_ARCHIVE_RATIO_FLOOR_BYTES", str(1 << 20))
    file = tmp_path / "bomb.tar.gz"
    with tarfile.open(file, "w:gz") as tar:
        for name, data in (("astrocyte-backup.json", json.dumps({"format_version": 1, "kind": "workspace"}).encode()),
                           ("junk.bin", bytes(16 << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(LimitError, match=r"bomb\.tar\.gz: unpacks to"):
        Workspace.restore(file, tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tar.gz", "ws"]


@pytest.mark.parametrize("damage", ["truncated", "link"])
def test_refused_restore_leaves_no_staging_folder(ws, seg, tmp_path, damage):
    """Issue 19 item 7: a backup refused part way (here: a link member) used to leave ``.r.XXXX.restoring``."""
    file = ws.backup(tmp_path / "backup.tar")
    data = file.read_bytes()
    if damage == "truncated":
        file.write_bytes(data[: len(data) // 2])
    else:
        with tarfile.open(file, "a") as tar:
            info = tarfile.TarInfo("datasets/link")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    with pytest.raises(AstrocyteError, match=r"backup\.tar"):
        Workspace.restore(file, tmp_path / "r")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] and not (tmp_path / "r").exists()


def _restore_killed_at_rename(file, target, kill_at: int) -> None:
    """Run ``Workspace.restore(overwrite=True)`` in a child that dies (``os._exit``) at rename number ``kill_at``."""
    import multiprocessing
    import os
    from pathlib import Path

    def child():
        calls = []
        real = Path.rename

        def rename(self, other):
            calls.append(self)
            if len(calls) == kill_at:
                os._exit(17)
            return real(self, other)

        Path.rename = rename
        Workspace.restore(file, target, overwrite=True)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 17, "the restore was not interrupted"


def _workspace_with(tmp_path, name: str, images, dataset: str) -> Workspace:
    images.folder(tmp_path / f"{name}-src/A", 2)
    workspace = Workspace(tmp_path / name)
    workspace.create_dataset(dataset, "classification",
                             [NamedSet("s", [Location(tmp_path / f"{name}-src", use_folder_name=True)])])
    return workspace


@pytest.mark.parametrize(("kill_at", "expected"), [(2, "new"), (1, "old")])
def test_restore_killed_between_renames_is_recovered_on_open(tmp_path, images, kill_at, expected):
    """Issue 19 item 7: a kill after the first rename (workspace moved away) used to leave no workspace, and
    ``Workspace(path)`` then silently created an empty one. Now opening finishes (or rolls back) the swap."""
    backup = _workspace_with(tmp_path, "source", images, "new").backup(tmp_path / "backup.tar")
    _workspace_with(tmp_path, "target", images, "old")
    _restore_killed_at_rename(backup, tmp_path / "target", kill_at)
    assert (kill_at == 2) != (tmp_path / "target").exists()  # the kill after the first rename left no workspace
    reopened = Workspace(tmp_path / "target")
    assert reopened.dataset_names() == [expected] and len(reopened.dataset(expected)) == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")]


def test_failed_second_rename_puts_the_old_workspace_back(tmp_path, images, monkeypatch):
    from pathlib import Path

    backup = _workspace_with(tmp_path, "source", images, "new").backup(tmp_path / "backup.tar")
    _workspace_with(tmp_path, "target", images, "old")
    real = Path.rename

    def rename(self, other):
        if self.name.endswith(".restoring"):
            raise OSError(28, "No space left on device")
        return real(self, other)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(AstrocyteError, match="No space left"):
        Workspace.restore(backup, tmp_path / "target", overwrite=True)
    monkeypatch.undo()
    assert Workspace(tmp_path / "target").dataset_names() == ["old"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")]


def test_backup_stores_hard_links_as_files_and_skips_symbolic_links(ws, seg, tmp_path):
    import os

    (ws.path / "notes.txt").write_text("notes")
    os.link(ws.path / "notes.txt", ws.path / "notes-link.txt")
    os.symlink(tmp_path, ws.path / "elsewhere")
    restored = Workspace.restore(ws.backup(tmp_path / "b.tar"), tmp_path / "r")
    assert (restored.path / "notes-link.txt").read_text() == "notes" and not (restored.path / "elsewhere").exists()


# -- review of the issue-19 hardening: a restore swap under way is never recovered by another process --------------
def _interrupted_looking_swap(tmp_path, images):
    """A workspace ``target`` with a restore journal and its complete staging folder beside it: what another
    process sees while a restore is between writing its journal and its first rename."""
    import json as _json

    from astrocyte_lab.data import archive

    _workspace_with(tmp_path, "target", images, "old")
    staging = tmp_path / ".target.abcd1234.restoring"
    (staging / "datasets").mkdir(parents=True)
    (staging / "workspace.json").write_text('{"format_version": 1}')
    archive.restore_journal(tmp_path / "target").write_text(
        _json.dumps({"staging": staging.name, "old": ".target.abcd1234.old"}))
    return staging


def test_recovery_leaves_a_swap_held_by_another_process_alone(tmp_path, images, monkeypatch):
    """Every ``Workspace()`` (every REST request) runs the recovery; it used to remove the staging folder a restore
    in another process was about to rename into place. While the restore lock is held it now waits, then gives
    up with an error and touches nothing."""
    import fcntl
    import os

    from astrocyte_lab.data import archive

    staging = _interrupted_looking_swap(tmp_path, images)
    monkeypatch.setattr(archive, "RECOVERY_WAIT_S", 0.3)
    fd = os.open(tmp_path / ".target.restore.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: conflicts like another process's lock
        with pytest.raises(AstrocyteError, match="a restore into it is in progress"):
            Workspace(tmp_path / "target")
        assert staging.is_dir() and archive.restore_journal(tmp_path / "target").is_file()
    finally:
        os.close(fd)
    assert Workspace(tmp_path / "target").dataset_names() == ["old"]  # lock free: a stale journal is cleaned up
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")]


def test_opening_during_a_restore_waits_for_its_swap(tmp_path, images):
    """Two processes: a restore pauses just before its first rename while the other opens the workspace. The
    opener used to delete the staging folder (the restore then failed, its backup lost); now it waits."""
    import multiprocessing
    import os
    import time
    from pathlib import Path

    backup = _workspace_with(tmp_path, "source", images, "new").backup(tmp_path / "backup.tar")
    _workspace_with(tmp_path, "target", images, "old")
    context = multiprocessing.get_context("fork")
    swapping = context.Event()

    def child():
        real = Path.rename

        def rename(self, other):
            if Path(other).name.endswith(".old"):  # the first rename of the swap: pause inside the swap
                swapping.set()
                time.sleep(1.0)
            return real(self, other)

        Path.rename = rename
        Workspace.restore(backup, tmp_path / "target", overwrite=True)
        os._exit(0)

    process = context.Process(target=child)
    process.start()
    assert swapping.wait(60), "the restore did not reach its swap"
    opened = Workspace(tmp_path / "target")
    process.join(60)
    assert process.exitcode == 0, "the restore failed"
    assert opened.dataset_names() == ["new"] and len(opened.dataset("new")) == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")]
