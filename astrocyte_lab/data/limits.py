"""Safety limits applied before anything is allocated or written, raising the engine's :class:`LimitError`.

The table itself (name -> default and what it bounds, each raisable by ``ASTROCYTE_MAX_<NAME>``) is
:data:`astrocyte_lab.runtime.limits.DEFAULTS`, shared with the torch-free runtime so one variable means the same
everywhere; a crafted or careless file is refused with a clear error instead of exhausting memory or disk.
"""

from __future__ import annotations

from pathlib import Path

from astrocyte_lab.errors import LimitError
from astrocyte_lab.runtime import limits as _shared
from astrocyte_lab.runtime.errors import LimitSettingError

GiB = _shared.GiB
MiB = _shared.MiB
DEFAULTS = _shared.DEFAULTS
env_name = _shared.env_name


def limit(name: str) -> int:
    """The limit in force: the environment variable if set to a positive integer, else the default."""
    try:
        return _shared.limit(name)
    except LimitSettingError as exc:
        raise LimitError(str(exc)) from None


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
