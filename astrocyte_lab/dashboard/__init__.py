"""Serve the App as a standalone dashboard with Voila: local only, offline, optionally read-only.

Voila renders ``notebooks/dashboard.ipynb`` (the App in one cell). Its stock "lab" template links Font Awesome
from a CDN; the ``astrocyte`` template here extends it and serves a local copy of Font Awesome (the
``fontawesome-free`` package), so the page makes no request outside the machine. The template is written into
``<workspace>/.dashboard``, or, for a read-only dashboard (which writes nothing into the workspace), into the
user's cache folder.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from astrocyte_lab.errors import AstrocyteError

TEMPLATE = "astrocyte"
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"
# frontend plugins that need JupyterLab's shell (launcher, sidebar) and cannot load inside Voila's page
VOILA_DENYLIST = ["astrocyte-lab-labextension"]


def fontawesome_folder() -> Path:
    """The folder of the installed Font Awesome Free copy (``css/`` and ``webfonts/``)."""
    try:
        files = importlib.metadata.files("fontawesome-free") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise AstrocyteError("the fontawesome-free package is missing: run make setup") from exc
    for file in files:
        if str(file).endswith("fontawesome_free/css/all.min.css") and "js-packages" not in str(file):
            return Path(file.locate()).parents[1]
    raise AstrocyteError("fontawesome-free is installed but its css/all.min.css was not found")


def prepare_template(root: Path) -> Path:
    """Write the ``astrocyte`` Voila template under ``root/voila/templates`` and return ``root`` (a Jupyter
    data path to add to ``JUPYTER_PATH``)."""
    target = root / "voila" / "templates" / TEMPLATE
    static = target / "static" / "fontawesome"
    if not (static / "css" / "all.min.css").exists():
        source = fontawesome_folder()
        for part in ("css", "webfonts"):
            shutil.copytree(source / part, static / part, dirs_exist_ok=True)
    for name in ("index.html.j2", "conf.json"):
        shutil.copyfile(Path(__file__).with_name("template") / name, target / name)
    return root


def voila_command(notebook: Path, port: int, no_browser: bool = True) -> list[str]:
    """The Voila command line: 127.0.0.1 only, our template, JupyterLab-only plugins denied."""
    command = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1",
               f"--template={TEMPLATE}", f"--VoilaConfiguration.extension_denylist={VOILA_DENYLIST!r}",
               "--VoilaConfiguration.show_tracebacks=True"]
    if no_browser:
        command.append("--no-browser")
    return command


def dashboard_environment(workspace: Path | None, module: str, read_only: bool, data_root: Path) -> dict[str, str]:
    """Environment for the dashboard's kernel: which module and workspace, read-only or not, where the template
    lives."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(prepare_template(data_root)), env.get("JUPYTER_PATH")]))
    env["ASTROCYTE_MODULE"] = module
    env["ASTROCYTE_READ_ONLY"] = "1" if read_only else "0"
    if workspace is not None:
        env["ASTROCYTE_HOME"] = str(workspace)
    return env


def template_root(workspace: Path | None, read_only: bool) -> Path:
    """Where the template is written: the workspace's ``.dashboard`` folder, or the user's cache folder for a
    read-only dashboard."""
    if read_only:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "astrocyte-lab" / "dashboard"
    return Path(workspace or Path.home() / "astrocyte-workspace") / ".dashboard"


def serve(workspace: Path | None = None, module: str = "classification", port: int = 8866, read_only: bool = False,
          notebook: Path = NOTEBOOK, data_root: Path | None = None) -> subprocess.Popen:
    """Start Voila on ``notebook``; returns the process (stop it with ``terminate()``)."""
    if not notebook.exists():
        raise AstrocyteError(f"{notebook}: dashboard notebook not found")
    root = data_root or template_root(workspace, read_only)
    env = dashboard_environment(workspace, module, read_only, root)
    return subprocess.Popen(voila_command(notebook, port), env=env, cwd=str(notebook.parent))
