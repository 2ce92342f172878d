"""How panels report: a button's action runs guarded, and an engine error becomes a red message line."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from astrocyte_lab.errors import AstrocyteError

EXPECTED_ERRORS = (AstrocyteError, OSError, ValueError)


def error_html(text: str) -> str:
    return f"<span style='color:#c62828'>{html.escape(text)}</span>"


def run_guarded(action: Callable[[], object], message: widgets.HTML) -> None:
    """Run ``action``; bad input (engine errors, missing files, bad values) is shown in ``message``, not raised."""
    try:
        action()
    except EXPECTED_ERRORS as exc:
        message.value = error_html(str(exc))
