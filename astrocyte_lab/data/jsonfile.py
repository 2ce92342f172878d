"""Strict, bounded JSON reading for every file a user hands us: errors name the file, never a raw traceback.

Python's ``json`` accepts ``NaN``/``Infinity``, recurses until ``RecursionError`` on deep nesting and reads
any size; here a document is refused when it is larger than ``json_bytes``, nested deeper than
``json_depth`` or not UTF-8, and non-finite numbers are refused (no format of ours writes them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astrocyte_lab.data.limits import check_limit, limit
from astrocyte_lab.errors import AstrocyteError, LimitError
from astrocyte_lab.runtime.limits import json_depth


class JsonFileError(AstrocyteError, ValueError):
    """A JSON document that cannot be read: not UTF-8, not JSON, non-finite numbers, too deep or too large."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def load_json(data: bytes | str, source: str | Path) -> Any:
    """Parse ``data`` (read from ``source``, named in errors) with the limits above."""
    check_limit("json_bytes", len(data), source, "JSON document size (bytes)")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JsonFileError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    deepest = json_depth(text) if text.count("[") + text.count("{") > limit("json_depth") else 0
    if deepest > limit("json_depth"):
        raise LimitError(f"{source}: JSON nested {deepest} levels deep, above the limit of {limit('json_depth')}; "
                         f"set ASTROCYTE_MAX_JSON_DEPTH to raise it")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonFileError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise JsonFileError(f"{source}: not valid JSON ({exc})") from None


def read_json(path: str | Path) -> Any:
    """Read and parse the JSON file ``path`` (size checked before reading)."""
    path = Path(path)
    try:
        check_limit("json_bytes", path.stat().st_size, path, "JSON file size (bytes)")
        data = path.read_bytes()
    except OSError as exc:
        raise JsonFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return load_json(data, path)
