"""REST handlers: list datasets, models and jobs; export a model package; cancel a job; copy a tutorial notebook
or write a starter notebook into the server's folders.

Every handler is an ``APIHandler`` behind ``@tornado.web.authenticated``, so Jupyter's token/cookie
authentication and XSRF checks apply. Names go through the workspace's ``check_name``; folder paths are
resolved and must stay inside the server root. Errors are JSON ``{"message", "reason"}`` with a status code:
a bad request body or an engine error (:class:`~astrocyte_lab.errors.AstrocyteError`) answers 400 (404 for what
does not exist) with the engine's message, never a traceback. The dataset and model lists answer the readable
items plus ``broken``: the unreadable ones, each with its name and why, so one bad item cannot break a listing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from astrocyte_lab.server import API_PREFIX
from astrocyte_lab.server import files as server_files


class RequestFailed(tornado.web.HTTPError):
    """An HTTP error whose message is sent as is (tornado would %-format ``log_message``, which a file name or a
    user's value may break)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.message = message


class AstrocyteHandler(APIHandler):
    """Shared helpers: the workspace, the server root, JSON bodies, engine errors as HTTP errors."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if not isinstance(error, RequestFailed):
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": error.message, "reason": error.reason}))

    @property
    def workspace_path(self) -> Path:
        configured = self.settings.get("astrocyte_workspace")
        if configured:
            return Path(configured).expanduser()
        from astrocyte_lab.data.workspace import default_home

        return default_home()

    def workspace(self) -> Any:
        from astrocyte_lab.data.workspace import Workspace

        return Workspace(self.workspace_path)

    @property
    def root_dir(self) -> Path:
        return Path(self.settings.get("server_root_dir") or os.getcwd()).expanduser()

    @property
    def notebooks_dir(self) -> Path:
        return Path(self.settings.get("astrocyte_notebooks") or server_files.NOTEBOOKS)

    def body(self) -> dict[str, Any]:
        """The request body as a JSON object, read with the engine's bounded JSON reader: any bad body (not
        UTF-8, not JSON, non-finite numbers, too deep or too large, not an object) answers 400."""
        from astrocyte_lab.data.jsonfile import load_json
        from astrocyte_lab.errors import AstrocyteError

        try:
            data = load_json(self.request.body or b"{}", "request body")
        except AstrocyteError as exc:
            raise RequestFailed(400, f"{exc}") from None
        if not isinstance(data, dict):
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")
            raise RequestFailed(400, f"request body: expected a JSON object, got a JSON {kind}")
        return data

    def field(self, data: dict[str, Any], key: str, default: Any = None, required: bool = True) -> Any:
        value = data.get(key, default)
        if required and value is None:
            raise RequestFailed(400, f"request body: missing field {key!r}")
        if value is not None and not isinstance(value, type(default) if default is not None else str):
            raise RequestFailed(400, f"request body: field {key!r} has the wrong type")
        return value

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run engine code off the event loop; map its errors to HTTP status codes with their message."""
        try:
            return await IOLoop.current().run_in_executor(None, fn)
        except tornado.web.HTTPError:
            raise
        except Exception as exc:
            raise RequestFailed(server_files.status_for(exc), f"{exc}") from exc

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class StatusHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        from astrocyte_lab import __version__

        self.reply({"version": __version__, "workspace": str(self.workspace_path),
                    "tutorials": server_files.available_tutorials(self.notebooks_dir)})


def listing(infos: Iterable[Any], broken: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    """The readable items as dicts, and the unreadable ones as ``{"name", "reason"}``."""
    return [asdict(info) for info in infos], [{"name": item.name, "reason": item.reason} for item in broken]


class DatasetsHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        def read() -> tuple[list[dict], list[dict]]:
            ws = self.workspace()
            return listing(*ws.dataset_listing())  # one scan: each dataset's table is read once

        datasets, broken = await self.call(read)
        self.reply({"workspace": str(self.workspace_path), "datasets": datasets, "broken": broken})


class ModelsHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        def read() -> tuple[list[dict], list[dict]]:
            ws = self.workspace()
            return listing(*ws.model_listing())

        models, broken = await self.call(read)
        self.reply({"workspace": str(self.workspace_path), "models": models, "broken": broken})


class JobsHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        from astrocyte_lab.training.job_records import list_records

        records = await self.call(lambda: list_records(self.workspace_path))
        self.reply({"workspace": str(self.workspace_path), "jobs": records})


class CancelJobHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        from astrocyte_lab.training.job_records import request_cancel

        job_id = self.field(self.body(), "id")
        record = await self.call(lambda: request_cancel(self.workspace_path, job_id))
        self.reply({"job": record}, 202)


class ExportModelHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        name = self.field(self.body(), "model")
        path = await self.call(lambda: server_files.export_model(self.workspace(), name))
        self.reply({"model": name, "path": str(path), "file": path.name}, 201)


class TutorialsHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply({"tutorials": server_files.available_tutorials(self.notebooks_dir)})


class CopyTutorialHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        tutorial = self.field(data, "tutorial")
        folder = self.field(data, "folder", "", required=False)
        reuse = self.field(data, "reuse", False, required=False)
        path = await self.call(lambda: server_files.copy_tutorial(self.notebooks_dir, tutorial, self.root_dir,
                                                                  folder, reuse))
        self.reply({"tutorial": tutorial, "path": path}, 201)


class StarterNotebookHandler(AstrocyteHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        kind = self.field(data, "kind")
        name = self.field(data, "name")
        folder = self.field(data, "folder", "", required=False)
        path = await self.call(lambda: server_files.starter_notebook(self.workspace(), kind, name, self.root_dir,
                                                                     folder))
        self.reply({"kind": kind, "name": name, "path": path}, 201)


ROUTES: list[tuple[str, type[AstrocyteHandler]]] = [
    ("status", StatusHandler),
    ("datasets", DatasetsHandler),
    ("models", ModelsHandler),
    ("models/export", ExportModelHandler),
    ("jobs", JobsHandler),
    ("jobs/cancel", CancelJobHandler),
    ("tutorials", TutorialsHandler),
    ("tutorials/copy", CopyTutorialHandler),
    ("notebooks", StarterNotebookHandler),
]


def handlers(base_url: str) -> list[tuple[str, type[AstrocyteHandler]]]:
    return [(url_path_join(base_url, API_PREFIX, route), handler) for route, handler in ROUTES]
