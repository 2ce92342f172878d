"""Headless Chromium (Playwright, system browser) against Voila dashboards and JupyterLab on 127.0.0.1.

Every page records its requests; a request to anything but 127.0.0.1 fails the test. Screenshots go to
``test-artifacts/browser/`` (or ``$ASTROCYTE_ARTIFACTS``). Without Chromium the tests are skipped, unless
``ASTROCYTE_REQUIRE_BROWSER=1`` (set by ``make test``) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from astrocyte_lab.dashboard import dashboard_environment, voila_command

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ASTROCYTE_ARTIFACTS", REPO / "test-artifacts")) / "browser"
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (make browser installs it)"
        if os.environ.get("ASTROCYTE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


class Page:
    """A browser page that remembers every request leaving 127.0.0.1 and saves screenshots by name."""

    def __init__(self, browser, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1500, "height": 1100})
        self.page = self.context.new_page()
        self.name = name
        self.outside: list[str] = []
        self.page.on("request", lambda request: self.outside.append(request.url)
                     if not request.url.startswith(LOCAL) else None)
        self.page.set_default_timeout(60_000)

    def shot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, request) -> Iterator[Callable[[str], Page]]:
    pages: list[Page] = []

    def make(suffix: str = "") -> Page:
        page = Page(browser, request.node.name.replace("/", "_") + suffix)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()
        assert not page.outside, f"requests left 127.0.0.1: {page.outside}"


@pytest.fixture
def voila(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the dashboard for a workspace and module; returns its URL."""
    processes: list[subprocess.Popen] = []

    def start(workspace: Path, module: str) -> str:
        port = free_port()
        env = dashboard_environment(workspace, module, False, tmp_path / "jupyter-data")
        env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")
        log = open(tmp_path / f"voila-{port}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(voila_command(REPO / "notebooks" / "dashboard.ipynb", port), env=env,
                                   cwd=str(REPO / "notebooks"), stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        url = f"http://127.0.0.1:{port}/"
        wait_http(url + "voila/templates/astrocyte/static/fontawesome/css/all.min.css", process)
        return url

    yield start
    for process in processes:
        stop(process)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start JupyterLab on a copy of the dashboard notebook; returns the notebook's URL (with its token)."""
    processes: list[subprocess.Popen] = []

    def start(workspace: Path, module: str) -> str:
        port, token = free_port(), "astrocyte-test-token"
        root = tmp_path / "lab-root"
        root.mkdir(exist_ok=True)
        shutil.copyfile(REPO / "notebooks" / "dashboard.ipynb", root / "dashboard.ipynb")
        env = dict(os.environ, ASTROCYTE_HOME=str(workspace), ASTROCYTE_MODULE=module, ASTROCYTE_READ_ONLY="0",
                   JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                   JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"))
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
                   "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                   "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
                   "jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
        log = open(tmp_path / f"lab-{port}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(command, env=env, cwd=str(root), stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        base = f"http://127.0.0.1:{port}/"
        wait_http(f"{base}api/status?token={token}", process)
        return f"{base}lab/tree/dashboard.ipynb?token={token}"

    yield start
    for process in processes:
        stop(process)


def open_app(page: Page, where: str, url: str) -> None:
    """Load the App: Voila renders it by itself; in JupyterLab the notebook's cells are run first."""
    page.page.goto(url, wait_until="domcontentloaded")
    if where == "lab":
        page.page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                    "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                    "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=90_000)
        page.page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                    ".connectionStatus === 'connected'", timeout=90_000)
        page.page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.page.wait_for_selector(".astrocyte-app", timeout=120_000)
