"""Safety limits of the torch-free runtime, checked before anything is allocated: package sizes, image pixels,
network input sizes, and a strict, bounded JSON reader for ``metadata.json``.

This is the one table of astrocyte-lab's limits: the runtime must import without the rest of the package, so
the table lives here and :mod:`astrocyte_lab.data.limits` reads it, raising the engine's error type. Each limit
is raised by ``ASTROCYTE_MAX_<NAME>``, read at each check, so ``monkeypatch.setenv`` and
``ASTROCYTE_MAX_IMAGE_PIXELS=... python ...`` take effect. ``package_bytes`` and ``input_side`` concern the
runtime (a package is held in memory whole; the network input is what each image or tile allocates); the archive,
JSON, text, table and weights limits concern the workspace's readers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from astrocyte_lab.runtime.errors import LimitSettingError

GiB = 1 << 30
MiB = 1 << 20

#: name -> (default, what it bounds). The environment variable is ``ASTROCYTE_MAX_<NAME upper-cased>``.
DEFAULTS: dict[str, tuple[int, str]] = {
    "image_pixels": (1 << 28, "pixels of one image (width x height), 16384 x 16384"),
    "input_side": (8192, "width or height of a network input (and so of a tile) in pixels"),
    "package_bytes": (4 * GiB, "uncompressed bytes of all members of one .astromodel package"),
    "archive_members": (1_000_000, "members in one archive"),
    "archive_ratio": (200, "uncompressed size / archive file size, checked above archive_ratio_floor_bytes"),
    "archive_ratio_floor_bytes": (256 * MiB, "uncompressed size under which the ratio is not checked"),
    "json_depth": (64, "nesting depth of one JSON document"),
    "archive_bytes": (256 * GiB, "uncompressed bytes of all members of one archive"),
    "archive_member_bytes": (16 * GiB, "uncompressed bytes of one archive member"),
    "json_bytes": (1 * GiB, "bytes of one JSON document (annotations, records, manifests)"),
    "text_field_chars": (1 << 20, "characters in one field of a text annotation file"),
    "table_bytes": (4 * GiB, "bytes of one dataset version's table (all its columns) in memory"),
    "annotation_file_bytes": (1 * GiB, "bytes of one text or XML annotation file"),
    "weights_bytes": (4 * GiB, "bytes of one trained model's weights file (safetensors)"),
}
METADATA_BYTES = 16 * MiB  # metadata.json is a few kilobytes; this bound is fixed


def env_name(name: str) -> str:
    return f"ASTROCYTE_MAX_{name.upper()}"


def limit(name: str) -> int:
    """The limit in force: the environment variable if set to a positive integer, else the default."""
    default, _ = DEFAULTS[name]
    raw = os.environ.get(env_name(name), "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise LimitSettingError(f"{env_name(name)}={raw!r}: expected a positive integer")
    return value


def above(name: str, value: int, what: str | None = None) -> str | None:
    """The refusal text when ``value`` is above the limit ``name`` (naming the variable that raises it), else None.

    Callers prefix the file and raise their own error type (:class:`PackageError`, :class:`PreprocessError`).
    """
    bound = limit(name)
    if value <= bound:
        return None
    return f"{what or DEFAULTS[name][1]} is {value:,}, above the limit of {bound:,}; set {env_name(name)} to raise it"


def image_pixels_problem(width: int, height: int) -> str | None:
    """Why an image of ``width x height`` is refused (not positive, above the pixel limit), or None."""
    if width <= 0 or height <= 0:
        return f"image size {width} x {height} is not positive"
    return above("image_pixels", int(width) * int(height), f"image size {width} x {height} (pixels)")


# ------------------------------------------------------------------------------------------------ JSON

def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` outside strings, counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def strict_json(data: bytes) -> Any:
    """Parse UTF-8 JSON bytes strictly: size and depth bounded, ``NaN``/``Infinity`` refused.

    Raises :class:`ValueError` with a short reason (with line and column where there is one); the caller adds
    the file's name and its own error type.
    """
    if len(data) > METADATA_BYTES:
        raise ValueError(f"{len(data):,} bytes, above the limit of {METADATA_BYTES:,}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    bound = limit("json_depth")
    if text.count("[") + text.count("{") > bound and json_depth(text) > bound:
        raise ValueError(f"nested {json_depth(text)} levels deep, above the limit of {bound}; "
                         f"set {env_name('json_depth')} to raise it")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
