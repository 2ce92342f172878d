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
