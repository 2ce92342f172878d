"""A real Jupyter server on 127.0.0.1 (token auth) with the astrocyte-lab server extension, over a temp root and
a temp workspace holding one classification dataset."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from astrocyte_lab import Location, NamedSet, Workspace

TOKEN = "astrocyte-api-test-token"


@dataclass
class Server:
    url: str  # base URL, ending in /
    root: Path
    workspace: Path
    process: subprocess.Popen

    def api(self, route: str) -> str:
        return f"{self.url}astrocyte/api/{route}"

    def get(self, route: str, auth: bool = True) -> requests.Response:
        return requests.get(self.api(route), headers=self.headers(auth), timeout=60)

    def post(self, route: str, body: object = None, auth: bool = True) -> requests.Response:
        return requests.post(self.api(route), json=body, headers=self.headers(auth), timeout=300)

    @staticmethod
    def headers(auth: bool) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"} if auth else {}


def write_discs(root: Path, per_class: int = 6, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in (("red", (40, 40, 220)), ("blue", (220, 60, 40))):
        folder = root / "discs" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            cv2.circle(image, tuple(int(v) for v in rng.integers(10, size - 10, 2)), 7, colour, -1)
            cv2.imwrite(str(folder / f"{name}_{i}.png"), image)
    return root / "discs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(tmp: Path, workspace: Path, root: Path) -> Server:
    port = free_port()
    env = dict(os.environ, ASTROCYTE_HOME=str(workspace), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"))
    command = [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
               "--ServerApp.jpserver_extensions={'astrocyte_lab': True}"]
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, cwd=str(root), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited: {(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if requests.get(f"{url}astrocyte/api/status", headers=Server.headers(True), timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if time.time() > deadline:
            process.kill()
            raise TimeoutError(f"jupyter server did not answer: {(tmp / 'server.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return Server(url, root, workspace, process)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("astrocyte-server")
    workspace, root = tmp / "workspace", tmp / "root"
    (root / "work" / "sub").mkdir(parents=True)
    ws = Workspace(workspace)
    ws.create_dataset("discs", "classification", [NamedSet("s", [Location(write_discs(tmp), use_folder_name=True)])],
                      seed=0)
    srv = start_server(tmp, workspace, root)
    yield srv
    srv.process.terminate()
    try:
        srv.process.wait(15)
    except subprocess.TimeoutExpired:
        srv.process.kill()
    shutil.rmtree(tmp, ignore_errors=True)
