"""A form for any pydantic config: one input per field, values validated by the config itself.

The Training and Inference panels build their hyper-parameter forms from the module's config class, so a new
field appears in the UI without widget code. Field descriptions become tooltips; validation errors are
shown under the form with the field named.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import ipywidgets as widgets
from pydantic import BaseModel, ValidationError


class ConfigForm:
    """Inputs for the fields of ``config_class`` (``fields`` picks and orders them; others keep defaults)."""

    def __init__(self, config_class: type[BaseModel], fields: list[str] | None = None,
                 advanced: list[str] | None = None, values: dict[str, Any] | None = None,
                 choices: dict[str, list[Any]] | None = None) -> None:
        self.config_class = config_class
        defaults = config_class().model_dump()
        if values:
            defaults.update(values)
        info = config_class.model_fields
        names = fields if fields is not None else [n for n in info if _simple(info[n].annotation)]
        self.advanced_names = [n for n in (advanced or []) if n in info and n not in names]
        self.inputs: dict[str, widgets.Widget] = {}
        for name in [*names, *self.advanced_names]:
            self.inputs[name] = _input(name, info[name].annotation, defaults.get(name), info[name].description,
                                       (choices or {}).get(name))
        self.error = widgets.HTML("")
        basic = widgets.VBox([self.inputs[n] for n in names])
        children: list[widgets.Widget] = [basic]
        if self.advanced_names:
            box = widgets.Accordion([widgets.VBox([self.inputs[n] for n in self.advanced_names])],
                                    titles=("Advanced",), selected_index=None)
            children.append(box)
        self.widget = widgets.VBox([*children, self.error])

    def values(self) -> dict[str, Any]:
        """The raw values of the inputs, converted to the field types where the input cannot."""
        out: dict[str, Any] = {}
        for name, box in self.inputs.items():
            value = box.value
            if isinstance(box, widgets.Text) and getattr(box, "_astro_size", False):
                value = _parse_size(value)
            elif getattr(box, "_astro_optional", None) is not None:
                value = _parse_optional(value, box._astro_optional)  # noqa: SLF001
            out[name] = value
        return out

    def config(self, **extra: Any) -> BaseModel | None:
        """A validated config from the inputs (plus ``extra``), or None with the errors shown under the form."""
        try:
            config = self.config_class(**{**self.values(), **extra})
        except (ValidationError, ValueError) as exc:
            self.error.value = f"<span style='color:#c62828'>{_describe(exc)}</span>"
            return None
        self.error.value = ""
        return config

    def set_values(self, **values: Any) -> None:
        for name, value in values.items():
            if name in self.inputs:
                box = self.inputs[name]
                if getattr(box, "_astro_size", False):
                    value = _format_size(value)
                elif getattr(box, "_astro_optional", None) is not None:
                    value = "" if value is None else str(value)
                box.value = value


def _simple(annotation: Any) -> bool:
    """Fields the generic form can show (numbers, flags, choices, short text, sizes)."""
    kind = _unwrap(annotation)
    return kind in (int, float, bool, str) or get_origin(kind) is Literal or _is_size(kind)


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_size(kind: Any) -> bool:
    return get_origin(kind) is tuple and get_args(kind) == (int, int)


def _input(name: str, annotation: Any, value: Any, help_text: str | None,
           choices: list[Any] | None) -> widgets.Widget:
    kind = _unwrap(annotation)
    label = name.replace("_", " ")
    style = {"description_width": "160px"}
    layout = widgets.Layout(width="360px")
    common = {"description": label, "style": style, "layout": layout, "tooltip": help_text or label}
    if choices is not None:
        box: widgets.Widget = widgets.Dropdown(options=choices, value=value if value in choices else choices[0],
                                               **common)
    elif get_origin(kind) is Literal:
        box = widgets.Dropdown(options=list(get_args(kind)), value=value, **common)
    elif kind is bool:
        box = widgets.Checkbox(value=bool(value), indent=False, description=label, tooltip=help_text or label)
    elif kind in (int, float) and kind is not annotation:  # optional number: empty means "not set"
        box = widgets.Text(value="" if value is None else str(value), placeholder="empty = not set", **common)
        box._astro_optional = kind  # noqa: SLF001
    elif kind is int:
        box = widgets.IntText(value=0 if value is None else int(value), **common)
    elif kind is float:
        box = widgets.FloatText(value=0.0 if value is None else float(value), **common)
    elif _is_size(kind):
        box = widgets.Text(value=_format_size(value), placeholder="width x height, empty = dataset size", **common)
        box._astro_size = True  # noqa: SLF001 - marks inputs parsed back to (w, h)
    else:
        box = widgets.Text(value="" if value is None else str(value), **common)
    box._astro_field = name  # noqa: SLF001
    return box


def _format_size(value: Any) -> str:
    return "" if value is None else f"{value[0]}x{value[1]}"


def _parse_optional(text: str, kind: type) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"expected a {kind.__name__} or nothing, got {text!r}") from None


def _parse_size(text: str) -> tuple[int, int] | None:
    text = text.strip().lower().replace(" ", "")
    if not text:
        return None
    parts = text.replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"a size is written WIDTHxHEIGHT (e.g. 224x224), got {text!r}")
    return int(parts[0]), int(parts[1])


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
    return str(exc)
