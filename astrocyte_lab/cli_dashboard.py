"""``astrocyte-lab dashboard``: the App as a standalone Voila page on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from astrocyte_lab.cli_common import WorkspaceOption, fail, workspace_of
from astrocyte_lab.data.workspace import default_home
from astrocyte_lab.errors import AstrocyteError


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        module: Annotated[str, typer.Option(help="The module whose App is shown.")] = "classification",
        port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8866,
        read_only: Annotated[bool, typer.Option(
            "--read-only", help="Hide editing actions and write nothing to the workspace (demos).")] = False,
        workspace: WorkspaceOption = None,
    ) -> None:
        """Serve the App with Voila (offline, local only) until interrupted."""
        from astrocyte_lab.dashboard import serve
        from astrocyte_lab.widgets.read_only import ReadOnlyWorkspace

        try:
            ws = ReadOnlyWorkspace(workspace or default_home()) if read_only else workspace_of(workspace)
            process = serve(ws.path, module, port, read_only)
        except AstrocyteError as exc:
            raise fail(exc) from exc
        typer.echo(f"dashboard on http://127.0.0.1:{port}/ (Ctrl+C stops it)")
        try:
            process.wait()
        except KeyboardInterrupt:
            process.terminate()
