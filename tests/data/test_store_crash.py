"""Crash safety of the store: SIGKILL mid-save, disk full, leftovers of interrupted saves."""

from __future__ import annotations

import errno
import os
import random
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr.storage

from astrocyte_lab.data import store as store_module
from astrocyte_lab.data.sources import Location, NamedSet, segmentation_set
from astrocyte_lab.data.store import DatasetStore
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import StorageError

# One edit step, shared by the child (which loops over it) and the test (which predicts its result).
# Iteration k relabels every image, reshuffles with seed k, draws a mask row on image k % n, moves the
# ROI column and writes "iter k" into the description; one save() makes all of it one version.
EDIT_STEP = r'''
import numpy as np


def apply(ds, k):
    names = ds.categories
    ids = [int(i) for i in ds.ids]
    for j, image_id in enumerate(ids):
        ds.relabel(image_id, names[(k + j) % len(names)])
    ds.shuffle(seed=k)
    g = ds.geometry
    mask = np.zeros((g.height, g.width), np.uint8)
    mask[k % g.height, :] = 1 + k % 2
    ds.set_mask(ids[k % len(ids)], mask)
    roi = np.zeros((g.height, g.width), bool)
    roi[:, k % g.width] = True
    ds.set_roi(roi, invert=True)  # the one column k % width is the active region
    ds.description = f"iter {k}"
'''

CHILD = EDIT_STEP + r'''
import sys

from astrocyte_lab.data.workspace import Workspace

ds = Workspace(sys.argv[1]).dataset(sys.argv[2])
k = int(ds.description.split()[1])
print("ready", flush=True)
while True:
    k += 1
    apply(ds, k)
    ds.save()
'''

N_IMAGES = 8


def _edit_step():
    namespace: dict = {}
    exec(compile(EDIT_STEP, "edit_step", "exec"), namespace)  # noqa: S102 - our own source, shared with the child
    return namespace["apply"]


apply_step = _edit_step()


@pytest.fixture
def crash_ws(ws, images, tmp_path):
    """Segmentation dataset of 8 images (categories "0", "1", "2") at state "iter 0"."""
    for i in range(N_IMAGES):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        mask = np.zeros((24, 32), np.uint8)
        mask[:, : 4 + i] = 1
        mask[20:, :] = 2
        images.write(tmp_path / f"mask/p{i}.png", mask)
    ds = ws.create_dataset("crash", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")],
                           seed=0)
    assert ds.categories == ["0", "1", "2"]
    apply_step(ds, 0)
    ds.save()
    return ws


def check_state(ws: Workspace, k: int) -> None:
    """The saved dataset must be exactly what iteration ``k`` wrote, in every field."""
    ds = ws.dataset("crash")
    assert len(ds) == N_IMAGES
    assert ds.description == f"iter {k}"
    names = ds.categories
    assert list(ds.table["ground_truth"]) == [names[(k + j) % 3] for j in range(N_IMAGES)]
    reference = ws.dataset("crash")
    reference.shuffle(seed=k)
    assert list(ds.table["assigned"]) == list(reference.table["assigned"])
    assert ds.roi_bbox() == (k % 32, 0, 1, 24)
    for j in range(N_IMAGES):
        last = max(i for i in range(k + 1) if i % N_IMAGES == j) if j <= k else None
        if last is None:
            continue  # still the mask from generation (only while k < 7)
        expected = np.zeros((24, 32), np.uint8)
        expected[last % 24, :] = 1 + last % 2
        np.testing.assert_array_equal(ds.mask(j), expected, err_msg=f"image {j} at iter {k}")


def test_sigkill_during_saves_leaves_a_consistent_version(crash_ws, tmp_path):
    ws = crash_ws
    rng = random.Random(20240611)
    pixels_before = sorted(p.name for p in (ws.path / "datasets/crash/pixels").iterdir())
    states = [0]
    for kill in range(6):
        with open(tmp_path / f"child{kill}.err", "w") as err:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws.path), "crash"],
                                     stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                ready, _, _ = select.select([child.stdout], [], [], 120)
                line = child.stdout.readline() if ready else "timed out"
                assert line.strip() == "ready", (tmp_path / f"child{kill}.err").read_text()
                time.sleep(rng.uniform(0.05, 1.0))
                assert child.poll() is None, (tmp_path / f"child{kill}.err").read_text()
                os.kill(child.pid, signal.SIGKILL)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait(timeout=30)
                child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        k = int(ws.dataset("crash").description.split()[1])
        assert k >= states[-1]
        check_state(ws, k)
        states.append(k)
    assert states[-1] > 0, "the child never completed a save; nothing was tested"
    assert sorted(p.name for p in (ws.path / "datasets/crash/pixels").iterdir()) == pixels_before
    # after all the crashes the dataset still takes further saves
    ds = ws.dataset("crash")
    apply_step(ds, states[-1] + 1)
    ds.save()
    check_state(ws, states[-1] + 1)


def test_leftovers_of_interrupted_saves_are_ignored(crash_ws):
    """A killed save can leave a partial table, a complete but unreferenced newer version and a HEAD tmp."""
    ws = crash_ws
    root = ws.path / "datasets/crash"
    head = (root / "HEAD").read_text().strip()
    (root / "versions" / ".v999998.deadbeef.partial").mkdir()
    (root / "versions" / ".v999998.deadbeef.partial" / "zarr.json").write_text("{trunc")
    store = DatasetStore(root)
    orphan = store.load_table()
    orphan.attrs["description"] = "never made current"
    orphan.to_zarr(root / "versions" / "v999999.zarr", mode="w-", consolidated=False, zarr_format=3)
    (root / ".HEAD.0123abcd.tmp").write_text("v999999\n")
    check_state(ws, 0)
    assert store.current_version() == head
    ds = ws.dataset("crash")
    apply_step(ds, 1)
    ds.save()
    check_state(ws, 1)


# -- disk full ---------------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _chunk_writes_fail(monkeypatch, where: str, after: int = 0) -> None:
    """Make zarr chunk writes under ``where`` fail with ENOSPC once ``after`` of them succeeded."""
    real = zarr.storage.LocalStore.set
    count = {"n": 0}

    async def failing(self, key, value, *args, **kwargs):
        if where in str(self.root) and not key.endswith("zarr.json"):
            count["n"] += 1
            if count["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", key)
        return await real(self, key, value, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", failing)


@pytest.fixture
def cls_ws(ws, labelled_tree):
    ws.create_dataset("d", "classification", [NamedSet("s", [Location(labelled_tree, use_folder_name=True)])],
                      description="saved")
    return ws


def assert_previous_version(ws) -> None:
    again = ws.dataset("d")
    assert again.description == "saved"
    assert list(again.table["ground_truth"]) == ["A"] * 3 + ["B"] * 3
    assert len(again) == 6


@pytest.mark.parametrize("where", ["table_write", "chunk_writes", "head_swap"])
def test_disk_full_during_save_keeps_previous_version(cls_ws, monkeypatch, where):
    ws = cls_ws
    ds = ws.dataset("d")
    head = (ws.path / "datasets/d/HEAD").read_text()
    ds.relabel([0, 1, 2], "B")
    ds.description = "lost"
    with monkeypatch.context() as patch:
        if where == "table_write":
            patch.setattr(xr.Dataset, "to_zarr", _enospc)
        elif where == "chunk_writes":
            _chunk_writes_fail(patch, "versions", after=2)
        else:
            patch.setattr(store_module, "_atomic_write_text", _enospc)
        with pytest.raises(StorageError, match="disk full"):
            ds.save()
    assert (ws.path / "datasets/d/HEAD").read_text() == head
    assert not list((ws.path / "datasets/d/versions").glob(".*.partial"))
    assert_previous_version(ws)
    assert ds.dirty and ds.description == "lost"  # the edits are still there to retry
    ds.save()
    again = ws.dataset("d")
    assert again.description == "lost" and list(again.table["ground_truth"]) == ["B"] * 6


def test_disk_full_while_writing_masks(ws, images, tmp_path, monkeypatch):
    for i in range(2):
        images.make(tmp_path / f"img/p{i}.png", seed=i)
        mask = np.full((24, 32), 4, np.uint8)
        mask[20:] = 0
        images.write(tmp_path / f"mask/p{i}.png", mask)
    ds = ws.create_dataset("s", "segmentation", [segmentation_set("s", tmp_path / "img", tmp_path / "mask")])
    new = np.zeros((24, 32), np.uint8)
    new[:3] = 1
    ds.set_mask(0, new)
    with monkeypatch.context() as patch:
        _chunk_writes_fail(patch, "masks")
        with pytest.raises(StorageError, match="disk full"):
            ds.save()
    np.testing.assert_array_equal(ws.dataset("s").mask(0), np.r_[np.ones((20, 32)), np.zeros((4, 32))])
    assert ds.dirty
    ds.save()
    np.testing.assert_array_equal(ws.dataset("s").mask(0), new)


def test_disk_full_while_generating(ws, labelled_tree, monkeypatch):
    monkeypatch.setattr(store_module, "SHARD_ITEMS", 1, raising=False)
    _chunk_writes_fail(monkeypatch, "pixels", after=1)
    with pytest.raises(StorageError, match="disk full"):
        ws.create_dataset("d", "classification", [NamedSet("s", [Location(labelled_tree)])])
    assert ws.dataset_names() == [] and not (ws.path / "datasets/d").exists()
