"""The trained-model registry: atomic save, list, rename, delete, export/import, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError, DatasetNotFoundError, FormatVersionError, NameConflictError

RECORD = {"name": "m", "module": "classification", "architecture": "resnet18", "categories": ["a", "b"],
          "input": {"width": 32, "height": 24, "channels": 3}, "metrics": {"val_accuracy": 0.9},
          "created": "2026-01-01T00:00:00+00:00", "duration_s": 12.5, "description": "first"}


def test_save_list_rename_delete(ws: Workspace) -> None:
    store = ws.model_store
    roi = np.zeros((24, 32), bool)
    roi[4:20, 4:28] = True
    store.save("m", RECORD, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, roi)
    [info] = ws.models()
    assert (info.name, info.width, info.height, info.categories, info.performance) == \
        ("m", 32, 24, ("a", "b"), {"val_accuracy": 0.9})
    assert np.array_equal(store.tensors("m")["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(store.roi_mask("m"), roi)
    with pytest.raises(NameConflictError):
        store.save("m", RECORD, {"w": np.zeros(1, np.float32)})
    ws.rename_model("m", "renamed")
    assert [i.name for i in ws.models()] == ["renamed"]
    ws.delete_model("renamed")
    assert ws.models() == []
    with pytest.raises(DatasetNotFoundError):
        ws.delete_model("renamed")


def test_export_import_round_trip(ws: Workspace, tmp_path: Path) -> None:
    ws.model_store.save("m", RECORD, {"w": np.ones(3, np.float32)})
    file = ws.export_model("m", tmp_path / "m.astrotrained")
    other = Workspace(tmp_path / "other")
    assert other.import_model(file, "copy") == "copy"
    assert other.model_store.record("copy")["description"] == "first"
    with pytest.raises(NameConflictError):
        other.import_model(file, "copy")
    bogus = tmp_path / "bogus.astrotrained"
    bogus.write_bytes(b"nope")
    with pytest.raises(AstrocyteError, match="bogus"):
        other.import_model(bogus)


def test_weights_are_safetensors_and_newer_records_are_refused(ws: Workspace) -> None:
    folder = ws.model_store.save("m", RECORD, {"w": np.ones(3, np.float32)})
    assert (folder / "weights.safetensors").read_bytes()[8:9] == b"{"  # safetensors header, not a pickle
    ws.model_store.update_record("m", format_version=99)
    with pytest.raises(FormatVersionError):
        ws.model_store.record("m")


# -- hardening (issue 19): model.json and weights are validated at import -------------------------------------------
def _export_with(tmp_path: Path, record: object | bytes, weights: bytes | None, name: str = "odd") -> Path:
    """A ``.astrotrained`` file holding the given ``model.json`` (object or raw bytes) and weights bytes."""
    import io
    import json
    import tarfile

    members = {"model.json": record if isinstance(record, bytes) else json.dumps(record).encode()}
    if weights is not None:
        members["weights.safetensors"] = weights
    file = tmp_path / f"{name}.astrotrained"
    with tarfile.open(file, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return file


def _weights(tensors: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save(tensors)


GOOD_WEIGHTS = {"w": np.ones((2, 3), np.float32)}


@pytest.mark.parametrize(("record", "message"), [
    ({k: v for k, v in RECORD.items() if k != "input"}, "required field 'input' is missing"),
    ({k: v for k, v in RECORD.items() if k != "module"}, "required field 'module' is missing"),
    ({**RECORD, "categories": "ab"}, "field 'categories' must be list"),
    ({**RECORD, "input": {"width": 32, "height": -1, "channels": 3}}, "'input.height' must be positive"),
    ({**RECORD, "input": {"width": 32, "height": True, "channels": 3}}, "field 'input.height' must be int"),
    ({**RECORD, "input": {"width": 10**6, "height": 10**6, "channels": 3}}, "above the limit"),
    ({**RECORD, "format_version": "1"}, "format_version must be a non-negative integer"),
    ({**RECORD, "duration_s": "long"}, "field 'duration_s' must be int or float"),
    ([RECORD], "expected a JSON object"),
    (b'{"module": "\xff\xfe"}', "not UTF-8"),
    (b'{"module": NaN}', "not valid JSON"),
])
def test_import_refuses_a_bad_model_json(ws: Workspace, tmp_path: Path, record, message) -> None:
    file = _export_with(tmp_path, record, _weights(GOOD_WEIGHTS))
    with pytest.raises(AstrocyteError, match=message) as caught:
        ws.import_model(file, "m")
    assert "odd.astrotrained" in str(caught.value)
    assert ws.models() == [] and not list((ws.path / "models").iterdir())


@pytest.mark.parametrize(("weights", "message"), [
    (None, "weights.safetensors: missing"),
    (b"", "not a safetensors file"),
    (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a safetensors file"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ", "not valid JSON"),
    (_weights(GOOD_WEIGHTS)[:-8], "invalid data offsets"),
    (_weights({"w": np.array([1.0, np.nan], np.float32)}), "NaN or infinite"),
])
def test_import_refuses_garbage_weights(ws: Workspace, tmp_path: Path, weights, message) -> None:
    """Issue 19 item 5: garbage weights used to be accepted and fail only when the model was first used."""
    file = _export_with(tmp_path, RECORD, weights)
    with pytest.raises(AstrocyteError, match=message):
        ws.import_model(file, "m")
    assert ws.models() == [] and not list((ws.path / "models").iterdir())


def test_import_refuses_a_lying_safetensors_header(ws: Workspace, tmp_path: Path) -> None:
    import json

    data = np.ones(6, np.float32).tobytes()
    header = json.dumps({"w": {"dtype": "F32", "shape": [100, 100], "data_offsets": [0, len(data)]}}).encode()
    weights = len(header).to_bytes(8, "little") + header + data
    with pytest.raises(AstrocyteError, match=r"tensor 'w' of shape \[100, 100\] does not match its 24 bytes"):
        ws.import_model(_export_with(tmp_path, RECORD, weights), "m")


def test_valid_handmade_export_imports(ws: Workspace, tmp_path: Path) -> None:
    assert ws.import_model(_export_with(tmp_path, RECORD, _weights(GOOD_WEIGHTS))) == "m"
    assert np.array_equal(ws.model_store.tensors("m")["w"], GOOD_WEIGHTS["w"])


def test_import_refuses_a_garbage_roi_mask(ws: Workspace, tmp_path: Path) -> None:
    import io
    import tarfile

    file = _export_with(tmp_path, RECORD, _weights(GOOD_WEIGHTS))
    with tarfile.open(file, "a") as tar:
        info = tarfile.TarInfo("roi_mask.png")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"\x89PNGjunk!"))
    with pytest.raises(AstrocyteError, match=r"odd\.astrotrained:roi_mask\.png: not a readable image"):
        ws.import_model(file, "m")


# -- review of the issue-19 hardening: weights checked in slices, under a size limit --------------------------------
def _raw_weights(path: Path, header: dict, data_bytes: int, data: bytes = b"") -> Path:
    """A safetensors file with this ``header`` and a data section of ``data_bytes`` (``data`` then zeros: the file
    is extended sparsely, so a large tensor costs no disk)."""
    import json

    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little") + text + data)
        handle.truncate(8 + len(text) + data_bytes)
    return path


def test_weights_are_checked_in_slices_not_loaded_whole(tmp_path: Path) -> None:
    """``check_weights`` loaded each tensor whole plus an ``isfinite`` copy (16 GiB per member were possible)."""
    import tracemalloc

    from astrocyte_lab.data.models import check_weights

    size = 96 << 20
    path = _raw_weights(tmp_path / "big.safetensors",
                        {"w": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}, size)
    tracemalloc.start()
    try:
        check_weights(path, "big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, f"peak {peak:,} bytes while checking a {size:,}-byte tensor"


@pytest.mark.parametrize(("dtype", "bad"), [("F32", np.float32(np.nan)), ("F16", np.float16(np.inf)),
                                            ("F64", -np.inf), ("C64", np.complex64(complex(1, np.nan)))])
def test_a_non_finite_value_in_the_last_slice_is_found(tmp_path: Path, monkeypatch, dtype, bad) -> None:
    from astrocyte_lab.data import models

    monkeypatch.setattr(models, "_FINITE_CHUNK", 64)
    values = np.ones(100, models._DTYPES[dtype])
    values[-1] = bad
    path = _raw_weights(tmp_path / "w.safetensors", {"w": {"dtype": dtype, "shape": [100],
                                                           "data_offsets": [0, values.nbytes]}},
                        values.nbytes, values.tobytes())
    with pytest.raises(AstrocyteError, match="tensor 'w' holds NaN or infinite values"):
        models.check_weights(path, "w")
    values[-1] = 0
    path.write_bytes(path.read_bytes()[: -values.nbytes] + values.tobytes())
    models.check_weights(path, "w")


@pytest.mark.parametrize(("header", "message"), [
    ({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, "no valid dtype"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
      "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, "overlap or leave a gap"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, "overlap or leave a gap"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, "cover 2 of the 4 data bytes"),
])
def test_weights_numpy_cannot_load_are_refused_at_import(ws: Workspace, tmp_path: Path, header, message) -> None:
    """BF16 tensors or tensors that do not tile the data section passed the header check and failed at use."""
    weights = _raw_weights(tmp_path / "w.safetensors", header, 4).read_bytes()
    with pytest.raises(AstrocyteError, match=message):
        ws.import_model(_export_with(tmp_path, RECORD, weights), "m")
    assert ws.models() == []


def test_weights_above_the_limit_are_refused_before_unpacking(ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    from astrocyte_lab.data import safe_archive
    from astrocyte_lab.errors import LimitError

    file = _export_with(tmp_path, RECORD, _weights({"w": np.ones(64, np.float32)}))
    monkeypatch.setenv("ASTROCYTE_MAX_WEIGHTS_BYTES", "200")
    unpacked = []
    monkeypatch.setattr(safe_archive, "_extract_one", lambda *args: unpacked.append(args))
    with pytest.raises(LimitError, match=r"odd\.astrotrained:weights\.safetensors: .*ASTROCYTE_MAX_WEIGHTS_BYTES"):
        ws.import_model(file, "m")
    assert not unpacked and ws.models() == []
