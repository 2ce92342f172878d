"""How panels report: a button's action runs guarded, and an engine error becomes a red message line."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets

from astrocyte_lab.errors import AstrocyteError

EXPECTED_ERRORS = (AstrocyteError, OSError, ValueError)


def error_html(text: str) -> str:
    return f"<span style='color:#c62828'>{html.escape(text)}</span>"


def broken_html(items: Sequence, what: str) -> str:
    """The unreadable ``what`` (datasets, models) of a workspace, each with why, in red; empty when none."""
    if not items:
        return ""
    lines = "".join(f"<li><b>{html.escape(item.name)}</b>: {html.escape(item.reason)}</li>" for item in items)
    return (f"<div class='astro-broken' style='color:#c62828;font-size:12px'>Unreadable {html.escape(what)} "
            f"(left out):<ul style='margin:2px 0'>{lines}</ul></div>")


def run_guarded(action: Callable[[], object], message: widgets.HTML) -> None:
    """Run ``action``; bad input (engine errors, missing files, bad values) is shown in ``message``, not raised."""
    try:
        action()
    except EXPECTED_ERRORS as exc:
        message.value = error_html(str(exc))


Choice = tuple[str, str, Callable[[], object]]  # button label, button style ("" for plain), what it does


def ask(box: widgets.Box, question: str, choices: Sequence[Choice]) -> None:
    """Show ``question`` (HTML) in ``box`` with one button per choice; a click clears the box, then acts."""
    def chosen(action: Callable[[], object]) -> None:
        box.children = []
        action()

    buttons = []
    for label, style, action in choices:
        button = widgets.Button(description=label, button_style=style)
        button.on_click(lambda _, act=action: chosen(act))
        buttons.append(button)
    box.children = [widgets.HTML(question), *buttons]
