"""Pieces every ``astrocyte-lab`` command group shares: the workspace option and error reporting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from astrocyte_lab.data.workspace import BrokenItem, Workspace, default_home

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="ASTROCYTE_HOME",
                 help="Workspace folder (default: $ASTROCYTE_HOME or ~/astrocyte-workspace)."),
]


def workspace_of(path: Path | None) -> Workspace:
    return Workspace(path or default_home())


def fail(exc: Exception) -> typer.Exit:
    """Print a user error in red on stderr; the command exits with status 1."""
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def report_broken(broken: Sequence[BrokenItem]) -> None:
    """Datasets or models that cannot be read, one line each on stderr (the listing goes on without them)."""
    for item in broken:
        typer.secho(f"unreadable {item.kind} {item.name}: {item.reason}", err=True, fg=typer.colors.YELLOW)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x480"`` -> ``(640, 480)``; None stays None."""
    if not text:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from exc
    return width, height
