"""The workspace: dataset names, listing, opening, format versions, delete and rename."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from astrocyte_lab.data import store as store_module
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.store import DamagedDatasetError
from astrocyte_lab.data.workspace import BrokenItem, Workspace, check_name
from astrocyte_lab.errors import (
    AstrocyteError,
    DatasetNotFoundError,
    EmptySourceError,
    FormatVersionError,
    InvalidNameError,
    NameConflictError,
)


@pytest.fixture
def sets(labelled_tree):
    return [NamedSet("s", [Location(labelled_tree, use_folder_name=True)])]


@pytest.mark.parametrize("name", ["../x", "", "a/b", ".hidden", "..", " lead", "trail ", "x" * 101, "a\\b",
                                  "dot.", "tab\tname"])
def test_invalid_dataset_names(ws, sets, name):
    with pytest.raises(InvalidNameError):
        ws.create_dataset(name, "classification", sets)
    with pytest.raises(InvalidNameError):
        ws.dataset(name)
    assert sorted(p.name for p in (ws.path / "datasets").iterdir()) == []
    assert not (ws.path / "x").exists() and not (ws.path.parent / "x").exists()


@pytest.mark.parametrize("name", ["a", "Line 3 - cam_2.v1", "0", "x" * 100])
def test_valid_dataset_names(name):
    assert check_name(name) == name


def test_duplicate_name_conflicts_and_keeps_original(ws, sets, images, tmp_path):
    ds = ws.create_dataset("d", "classification", sets, description="original")
    images.folder(tmp_path / "other", 2)
    with pytest.raises(NameConflictError, match="'d'"):
        ws.create_dataset("d", "classification", [NamedSet("o", [Location(tmp_path / "other")])])
    again = ws.dataset("d")
    assert len(again) == len(ds) == 6 and again.description == "original"


def test_unknown_module_leaves_nothing(ws, sets):
    with pytest.raises(AstrocyteError, match="unknown module"):
        ws.create_dataset("d", "regression", sets)
    assert ws.dataset_names() == [] and not (ws.path / "datasets/d").exists()


def test_list_datasets(ws, sets, images, tmp_path):
    images.folder(tmp_path / "grey", 2, channels=1, width=20, height=10)
    ws.create_dataset("beta", "classification", sets, description="colour parts")
    ws.create_dataset("alpha", "anomaly", [NamedSet("g", [Location(tmp_path / "grey", category="Normal")])])
    infos = ws.datasets()
    assert [i.name for i in infos] == ["alpha", "beta"] == ws.dataset_names()
    alpha, beta = infos
    assert (alpha.module, alpha.dimensions, alpha.images, alpha.description) == ("anomaly", "20 x 10 x 1", 2, "")
    assert (beta.module, beta.dimensions, beta.images, beta.description) == (
        "classification", "32 x 24 x 3", 6, "colour parts")
    assert beta.updated and beta.updated[:4].isdigit()
    first = beta.updated
    ds = ws.dataset("beta")
    ds.remove(0)
    ds.description = "fewer"
    ds.save()
    beta = ws.datasets()[1]
    assert beta.images == 5 and beta.description == "fewer" and beta.updated >= first


def test_missing_dataset(ws):
    with pytest.raises(DatasetNotFoundError, match="no dataset 'nope'"):
        ws.dataset("nope")
    with pytest.raises(DatasetNotFoundError):
        ws.delete_dataset("nope")


def _current_version_path(ws, name):
    root = ws.path / "datasets" / name
    return root / "versions" / f"{(root / 'HEAD').read_text().strip()}.zarr"


def test_newer_format_version_refuses_to_open(ws, sets):
    ws.create_dataset("d", "classification", sets)
    ws.create_dataset("ok", "classification", sets)
    group = zarr.open_group(_current_version_path(ws, "d"), mode="r+")
    group.attrs["format_version"] = 99
    with pytest.raises(FormatVersionError, match="99"):
        ws.dataset("d")
    assert [i.name for i in ws.datasets()] == ["ok"]  # listed datasets skip what cannot be read


def test_newer_format_version_written_by_patched_writer(ws, sets, monkeypatch):
    ws.create_dataset("d", "classification", sets)
    ds = ws.dataset("d")
    ds.description = "from the future"
    monkeypatch.setattr(store_module, "FORMAT_VERSION", 99)
    ds.save()
    monkeypatch.setattr(store_module, "FORMAT_VERSION", 1)
    with pytest.raises(FormatVersionError):
        ws.dataset("d")


def test_newer_workspace_marker_refuses(tmp_path):
    Workspace(tmp_path / "w")
    (tmp_path / "w/workspace.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(FormatVersionError):
        Workspace(tmp_path / "w")


def test_head_pointing_at_missing_version(ws, sets):
    ws.create_dataset("d", "classification", sets)
    (ws.path / "datasets/d/HEAD").write_text("v999999\n")
    with pytest.raises(AstrocyteError, match="missing version"):
        ws.dataset("d")


def test_delete_and_rename(ws, sets, labelled_tree, snapshot):
    before = snapshot(labelled_tree)
    ws.create_dataset("a", "classification", sets)
    ws.create_dataset("b", "classification", sets)
    with pytest.raises(NameConflictError):
        ws.rename_dataset("a", "b")
    ws.rename_dataset("a", "c")
    assert ws.dataset_names() == ["b", "c"] and len(ws.dataset("c")) == 6
    ws.delete_dataset("b")
    assert ws.dataset_names() == ["c"]
    assert sorted(p.name for p in (ws.path / "datasets").iterdir()) == ["c"]
    assert snapshot(labelled_tree) == before


def test_workspace_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROCYTE_HOME", str(tmp_path / "home"))
    ws = Workspace()
    assert ws.path == tmp_path / "home" and (ws.path / "datasets").is_dir()


def test_empty_or_missing_folder_names_it_and_leaves_nothing(ws, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(EmptySourceError, match=str(folder)):
            ws.create_dataset("d", "classification", [NamedSet("s", [Location(folder)])])
        assert ws.dataset_names() == [] and not (ws.path / "datasets/d").exists()


# -- hardening (issue 19): one damaged item must not break a listing; damaged data names the dataset --------------
def _damage(path, start: int = 4, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["head_bytes", "head_text", "table_chunk", "table_metadata"])
def test_listing_survives_a_damaged_dataset_and_reports_it(ws, sets, damage):
    ws.create_dataset("bad", "classification", sets)
    ws.create_dataset("good", "classification", sets)
    root = ws.path / "datasets/bad"
    if damage == "head_bytes":
        (root / "HEAD").write_bytes(b"\xff\xfe\x00\x81garbage")
    elif damage == "head_text":
        (root / "HEAD").write_text("../../../../etc\n")
    elif damage == "table_chunk":
        _damage(_current_version_path(ws, "bad") / "name/c/0", start=10)
    else:
        (_current_version_path(ws, "bad") / "name/zarr.json").write_bytes(b"\x00{garbage")
    assert [i.name for i in ws.datasets()] == ["good"]
    [broken] = ws.broken()
    assert (broken.kind, broken.name) == ("dataset", "bad") and "dataset bad" in broken.reason
    with pytest.raises(AstrocyteError, match="dataset bad"):
        ws.dataset("bad")


def test_damaged_pixel_chunk_names_dataset_and_batch(ws, sets):
    ws.create_dataset("d", "classification", sets)
    [shard] = (ws.path / "datasets/d/pixels").rglob("c/0/0/0/0")
    _damage(shard, start=shard.stat().st_size - 20)
    dataset = ws.dataset("d")
    with pytest.raises(DamagedDatasetError, match=r"dataset d, batch pixels/b[0-9]+-[0-9a-f]+, item 0: damaged"):
        dataset.image(0)


def _save_model(ws, name: str) -> None:
    record = {"module": "classification", "categories": ["a", "b"], "input": {"width": 8, "height": 8, "channels": 3}}
    ws.model_store.save(name, record, {"w": np.ones(3, np.float32)})


@pytest.mark.parametrize(("damage", "reason"), [
    ("missing_field", "required field 'categories' is missing"),
    ("not_json", "model.json:1:2: not valid JSON"),
    ("not_utf8", "not UTF-8"),
    ("list", "expected a JSON object"),
    ("wrong_type", "field 'input.width' must be int"),
    ("no_weights", "no weights.safetensors"),
])
def test_listing_survives_a_damaged_model_and_reports_it(ws, damage, reason):
    _save_model(ws, "bad")
    _save_model(ws, "good")
    folder = ws.path / "models/bad"
    record = json.loads((folder / "model.json").read_text())
    if damage == "missing_field":
        del record["categories"]
    elif damage == "wrong_type":
        record["input"]["width"] = "8"
    (folder / "model.json").write_text(json.dumps(record))
    if damage == "not_json":
        (folder / "model.json").write_text("{oops")
    elif damage == "not_utf8":
        (folder / "model.json").write_bytes(b'{"module": "\xff"}')
    elif damage == "list":
        (folder / "model.json").write_text("[]")
    elif damage == "no_weights":
        (folder / "weights.safetensors").unlink()
    assert [i.name for i in ws.models()] == ["good"]
    [broken] = ws.broken()
    assert broken == BrokenItem("model", "bad", broken.reason) and reason in broken.reason


def test_damaged_workspace_marker_names_the_file(tmp_path):
    Workspace(tmp_path / "w")
    (tmp_path / "w/workspace.json").write_text('{"format_version": "1"}')
    with pytest.raises(AstrocyteError, match=r"workspace\.json: format_version"):
        Workspace(tmp_path / "w")


@pytest.mark.parametrize("damage", [("categories", "[not json"), ("categories", "[1, 2]"), ("module", None),
                                    ("width", "wide")])
def test_damaged_table_attributes_name_the_dataset(ws, sets, damage):
    _assert_damaged_attribute_refused(ws, sets, damage)


def _assert_damaged_attribute_refused(ws, sets, damage: tuple[str, object]) -> None:
    """Save a version whose attribute ``key`` is ``value`` (deleted for None): opening it must name the dataset."""
    ws.create_dataset("d", "classification", sets)
    store = store_module.DatasetStore(ws.path / "datasets" / "d")
    table = store.load_table()
    key, value = damage
    if value is None:
        del table.attrs[key]
    else:
        table.attrs[key] = value
    store.save_table(table)
    with pytest.raises(DamagedDatasetError, match=rf"dataset 'd', version v\d+: damaged table .*{key}"):
        ws.dataset("d")
    assert [b.name for b in ws.broken()] == ["d"]


# -- review of the issue-19 hardening: every JSON attribute validated; listings scan once ---------------------------
@pytest.mark.parametrize("damage", [("mask_lut", None), ("mask_lut", "{not json"), ("mask_lut", "[]"),
                                    ("mask_lut", '{"x": 1}'), ("mask_lut", '{"1": "a"}'), ("mask_lut", '{"²": 1}'),
                                    ("mask_lut", 7), ("recipe", None), ("recipe", '"sets"'), ("recipe", "{}"),
                                    ("recipe", '{"sets": 3}'), ("categories", "[" * 5000 + "]" * 5000)])
def test_damaged_lut_recipe_or_deep_json_attributes_name_the_dataset(ws, sets, damage):
    """``mask_lut`` and ``recipe`` were never checked (a crafted export imported, then failed with a raw error on
    first edit), and a deeply nested attribute raised a raw ``RecursionError``."""
    _assert_damaged_attribute_refused(ws, sets, damage)


def test_listings_read_each_item_once(ws, sets, monkeypatch):
    """The REST list endpoints called ``datasets()`` and then ``broken()``: every table was read twice."""
    ws.create_dataset("a", "classification", sets)
    ws.create_dataset("b", "classification", sets)
    (ws.path / "datasets/b/HEAD").write_text("garbage\n")
    _save_model(ws, "m")
    _save_model(ws, "n")
    (ws.path / "models/n/model.json").write_text("[]")
    tables, records = [], []
    load_table, record = store_module.DatasetStore.load_table, ws.model_store.record.__func__
    monkeypatch.setattr(store_module.DatasetStore, "load_table", lambda s, *a: tables.append(s.root.name)
                        or load_table(s, *a))
    monkeypatch.setattr(type(ws.model_store), "record", lambda s, name: records.append(name) or record(s, name))
    infos, broken = ws.dataset_listing()
    assert [i.name for i in infos] == ["a"] and [(b.kind, b.name) for b in broken] == [("dataset", "b")]
    assert tables == ["a"]  # b's HEAD is refused before its table is read
    infos, broken = ws.model_listing()
    assert [i.name for i in infos] == ["m"] and [(b.kind, b.name) for b in broken] == [("model", "n")]
    assert records == ["m", "n"]
    assert [b.name for b in ws.broken()] == ["b", "n"] and [i.name for i in ws.datasets()] == ["a"]
