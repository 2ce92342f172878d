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
    for command in ("list", "create", "info", "csv", "export", "import", "merge", "shuffle", "delete", "add-database",
                    "preview-text"):
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


@pytest.fixture
def detection_folders(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"p{i}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        (tmp_path / "labels" / f"p{i}.txt").write_text(f"nut\t2\t3\t20\t30\nbolt\t30\t5\t60\t{40 + i}\n")
    return tmp_path


def test_add_database_preview_and_export_formats(detection_folders: Path) -> None:
    root = detection_folders
    ws = str(root / "ws")
    text = ["--format", "text", "--annotations", str(root / "labels"), "--images", str(root / "images"),
            "--columns", "class,x1,y1,x2,y2"]
    shown = invoke("datasets", "preview-text", *text[2:], "--rows", "2")
    assert "class=nut" in shown and "Box(category='nut', x1=2.0" in shown
    out = invoke("datasets", "add-database", "parts", *text, "--workspace", ws)
    assert "objects per category: {'nut': 3, 'bolt': 3}" in out
    dataset = Workspace(ws).dataset("parts")
    assert len(dataset) == 3 and dataset.categories == ["bolt", "nut"]
    for fmt, target in (("voc", "parts.tar"), ("coco", "coco"), ("yolo", "yolo")):
        invoke("datasets", "export", "parts", str(root / target), "--format", fmt, "--workspace", ws)
    assert (root / "parts.tar").is_file() and (root / "coco" / "annotations.json").is_file()
    invoke("datasets", "add-database", "from-yolo", "--format", "yolo", "--annotations", str(root / "yolo" / "labels"),
           "--images", str(root / "yolo" / "images"), "--names", str(root / "yolo" / "classes.txt"), "--workspace", ws)
    back = Workspace(ws).dataset("from-yolo")
    assert [o.category for o in back.objects(0)] == [o.category for o in dataset.objects(0)]


def test_add_database_errors_name_the_file_and_save_nothing(detection_folders: Path) -> None:
    root = detection_folders
    ws = str(root / "ws")
    bad = root / "bad_labels"
    bad.mkdir()
    (bad / "p0.txt").write_text("nut\t2\t3\t20\t30\nnut\t2\tthree\t20\t30\n")
    result = runner.invoke(app, ["datasets", "add-database", "parts", "--format", "text", "--annotations", str(bad),
                                 "--images", str(root / "images"), "--columns", "class,x1,y1,x2,y2",
                                 "--workspace", ws])
    assert result.exit_code == 1 and "p0.txt:2" in result.output and "three" in result.output
    assert Workspace(ws).dataset_names() == []
    invoke("datasets", "add-database", "parts", "--format", "text", "--annotations", str(root / "labels"),
           "--images", str(root / "images"), "--columns", "class,x1,y1,x2,y2", "--workspace", ws)
    (root / "broken").mkdir()
    (root / "broken" / "p0.xml").write_text("<annotation><object><name>nut</name>")
    result = runner.invoke(app, ["datasets", "add-database", "parts", "--format", "voc", "--annotations",
                                 str(root / "broken"), "--images", str(root / "images"), "--workspace", ws])
    assert result.exit_code == 1 and "p0.xml" in result.output
    assert len(Workspace(ws).dataset("parts")) == 3  # the saved dataset is untouched
    result = runner.invoke(app, ["datasets", "add-database", "y", "--format", "yolo", "--annotations",
                                 str(root / "labels"), "--images", str(root / "images"), "--workspace", ws])
    assert result.exit_code == 1 and "--names" in result.output


def test_lists_go_on_past_an_unreadable_dataset_or_model(folders: Path) -> None:
    ws = str(folders / "ws")
    for name in ("good", "bad"):
        invoke("datasets", "create", name, "--module", "classification", "-l", str(folders / "src"),
               "--use-folder-name", "--workspace", ws)
    (folders / "ws" / "datasets" / "bad" / "HEAD").write_bytes(b"\xff\xfe garbage")
    (folders / "ws" / "models" / "junk").mkdir(parents=True)
    (folders / "ws" / "models" / "junk" / "model.json").write_text('{"module": "classification"}')
    result = runner.invoke(app, ["datasets", "list", "--workspace", ws])
    assert result.exit_code == 0 and "good" in result.stdout and "bad" not in result.stdout
    assert "unreadable dataset bad:" in result.stderr
    result = runner.invoke(app, ["models", "list", "--workspace", ws])
    assert result.exit_code == 0 and "unreadable model junk:" in result.stderr


def test_predict_with_a_bad_package_is_an_error_not_a_traceback(folders: Path) -> None:
    package = folders / "bad.astromodel"
    package.write_bytes(b"PK\x03\x04 not a zip at all")
    result = runner.invoke(app, ["predict", str(package), str(folders / "src" / "nut" / "nut_0.png")])
    assert result.exit_code == 1 and "error:" in result.stderr and str(package) in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
