"""The JupyterLab extension in a real browser: launcher cards copy and open a tutorial, the sidebar lists the
workspace (a dataset created from Python appears), and a running job is cancelled from the sidebar. No request
may leave 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrocyte_lab import Location, NamedSet, Workspace
from astrocyte_lab.server.files import NOTEBOOKS
from astrocyte_lab.training import job_records

from .conftest import free_port, stop, wait_http

pytestmark = pytest.mark.browser
TOKEN = "astrocyte-labext-token"
LABEXT = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "astrocyte-lab-labextension" / "package.json"
WORKFLOWS = ["Anomaly detection", "Classification", "Continual learning", "Object detection", "Segmentation",
             "Dashboard"]


@dataclass
class Lab:
    base: str
    root: Path
    workspace: Path

    @property
    def url(self) -> str:
        return f"{self.base}lab?reset&token={TOKEN}"


def write_images(folder: Path, count: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in (("red", (40, 40, 220)), ("blue", (220, 60, 40))):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = rng.integers(60, 120, (32, 32, 3), dtype=np.uint8)
            cv2.circle(image, (16, 16), 7, colour, -1)
            cv2.imwrite(str(folder / name / f"{name}_{i}.png"), image)
    return folder


def make_dataset(workspace: Path, name: str, images: Path) -> None:
    Workspace(workspace).create_dataset(name, "classification", [NamedSet("s", [Location(
        images, use_folder_name=True)])], seed=0)


@pytest.fixture(scope="module")
def astro_lab(tmp_path_factory) -> Iterator[Lab]:
    if not LABEXT.exists():
        message = "the JupyterLab extension is not built and installed (make setup)"
        if os.environ.get("ASTROCYTE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("astro-lab")
    root, workspace = tmp / "root", tmp / "ws"
    (root / "work").mkdir(parents=True)
    make_dataset(workspace, "discs", write_images(tmp / "images"))
    port = free_port()
    env = dict(os.environ, ASTROCYTE_HOME=str(workspace), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "lab-settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-ws"))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
               "--ServerApp.jpserver_extensions={'astrocyte_lab': True}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, cwd=str(root), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_http(f"{base}astrocyte/api/status?token={TOKEN}", process)
        yield Lab(base, root, workspace)
    finally:
        stop(process)
        log.close()


def open_lab(page, lab: Lab) -> None:
    page.page.goto(lab.url, wait_until="domcontentloaded")
    page.page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('astrocyte:open-tutorial')",
                                timeout=90_000)


def open_sidebar(page) -> None:
    page.page.locator(".jp-SideBar [data-id='astrocyte-sidebar']").click()
    page.page.wait_for_selector("#astrocyte-sidebar .astrocyte-Sidebar-workspace:not(:empty)", timeout=30_000)


def execute(page, command: str, args: dict | None = None) -> None:
    """Run a JupyterLab command and wait for it (its result, a widget, stays in the page)."""
    page.page.evaluate("([command, args]) => window.jupyterapp.commands.execute(command, args).then(() => null)",
                       [command, args or {}])


def test_launcher_cards_copy_and_open_the_tutorial(astro_lab: Lab, open_page) -> None:
    page = open_page()
    open_lab(page, astro_lab)
    section = page.page.locator(".jp-Launcher-section", has=page.page.locator(
        ".jp-Launcher-sectionTitle", has_text="Astrocyte"))
    section.wait_for(timeout=60_000)
    labels = section.locator(".jp-LauncherCard-label").all_inner_texts()
    assert [label.strip() for label in labels] == WORKFLOWS
    page.shot("launcher")

    section.locator(".jp-LauncherCard", has_text="Classification").click()
    page.page.wait_for_function("window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget"
                                ".context && window.jupyterapp.shell.currentWidget.context.path === "
                                "'classification.ipynb'", timeout=60_000)
    page.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.shot("tutorial-opened")
    assert (astro_lab.root / "classification.ipynb").read_bytes() == (NOTEBOOKS / "classification.ipynb").read_bytes()

    # from the palette, with the file browser in another folder: a copy there, never over an existing file
    execute(page, "filebrowser:go-to-path", {"path": "/work"})
    execute(page, "astrocyte:open-tutorial", {"tutorial": "classification"})
    page.page.wait_for_function("window.jupyterapp.shell.currentWidget.context && "
                                "window.jupyterapp.shell.currentWidget.context.path === 'work/classification.ipynb'",
                                timeout=60_000)
    execute(page, "astrocyte:open-tutorial", {"tutorial": "classification"})
    page.page.wait_for_function("window.jupyterapp.shell.currentWidget.context.path === "
                                "'work/classification-1.ipynb'", timeout=60_000)
    labels = page.page.evaluate("window.jupyterapp.commands.label('astrocyte:open-dashboard')")
    assert labels == "Open Astrocyte dashboard"


def test_sidebar_lists_datasets_created_from_python(astro_lab: Lab, open_page, tmp_path: Path) -> None:
    page = open_page()
    open_lab(page, astro_lab)
    open_sidebar(page)
    sidebar = page.page.locator("#astrocyte-sidebar")
    sidebar.locator(".astrocyte-Sidebar-dataset[data-astrocyte-name='discs']").wait_for(timeout=30_000)
    assert str(astro_lab.workspace) in sidebar.locator(".astrocyte-Sidebar-workspace").inner_text()

    make_dataset(astro_lab.workspace, "beads", write_images(tmp_path / "beads", 3))  # appears with the next poll
    beads = sidebar.locator(".astrocyte-Sidebar-dataset[data-astrocyte-name='beads']")
    beads.wait_for(timeout=20_000)
    assert "6 images" in beads.inner_text()
    page.shot("sidebar")

    beads.get_by_role("button", name="Open").click()
    page.page.wait_for_function("window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget"
                                ".context && window.jupyterapp.shell.currentWidget.context.path === "
                                "'dataset-beads.ipynb'", timeout=60_000)
    assert 'ws.dataset(\\"beads\\")' in (astro_lab.root / "dataset-beads.ipynb").read_text()


def test_cancel_a_running_job_from_the_sidebar(astro_lab: Lab, open_page) -> None:
    code = ("import sys, time\nfrom astrocyte_lab.training.jobs import Job\n"
            "def work(ctx):\n    step = 0\n    while True:\n        ctx.check_cancelled()\n        step += 1\n"
            "        ctx.progress(step, None, 'training')\n        time.sleep(0.05)\n"
            "job = Job('train slow-model', work, workspace=sys.argv[1])\nprint(job.record.id, flush=True)\n"
            "job.wait(120)\nprint(job.state, flush=True)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(astro_lab.workspace)], stdout=subprocess.PIPE,
                               text=True)
    try:
        job_id = process.stdout.readline().strip()
        page = open_page()
        open_lab(page, astro_lab)
        open_sidebar(page)
        job = page.page.locator(f"#astrocyte-sidebar .astrocyte-Sidebar-job[data-astrocyte-job='{job_id}']")
        job.and_(page.page.locator("[data-astrocyte-state='running']")).wait_for(timeout=30_000)
        page.shot("job-running")
        job.get_by_role("button", name="Cancel").click()
        page.page.locator(".jp-Dialog").get_by_role("button", name="Cancel job").click()
        assert process.stdout.readline().strip() == "cancelled"
        job.and_(page.page.locator("[data-astrocyte-state='cancelled']")).wait_for(timeout=30_000)
        page.shot("job-cancelled")
        deadline = time.time() + 10
        while job_records.get_record(astro_lab.workspace, job_id)["state"] != "cancelled":
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait(10)


def test_dashboard_command_opens_the_voila_view(astro_lab: Lab, open_page) -> None:
    page = open_page()
    open_lab(page, astro_lab)
    with page.context.expect_page(timeout=60_000) as popup:
        execute(page, "astrocyte:open-dashboard")
    dashboard = popup.value
    outside: list[str] = []
    dashboard.on("request", lambda request: outside.append(request.url) if not request.url.startswith(
        ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")) else None)
    dashboard.wait_for_url("**/voila/render/dashboard.ipynb**", timeout=60_000)
    dashboard.wait_for_selector(".astrocyte-app", timeout=120_000)
    dashboard.screenshot(path=str(page.shot("lab").parent / f"{page.name}-voila.png"), full_page=True)
    assert (astro_lab.root / "dashboard.ipynb").is_file()
    # Font Awesome comes from the astrocyte template, not a CDN; Voila's frontend still asks cdnjs for MathJax
    # in server-extension mode (it fails offline, harmlessly: the App has no formulas)
    assert not [url for url in outside if "mathjax" not in url], outside


def test_voila_dashboard_still_works_with_the_extension_installed(voila, open_page, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    make_dataset(workspace, "discs", write_images(tmp_path / "images"))
    page = open_page()
    errors: list[str] = []
    page.page.on("pageerror", lambda error: errors.append(str(error)))
    page.page.goto(voila(workspace, "classification"), wait_until="domcontentloaded")
    page.page.wait_for_selector(".astrocyte-app", timeout=120_000)
    assert not page.page.locator("#astrocyte-sidebar").count()
    assert not [e for e in errors if "astrocyte" in e.lower()], errors


def test_export_a_model_package_from_the_sidebar(astro_lab: Lab, open_page) -> None:
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.trainer import train_job

    config = ClassificationConfig(epochs=1, architecture="resnet18", pretrained=False, batch_size=8, seed=0,
                                  region_size=(32, 32))
    assert train_job(Workspace(astro_lab.workspace), "discs", "tiny", config).result(timeout=300) == "tiny"
    page = open_page()
    open_lab(page, astro_lab)
    open_sidebar(page)
    model = page.page.locator("#astrocyte-sidebar .astrocyte-Sidebar-model[data-astrocyte-name='tiny']")
    model.wait_for(timeout=30_000)
    done = page.page.locator("#astrocyte-sidebar .astrocyte-Sidebar-job", has_text="train tiny")
    done.and_(page.page.locator("[data-astrocyte-state='done']")).wait_for(timeout=30_000)
    model.get_by_role("button", name="Export").click()
    page.page.get_by_text("Exported tiny to").first.wait_for(timeout=120_000)
    page.shot("exported")
    assert (astro_lab.workspace / "exports" / "tiny.astromodel").stat().st_size > 1000
