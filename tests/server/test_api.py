"""The REST API of the server extension against a real Jupyter server: authentication and XSRF, name and path
validation, JSON errors (bad bodies and engine errors answer 400), listing (broken items beside the good ones) /
copying / exporting / cancelling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from astrocyte_lab.server.files import NOTEBOOKS
from astrocyte_lab.training import job_records

ROUTES_GET = ["status", "datasets", "models", "jobs", "tutorials"]
ROUTES_POST = ["models/export", "jobs/cancel", "tutorials/copy", "notebooks"]


def error_of(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["message"]


@pytest.mark.parametrize("route", ROUTES_GET)
def test_get_without_token_is_forbidden(server, route):
    error_of(server.get(route, auth=False), 403)


@pytest.mark.parametrize("route", ROUTES_POST)
def test_post_without_token_is_forbidden(server, route):
    error_of(server.post(route, {"tutorial": "classification"}, auth=False), 403)
    assert not list(server.root.rglob("*.ipynb"))


def test_cookie_session_needs_the_xsrf_token(server):
    session = requests.Session()
    session.get(f"{server.url}login", timeout=30)
    xsrf = session.cookies["_xsrf"]
    login = session.post(f"{server.url}login", data={"password": "astrocyte-api-test-token", "_xsrf": xsrf},
                         timeout=30, allow_redirects=False)
    assert login.status_code == 302
    assert session.get(server.api("datasets"), timeout=30).status_code == 200
    body = {"tutorial": "classification", "folder": "work"}
    assert session.post(server.api("tutorials/copy"), json=body, timeout=30).status_code == 403
    answer = session.post(server.api("tutorials/copy"), json=body, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert answer.status_code == 201
    (server.root / answer.json()["path"]).unlink()


def test_lists_datasets_and_status(server):
    data = server.get("datasets").json()
    assert data["workspace"] == str(server.workspace)
    [discs] = data["datasets"]
    assert discs["name"] == "discs" and discs["module"] == "classification" and discs["images"] == 12
    status = server.get("status").json()
    assert status["workspace"] == str(server.workspace)
    assert {t["id"] for t in status["tutorials"] if t["launcher"]} == {
        "anomaly_detection", "classification", "continual_learning", "object_detection", "segmentation", "dashboard"}


def test_copy_tutorial_never_overwrites(server):
    first = server.post("tutorials/copy", {"tutorial": "classification", "folder": "work/sub"})
    assert first.status_code == 201 and first.json()["path"] == "work/sub/classification.ipynb"
    second = server.post("tutorials/copy", {"tutorial": "classification", "folder": "/work/sub/"})
    assert second.json()["path"] == "work/sub/classification-1.ipynb"
    source = (NOTEBOOKS / "classification.ipynb").read_bytes()
    assert (server.root / "work/sub/classification.ipynb").read_bytes() == source
    assert (server.root / "work/sub/classification-1.ipynb").read_bytes() == source
    at_root = server.post("tutorials/copy", {"tutorial": "dashboard", "reuse": True})
    assert at_root.json()["path"] == "dashboard.ipynb"
    again = server.post("tutorials/copy", {"tutorial": "dashboard", "reuse": True})
    assert again.json()["path"] == "dashboard.ipynb"  # an identical copy is reused, not duplicated


@pytest.mark.parametrize("folder,status", [
    ("..", 403), ("../..", 403), ("work/../..", 403), ("work/../../etc", 403), (".hidden", 403),
    ("C:/Windows", 400), ("nowhere", 404), ("work/sub/classification.ipynb", 404)])
def test_copy_refuses_folders_outside_the_root(server, folder, status):
    before = sorted(server.root.parent.rglob("*.ipynb"))
    error_of(server.post("tutorials/copy", {"tutorial": "segmentation", "folder": folder}), status)
    assert sorted(server.root.parent.rglob("*.ipynb")) == before


def test_copy_refuses_a_symlink_out_of_the_root(server, tmp_path):
    (server.root / "escape").symlink_to(tmp_path, target_is_directory=True)
    try:
        error_of(server.post("tutorials/copy", {"tutorial": "segmentation", "folder": "escape"}), 403)
        assert not list(tmp_path.iterdir())
    finally:
        (server.root / "escape").unlink()


@pytest.mark.parametrize("body,status", [
    ({"tutorial": "../../etc/passwd"}, 404), ({"tutorial": "nope"}, 404), ({}, 400),
    ({"tutorial": 3}, 400), ({"tutorial": "classification", "folder": ["x"]}, 400), ({"tutorial": "100%s"}, 404)])
def test_copy_validates_its_fields(server, body, status):
    error_of(server.post("tutorials/copy", body), status)


def test_bodies_must_be_json_objects(server):
    headers = {**server.headers(True), "Content-Type": "application/json"}
    for data in (b"{not json", b"[1, 2]"):
        answer = requests.post(server.api("tutorials/copy"), data=data, headers=headers, timeout=30)
        assert "JSON" in error_of(answer, 400)


def test_starter_notebook_opens_the_dataset(server):
    answer = server.post("notebooks", {"kind": "dataset", "name": "discs", "folder": "work"})
    assert answer.status_code == 201 and answer.json()["path"] == "work/dataset-discs.ipynb"
    notebook = json.loads((server.root / "work/dataset-discs.ipynb").read_text())
    first = notebook["cells"][0]["source"]
    assert 'ws.dataset("discs")' in first and json.dumps(str(server.workspace)) in first
    code = compile(first, "cell", "exec")  # valid Python
    assert code is not None
    assert server.post("notebooks", {"kind": "dataset", "name": "discs", "folder": "work"}).json()["path"] == \
        "work/dataset-discs-1.ipynb"


@pytest.mark.parametrize("body,status", [
    ({"kind": "dataset", "name": "../discs"}, 400), ({"kind": "dataset", "name": "a/b"}, 400),
    ({"kind": "dataset", "name": "missing"}, 404), ({"kind": "model", "name": "missing"}, 404),
    ({"kind": "shell", "name": "discs"}, 400), ({"kind": "dataset", "name": "discs", "folder": "../"}, 403)])
def test_starter_notebook_validates(server, body, status):
    error_of(server.post("notebooks", body), status)


@pytest.mark.parametrize("name,status", [("../../etc", 400), ("..", 400), (".hidden", 400), ("missing", 404)])
def test_export_refuses_bad_names(server, name, status):
    error_of(server.post("models/export", {"model": name}), status)
    assert not (server.workspace / "exports").exists() or not list((server.workspace / "exports").iterdir())


def test_trained_model_is_listed_exported_and_its_job_recorded(server):
    from astrocyte_lab import Workspace
    from astrocyte_lab.modules.classification.config import ClassificationConfig
    from astrocyte_lab.modules.classification.trainer import train_job

    config = ClassificationConfig(epochs=1, architecture="resnet18", pretrained=False, batch_size=8, seed=0,
                                  region_size=(32, 32))
    job = train_job(Workspace(server.workspace), "discs", "tiny", config)
    assert job.result(timeout=300) == "tiny"
    jobs = server.get("jobs").json()["jobs"]
    assert any(j["id"] == job.record.id and j["state"] == "done" and j["name"] == "train tiny" for j in jobs)
    [model] = server.get("models").json()["models"]
    assert model["name"] == "tiny" and model["module"] == "classification"
    first = server.post("models/export", {"model": "tiny"})
    assert first.status_code == 201, first.text
    path = Path(first.json()["path"])
    assert path == server.workspace / "exports" / "tiny.astromodel" and path.stat().st_size > 1000
    second = server.post("models/export", {"model": "tiny"}).json()
    assert second["file"] == "tiny-1.astromodel"  # an earlier export is kept
    from astrocyte_lab.runtime import load_package

    assert load_package(path) is not None  # a real package: the torch-free runtime opens it

    notebook = server.post("notebooks", {"kind": "model", "name": "tiny"}).json()["path"]
    first_cell = json.loads((server.root / notebook).read_text())["cells"][0]["source"]
    assert 'model = "tiny"' in first_cell and "ws.model_store.info(model)" in first_cell


def test_cancel_a_job_of_another_process(server):
    code = ("import sys, time\nfrom astrocyte_lab.training.jobs import Job\n"
            "def work(ctx):\n    while True:\n        ctx.check_cancelled()\n        time.sleep(0.05)\n"
            "job = Job('slow', work, workspace=sys.argv[1])\nprint(job.record.id, flush=True)\n"
            "job.wait(60)\nprint(job.state, flush=True)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(server.workspace)], stdout=subprocess.PIPE, text=True)
    try:
        job_id = process.stdout.readline().strip()
        listed = {j["id"]: j for j in server.get("jobs").json()["jobs"]}
        assert listed[job_id]["state"] == "running"
        answer = server.post("jobs/cancel", {"id": job_id})
        assert answer.status_code == 202 and answer.json()["job"]["cancel_requested"] is True
        assert process.stdout.readline().strip() == "cancelled"
        process.wait(30)
        deadline = time.time() + 10
        while job_records.get_record(server.workspace, job_id)["state"] != "cancelled" and time.time() < deadline:
            time.sleep(0.1)
        state = {j["id"]: j["state"] for j in server.get("jobs").json()["jobs"]}[job_id]
        assert state == "cancelled"
        assert "not running" in error_of(server.post("jobs/cancel", {"id": job_id}), 409)
    finally:
        process.kill()


@pytest.mark.parametrize("job_id,status", [("../../workspace", 400), ("", 400), ("20260101T000000-1-0123abcd", 404)])
def test_cancel_validates_the_id(server, job_id, status):
    error_of(server.post("jobs/cancel", {"id": job_id}), status)


@pytest.mark.parametrize("data,words", [
    (b"[" * 100_000, "nested"),  # was a RecursionError: 500 "Unhandled error"
    (b'{"tutorial": ' * 5_000 + b'"x"' + b"}" * 5_000, "nested"),
    (b'{"tutorial": NaN}', "non-finite"),
    (b'{"tutorial": "\xff\xfe"}', "UTF-8"),
    (b'"just a string"', "JSON object"),
    (b"", None),  # an empty body is an empty object: the missing field is named
])
def test_bad_bodies_answer_400_with_a_clear_message(server, data, words):
    headers = {**server.headers(True), "Content-Type": "application/json"}
    answer = requests.post(server.api("tutorials/copy"), data=data, headers=headers, timeout=60)
    message = error_of(answer, 400)
    assert "request body" in message and (words is None or words in message), message
    assert "Unhandled" not in message and "Traceback" not in answer.text


def test_engine_errors_answer_400_with_their_message(server):
    """A project error raised by the engine (here a model whose record is not valid JSON) is a 400 naming the
    file, not a 500."""
    folder = server.workspace / "models" / "garbled"
    folder.mkdir()
    try:
        (folder / "model.json").write_bytes(b"{not json")
        message = error_of(server.post("models/export", {"model": "garbled"}), 400)
        assert "model.json" in message, message
    finally:
        shutil.rmtree(folder)


def test_one_broken_dataset_or_model_does_not_break_the_lists(server):
    corrupt = server.workspace / "datasets" / "corrupt"
    half = server.workspace / "models" / "half"
    shutil.copytree(server.workspace / "datasets" / "discs", corrupt)
    (corrupt / "HEAD").write_bytes(b"\xff\xfe\x00garbage")
    half.mkdir()
    (half / "model.json").write_text(json.dumps({"module": "classification", "categories": ["a"]}))  # no input
    try:
        datasets = server.get("datasets")
        assert datasets.status_code == 200, datasets.text
        data = datasets.json()
        assert "discs" in [d["name"] for d in data["datasets"]]
        assert "corrupt" not in [d["name"] for d in data["datasets"]]
        [broken] = data["broken"]
        assert broken["name"] == "corrupt" and broken["reason"]
        models = server.get("models")
        assert models.status_code == 200, models.text
        assert "half" not in [m["name"] for m in models.json()["models"]]
        assert [b["name"] for b in models.json()["broken"]] == ["half"]
        assert models.json()["broken"][0]["reason"]
    finally:
        shutil.rmtree(corrupt)
        shutil.rmtree(half)
