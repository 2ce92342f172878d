"""The jupyter_server extension behind the JupyterLab sidebar and launcher: REST handlers under ``/astrocyte/api``.

Enabled with ``jupyter server extension enable --sys-prefix astrocyte_lab`` (``make setup`` does it). The
workspace is ``$ASTROCYTE_HOME`` (or ``~/astrocyte-workspace``); ``--ServerApp.tornado_settings`` can name
another with ``astrocyte_workspace`` (and the tutorial folder with ``astrocyte_notebooks``).
"""

from __future__ import annotations

from typing import Any

API_PREFIX = "astrocyte/api"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "astrocyte_lab.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from astrocyte_lab.server.handlers import handlers

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", handlers(base_url))
    serverapp.log.info("astrocyte-lab server extension loaded: %s%s", base_url, API_PREFIX)


# jupyter_server also accepts the older name
load_jupyter_server_extension = _load_jupyter_server_extension
