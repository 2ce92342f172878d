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


def _configure_voila(serverapp: Any) -> None:
    """Let ``/voila/render`` (the "Open Astrocyte dashboard" command) use the offline ``astrocyte`` template and
    deny the JupyterLab-only frontend plugin, unless the user configured Voila otherwise. Runs before Voila's own
    server extension loads (extensions load in name order) and never stops the server."""
    import os

    try:
        import voila  # noqa: F401
    except ImportError:
        return
    try:
        from astrocyte_lab.dashboard import TEMPLATE, VOILA_DENYLIST, prepare_template
        from astrocyte_lab.data.workspace import default_home

        voila_config = serverapp.config.VoilaConfiguration
        if "template" not in voila_config:
            root = prepare_template(default_home() / ".dashboard")
            os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
            voila_config.template = TEMPLATE
        if "extension_denylist" not in voila_config:
            voila_config.extension_denylist = list(VOILA_DENYLIST)
    except Exception as exc:  # noqa: BLE001 - the dashboard view is optional; the server must start
        serverapp.log.warning("astrocyte-lab: Voila dashboard template not set up: %s", exc)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from astrocyte_lab.server.handlers import handlers

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", handlers(base_url))
    _configure_voila(serverapp)
    serverapp.log.info("astrocyte-lab server extension loaded: %s%s", base_url, API_PREFIX)


# jupyter_server also accepts the older name
load_jupyter_server_extension = _load_jupyter_server_extension
