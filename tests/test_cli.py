"""The astrocyte-lab command line, end to end on small generated folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from astrocyte_lab.cli import app
from astrocyte_lab.data.workspace import Workspace

runner = CliRunner()


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for category in ("bolt", "nut"):
        (tmp_path / "src" / category).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / "src" / category / f"{category}_{i}.png"), image)
    (tmp_path / "src" / "nut" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_has_help() -> None:
    for group in ([], ["datasets"], ["samples"], ["workspace"]):
        assert "Usage" in invoke(*group, "--help")
    for command in ("list", "create", "info", "csv", "export", "import", "merge", "shuffle", "delete"):
        assert "Usage" in invoke("datasets", command, "--help")
    assert "Usage" in invoke("samples", "generate", "--help")
    assert "Usage" in invoke("workspace", "backup", "--help")


def test_dataset_lifecycle(folders: Path) -> None:
    ws = str(folders / "ws")
    out = invoke("datasets", "create", "parts", "--module", "classification", "-l", str(folders / "src"),
                 "--use-folder-name", "--seed", "3", "--workspace", ws)
    assert "added 12 images" in out and "broken.png" in out
    listed = json.loads(invoke("datasets", "list", "--json", "--workspace", ws))
    assert [(d["name"], d["images"], d["width"], d["height"]) for d in listed] == [("parts", 12, 32, 24)]
    info = json.loads(invoke("datasets", "info", "parts", "--workspace", ws))
    assert info["counts"] == {"bolt": 6, "nut": 6}
    assert "train 9, validation 3" in invoke("datasets", "shuffle", "parts", "--ratio", "0.75", "--seed", "1",
                                             "--workspace", ws)
    csv = folders / "parts.csv"
    invoke("datasets", "csv", "parts", str(csv), "--workspace", ws)
    header = csv.read_text().splitlines()[0]
    assert all(col in header for col in ("name", "ground_truth", "prediction", "set", "assigned"))
    archive = folders / "parts.astrods"
    invoke("datasets", "export", "parts", str(archive), "--workspace", ws)
    invoke("datasets", "import", str(archive), "--name", "parts2", "--workspace", ws)
    invoke("datasets", "merge", "parts", "parts2", "--workspace", ws)
    assert len(Workspace(ws).dataset("parts")) == 24
    invoke("datasets", "delete", "parts2", "--yes", "--workspace", ws)
    assert Workspace(ws).dataset_names() == ["parts"]


def test_backup_and_restore(folders: Path) -> None:
    ws = str(folders / "ws")
    invoke("datasets", "create", "parts", "--module", "classification", "-l", f"{folders / 'src' / 'bolt'}::bolt",
           "--workspace", ws)
    invoke("workspace", "backup", str(folders / "ws.tar"), "--workspace", ws)
    invoke("workspace", "restore", str(folders / "ws.tar"), "--workspace", str(folders / "restored"))
    assert Workspace(folders / "restored").dataset("parts").categories == ["bolt"]


def test_errors_are_clear_and_exit_nonzero(folders: Path) -> None:
    ws = str(folders / "ws")
    empty = folders / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["datasets", "create", "x", "--module", "classification", "-l", str(empty),
                                 "--workspace", ws])
    assert result.exit_code == 1 and str(empty) in result.output
    result = runner.invoke(app, ["datasets", "info", "missing", "--workspace", ws])
    assert result.exit_code == 1 and "no dataset 'missing'" in result.output
    result = runner.invoke(app, ["datasets", "create", "../escape", "--module", "classification", "-l",
                                 str(folders / "src"), "--workspace", ws])
    assert result.exit_code == 1 and "invalid dataset name" in result.output
