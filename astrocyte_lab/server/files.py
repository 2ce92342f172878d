"""What the REST handlers do to files, kept free of tornado so it can be tested and reused: copy a tutorial into a
folder of the server root without overwriting, write a starter notebook for a dataset or model, export a model
package into the workspace, and map engine errors to HTTP status codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from astrocyte_lab.errors import AstrocyteError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPORTS = "exports"
PACKAGE_SUFFIX = ".astromodel"

# workflow id -> (notebook file, title); the launcher shows the ones marked True
TUTORIALS: dict[str, tuple[str, str, bool]] = {
    "anomaly_detection": ("anomaly_detection.ipynb", "Anomaly detection", True),
    "classification": ("classification.ipynb", "Classification", True),
    "continual_learning": ("continual_learning.ipynb", "Continual learning", True),
    "object_detection": ("object_detection.ipynb", "Object detection", True),
    "segmentation": ("segmentation.ipynb", "Segmentation", True),
    "dashboard": ("dashboard.ipynb", "Dashboard", True),
    "datasets": ("datasets.ipynb", "Datasets", False),
    "auto_train": ("auto_train.ipynb", "Auto train", False),
}


class RequestError(AstrocyteError):
    """A request the server refuses; ``status`` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def status_for(exc: BaseException) -> int:
    from astrocyte_lab import errors

    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, errors.InvalidNameError):
        return 400
    not_found = tuple(getattr(errors, n) for n in ("DatasetNotFoundError", "ModelNotFoundError") if hasattr(errors, n))
    if isinstance(exc, not_found):
        return 404
    if isinstance(exc, errors.NameConflictError):
        return 409
    from astrocyte_lab.training.job_records import JobNotFoundError, JobNotRunningError

    if isinstance(exc, JobNotFoundError):
        return 404
    if isinstance(exc, JobNotRunningError):
        return 409
    if isinstance(exc, AstrocyteError):
        return 400
    return 500


def available_tutorials(notebooks: Path = NOTEBOOKS) -> list[dict[str, Any]]:
    return [{"id": key, "file": file, "title": title, "launcher": launcher, "available": (notebooks / file).is_file()}
            for key, (file, title, launcher) in TUTORIALS.items()]


def resolve_folder(root: Path, folder: str) -> Path:
    """``folder`` (a path relative to the server root, as the file browser gives it) as an existing folder inside
    ``root``; a drive letter, a hidden part, a way outside the root (``..``, symlinks) or a missing folder is
    refused."""
    if not isinstance(folder, str) or "\x00" in folder or len(folder) > 1000:
        raise RequestError("invalid folder")
    relative = folder.replace("\\", "/").strip("/")  # like Jupyter's contents API: "/a/b" is "a/b" of the root
    if len(folder) > 1 and folder[1] == ":":
        raise RequestError(f"folder {folder!r} must be relative to the server root")
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if any(p == ".." or p.startswith(".") for p in parts):
        raise RequestError(f"folder {folder!r} leaves the server root or is hidden", 403)
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        raise RequestError(f"folder {folder!r} is outside the server root", 403)
    if not target.is_dir():
        raise RequestError(f"no folder {folder!r} in the server root", 404)
    return target


def write_new(folder: Path, stem: str, suffix: str, content: bytes) -> Path:
    """Write ``content`` to ``folder/stem{suffix}``, or ``stem-1``, ``stem-2`` ... : never over an existing file."""
    for index in range(10_000):
        path = folder / (f"{stem}{suffix}" if index == 0 else f"{stem}-{index}{suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        return path
    raise RequestError(f"too many copies of {stem}{suffix} in {folder}", 409)


def relative_path(root: Path, path: Path) -> str:
    return path.relative_to(root.resolve()).as_posix()


def copy_tutorial(notebooks: Path, tutorial: str, root: Path, folder: str = "", reuse: bool = False) -> str:
    """Copy a tutorial notebook into ``folder``; returns its path relative to the server root. With ``reuse`` an
    identical copy already there is returned instead of a new one (the dashboard command)."""
    if tutorial not in TUTORIALS:
        raise RequestError(f"unknown tutorial {tutorial!r}; have {sorted(TUTORIALS)}", 404)
    file = TUTORIALS[tutorial][0]
    source = notebooks / file
    if not source.is_file():
        raise RequestError(f"the {tutorial} tutorial is not installed ({source})", 404)
    target_folder = resolve_folder(root, folder)
    content = source.read_bytes()
    existing = target_folder / file
    if reuse and existing.is_file() and existing.read_bytes() == content:
        return relative_path(root, existing)
    return relative_path(root, write_new(target_folder, Path(file).stem, ".ipynb", content))


def _cell(source: str, kind: str = "code") -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def starter_cells(workspace_path: Path, kind: str, name: str) -> list[dict[str, Any]]:
    ws = json.dumps(str(workspace_path))
    if kind == "dataset":
        return [_cell(f"from astrocyte_lab import Workspace\n\nws = Workspace({ws})\n"
                      f"dataset = ws.dataset({json.dumps(name)})\ndataset.table"),
                _cell("# Edit it (relabel, assign_set, set_roi ...), then dataset.save() -- see README.md\n"
                      "print(dataset.info())")]
    return [_cell(f"from astrocyte_lab import Workspace\nfrom astrocyte_lab.modules.registry import entry\n\n"
                  f"ws = Workspace({ws})\nmodel = {json.dumps(name)}\ninfo = ws.model_store.info(model)\ninfo"),
            _cell("# test it on a dataset, or write a deployable package:\n"
                  "# report = entry(info.module).load(\"evaluate\")(ws, model, \"DATASET\", \"validation\")\n"
                  "# entry(info.module).load(\"export\")(ws, model, f\"{model}.astromodel\")")]


def starter_notebook(workspace: Any, kind: str, name: str, root: Path, folder: str = "") -> str:
    """A new notebook in ``folder`` whose first cell opens dataset or model ``name``; returns its path."""
    from astrocyte_lab.data.workspace import check_name

    if kind not in ("dataset", "model"):
        raise RequestError(f"kind must be 'dataset' or 'model', not {kind!r}")
    check_name(name)
    if kind == "dataset":
        workspace.dataset(name)  # raises when it does not exist
    else:
        workspace.model_store.info(name)
    target_folder = resolve_folder(root, folder)
    notebook = {"cells": starter_cells(workspace.path, kind, name), "nbformat": 4, "nbformat_minor": 5,
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                             "language_info": {"name": "python"}}}
    content = (json.dumps(notebook, indent=1) + "\n").encode()
    return relative_path(root, write_new(target_folder, f"{kind}-{name}", ".ipynb", content))


def export_model(workspace: Any, name: str) -> Path:
    """Write model ``name``'s deployable package to ``<workspace>/exports/<name>.astromodel`` (or ``<name>-1``...:
    an earlier export is kept)."""
    from astrocyte_lab.data.workspace import check_name
    from astrocyte_lab.modules.registry import entry

    check_name(name)
    module = workspace.model_store.info(name).module
    exporter = entry(module).load("export")
    folder = Path(workspace.path) / EXPORTS
    folder.mkdir(exist_ok=True)
    placeholder = write_new(folder, name, PACKAGE_SUFFIX, b"")  # claims the name; the export fills it
    try:
        written = Path(exporter(workspace, name, placeholder))
    except BaseException:
        placeholder.unlink(missing_ok=True)
        raise
    return written
