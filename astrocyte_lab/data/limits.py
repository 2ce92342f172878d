"""Safety limits applied before anything is allocated or written: one table, each raisable by an environment
variable, so a crafted or careless file is refused with a clear error instead of exhausting memory or disk.

A limit is read when it is checked (not at import), so ``ASTROCYTE_MAX_IMAGE_PIXELS=... python ...`` and
``monkeypatch.setenv`` both take effect. The runtime keeps its own copy of the image limit
(:mod:`astrocyte_lab.runtime.limits`) because it must import without the rest of astrocyte-lab; both read the
same variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from astrocyte_lab.errors import LimitError

GiB = 1 << 30
MiB = 1 << 20

#: name -> (default, what it bounds). The environment variable is ``ASTROCYTE_MAX_<NAME upper-cased>``.
DEFAULTS: dict[str, tuple[int, str]] = {
    "image_pixels": (1 << 28, "pixels of one image (width x height), 16384 x 16384"),
    "archive_bytes": (256 * GiB, "uncompressed bytes of all members of one archive"),
    "archive_member_bytes": (16 * GiB, "uncompressed bytes of one archive member"),
    "archive_members": (1_000_000, "members in one archive"),
    "archive_ratio": (200, "uncompressed size / archive file size, checked above archive_ratio_floor_bytes"),
    "archive_ratio_floor_bytes": (256 * MiB, "uncompressed size under which the ratio is not checked"),
    "json_bytes": (1 * GiB, "bytes of one JSON document (annotations, records, manifests)"),
    "json_depth": (64, "nesting depth of one JSON document"),
    "text_field_chars": (1 << 20, "characters in one field of a text annotation file"),
    "table_bytes": (4 * GiB, "bytes of one dataset version's table (all its columns) in memory"),
    "annotation_file_bytes": (1 * GiB, "bytes of one text or XML annotation file"),
    "weights_bytes": (4 * GiB, "bytes of one trained model's weights file (safetensors)"),
}


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
        raise LimitError(f"{env_name(name)}={raw!r}: expected a positive integer") from None
    if value <= 0:
        raise LimitError(f"{env_name(name)}={raw!r}: expected a positive integer")
    return value


def check_limit(name: str, value: int, source: str | Path, what: str | None = None) -> None:
    """Raise :class:`LimitError` naming ``source`` when ``value`` is above the limit ``name``."""
    bound = limit(name)
    if value > bound:
        raise LimitError(f"{source}: {what or DEFAULTS[name][1]} is {value:,}, above the limit of {bound:,}; "
                         f"set {env_name(name)} to raise it")


def check_image_pixels(width: int, height: int, source: str | Path) -> None:
    """Refuse an image whose declared size is absurd or above the pixel limit, before decoding it."""
    if width <= 0 or height <= 0:
        raise LimitError(f"{source}: image size {width} x {height} is not positive")
    check_limit("image_pixels", int(width) * int(height), source, f"image size {width} x {height} (pixels)")
