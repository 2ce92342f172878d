"""Safe reading of the tar files users hand us (dataset exports, workspace backups, model files, VOC exports).

``tarfile``'s own extraction cannot be trusted with crafted input: ``filter="data"`` is bypassed on some
Python releases by a chain of symbolic links whose resolved path exceeds ``PATH_MAX`` (the CVE-2025-4517
class). Our own archives hold only folders and regular files, so every other member type is refused, and
the whole member list is checked (types, names, counts, sizes, ratio, free disk) *before* anything is
written. Header parsing itself is bounded: ``tarfile`` reads a GNU long-name or pax header whole and nests one
call per header, so oversized or chained extension headers are refused before it reads them. Extraction then
writes member by member, walking folders by descriptor (``O_NOFOLLOW``, ``dir_fd``) and creating files with
``O_EXCL | O_NOFOLLOW``, a bounded byte count each; ``extractall`` is never used.
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrocyte_lab.data.jsonfile import load_json
from astrocyte_lab.data.limits import check_limit, limit
from astrocyte_lab.errors import AstrocyteError, LimitError, UnsafeArchiveError

#: the most bytes a manifest (or ``model.json``) inside an archive may have
MANIFEST_BYTES = 64 << 20
#: the most bytes one extension header (GNU long name or link, pax record set) may declare: ``tarfile`` reads it
#: whole into memory, and a real one holds a path of at most a few KiB
EXTENSION_HEADER_BYTES = 1 << 20
#: the most extension headers in a row before their member: ``tarfile`` nests one call per header
EXTENSION_HEADERS_IN_A_ROW = 8
#: the most bytes all extension headers of one archive may declare together (member names stay in memory)
EXTENSION_TOTAL_BYTES = 64 << 20
_EXTENSION_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                    tarfile.SOLARIS_XHDTYPE)
_COPY_CHUNK = 1 << 20
#: what a damaged or non-tar file raises while its headers or data are read
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError, RecursionError)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


class MissingMemberError(AstrocyteError):
    """The archive lacks a member the reader needs (its manifest, ``model.json``)."""


@dataclass(frozen=True)
class Member:
    """One checked member: its tar header and its normalised relative path (``a/b/c``)."""

    info: tarfile.TarInfo
    path: str


class _HeaderRefused(Exception):
    """Raised from inside ``tarfile``'s header parsing, which does not know the file name the user gave."""

    def __init__(self, error: type[AstrocyteError], reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason

    def for_file(self, file: str | Path) -> AstrocyteError:
        return self.error(f"{file}: {self.reason}")


class _BoundedTarInfo(tarfile.TarInfo):
    """Header parsing that refuses, before ``tarfile`` reads them, oversized or chained extension headers
    (GNU long name/link, pax) and sparse members (whose extra headers ``tarfile`` also reads without bound)."""

    def _proc_member(self, tar: _BoundedTarFile) -> tarfile.TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            _refuse_sparse(self)
        if self.type not in _EXTENSION_TYPES:
            return super()._proc_member(tar)
        _count_extension(tar, self)
        tar.extensions_in_a_row += 1  # the header's own member follows through a nested call: count the nesting
        try:
            return super()._proc_member(tar)
        finally:
            tar.extensions_in_a_row -= 1

    def _proc_gnusparse_00(self, member: tarfile.TarInfo, *args: Any) -> None:
        _refuse_sparse(member)

    def _proc_gnusparse_01(self, member: tarfile.TarInfo, *args: Any) -> None:
        _refuse_sparse(member)

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, *args: Any) -> None:
        _refuse_sparse(member)


class _BoundedTarFile(tarfile.TarFile):
    """A reader whose headers are parsed by :class:`_BoundedTarInfo`, with the per-archive counts it keeps."""

    tarinfo = _BoundedTarInfo
    extensions_in_a_row = 0
    extension_bytes = 0


def _count_extension(tar: _BoundedTarFile, header: tarfile.TarInfo) -> None:
    where = f"extension header at byte {header.offset:,}"
    if header.size > EXTENSION_HEADER_BYTES:
        raise _HeaderRefused(LimitError, f"{where} declares {header.size:,} bytes, more than the "
                                         f"{EXTENSION_HEADER_BYTES:,} allowed (a header bomb?)")
    if tar.extensions_in_a_row >= EXTENSION_HEADERS_IN_A_ROW:
        raise _HeaderRefused(LimitError, f"{where}: more than {EXTENSION_HEADERS_IN_A_ROW} extension headers "
                                         "in a row (a header chain?)")
    tar.extension_bytes += header.size
    if tar.extension_bytes > EXTENSION_TOTAL_BYTES:
        raise _HeaderRefused(LimitError, f"{where}: extension headers declare more than "
                                         f"{EXTENSION_TOTAL_BYTES:,} bytes together")


def _refuse_sparse(info: tarfile.TarInfo) -> None:
    raise _HeaderRefused(UnsafeArchiveError, f"member {info.name!r} is a sparse file; only folders and regular "
                                             "files are accepted")


@contextlib.contextmanager
def open_tar(file: str | Path) -> Iterator[tarfile.TarFile]:
    """Open a plain or compressed tar for reading; a file that is not one raises a project error naming it."""
    try:
        tar = _BoundedTarFile.open(file, "r:*")
    except _HeaderRefused as exc:
        raise exc.for_file(file) from None
    except _READ_ERRORS as exc:
        lines = str(exc).splitlines()  # "r:*" lists each method's failure: the plain tar one says most
        reason = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("- method tar:")), str(exc))
        raise AstrocyteError(f"{file}: not a readable tar archive ({reason})") from None
    with tar:
        yield tar


def check_members(tar: tarfile.TarFile, file: str | Path) -> list[Member]:
    """Read every header of ``tar`` and refuse the archive if any member is unsafe or the sizes exceed the limits.

    Headers are read one by one and the counts checked as they come, so a header bomb stops early.
    """
    archive_size = _archive_size(file)
    members: list[Member] = []
    seen: set[str] = set()
    total = 0
    while True:
        info = _next_header(tar, file)
        if info is None:
            return members
        check_limit("archive_members", len(members) + 1, file, "number of archive members")
        path = _checked_path(info, file)
        if path in seen:
            raise UnsafeArchiveError(f"{file}: member {info.name!r} appears twice")
        seen.add(path)
        if info.isreg():
            check_limit("archive_member_bytes", info.size, file, f"size of member {info.name!r} (bytes)")
            total += info.size
            _check_total(total, archive_size, file)
        if path:
            members.append(Member(info, path))


def read_member(tar: tarfile.TarFile, name: str, max_bytes: int = MANIFEST_BYTES,
                source: str | Path | None = None) -> bytes:
    """The bytes of the regular member ``name``, refused when larger than ``max_bytes``.

    Call :func:`check_members` first: it reads the header list under the limits, which this then reuses.
    """
    source = source or tar.name or "archive"
    try:
        info = tar.getmember(name)
    except KeyError:
        raise MissingMemberError(f"{source}: no {name} inside") from None
    except _HeaderRefused as exc:
        raise exc.for_file(source) from None
    except _READ_ERRORS as exc:
        raise AstrocyteError(f"{source}: unreadable archive ({exc})") from None
    if not info.isreg():
        raise UnsafeArchiveError(f"{source}: member {name!r} is not a regular file")
    if info.size > max_bytes:
        raise LimitError(f"{source}: member {name!r} has {info.size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        stream = tar.extractfile(info)
        data = stream.read(info.size) if stream is not None else b""  # read(n) allocates n bytes up front
    except _READ_ERRORS as exc:
        raise AstrocyteError(f"{source}: cannot read member {name!r} ({exc})") from None
    if len(data) != info.size:
        raise AstrocyteError(f"{source}: member {name!r} is truncated")
    return data


def read_manifest(tar: tarfile.TarFile, name: str, source: str | Path) -> dict[str, Any]:
    """The JSON object stored as member ``name`` (bounded, strict JSON); anything else is a project error."""
    manifest = load_json(read_member(tar, name, min(MANIFEST_BYTES, limit("json_bytes")), source),
                         f"{source}:{name}")
    if not isinstance(manifest, dict):
        raise AstrocyteError(f"{source}:{name}: expected a JSON object, found {type(manifest).__name__}")
    return manifest


def format_version(record: dict[str, Any], source: str | Path) -> int:
    """The record's integer ``format_version`` (0 when absent); a non-integer one is a project error."""
    value = record.get("format_version", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AstrocyteError(f"{source}: format_version must be a non-negative integer, found {value!r}")
    return value


def safe_extract(file: str | Path, target: str | Path) -> list[str]:
    """Unpack the tar ``file`` into the new folder ``target`` (which must not exist); return the member paths.

    The member list is checked in full before the folder is created; on any failure the folder is removed.
    """
    file, target = Path(file), Path(target)
    with open_tar(file) as tar:
        members = check_members(tar, file)
        _check_disk(sum(m.info.size for m in members if m.info.isreg()), target, file)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.mkdir()
        except FileExistsError:
            raise AstrocyteError(f"{target} already exists: cannot unpack {file} there") from None
        try:
            root = os.open(target, _DIR_FLAGS)
            try:
                for member in members:
                    _extract_one(tar, member, root, file)
            finally:
                os.close(root)
        except BaseException as exc:
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(exc, OSError):
                raise AstrocyteError(f"{file}: cannot unpack into {target} ({exc.strerror or exc})") from None
            raise
    return [m.path for m in members]


# -- checks ------------------------------------------------------------------------------------------------------
def _archive_size(file: str | Path) -> int:
    try:
        return max(os.stat(file).st_size, 1)
    except OSError as exc:
        raise AstrocyteError(f"{file}: cannot read ({exc.strerror or exc})") from None


def _next_header(tar: tarfile.TarFile, file: str | Path) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except _HeaderRefused as exc:
        raise exc.for_file(file) from None
    except _READ_ERRORS as exc:
        raise AstrocyteError(f"{file}: damaged tar archive ({exc})") from None


def _checked_path(info: tarfile.TarInfo, file: str | Path) -> str:
    """The member's normalised relative path ('' for the archive root folder); refuse what could escape."""
    name = info.name
    if not (info.isdir() or info.isreg()) or info.issparse():
        raise UnsafeArchiveError(f"{file}: member {name!r} is a {_kind(info)}; only folders and regular files "
                                 "are accepted")
    if not name or "\x00" in name or "\\" in name or ":" in name or name.startswith("/"):
        raise UnsafeArchiveError(f"{file}: member {name!r} has an absolute or invalid name")  # ':' as in C:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{file}: member {name!r} points outside the archive ('..')")
    if not parts and not info.isdir():
        raise UnsafeArchiveError(f"{file}: member {name!r} has no file name")
    return "/".join(parts)


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "FIFO"
    if info.issparse():
        return "sparse file"
    return f"member of type {info.type!r}"


def _check_total(total: int, archive_size: int, file: str | Path) -> None:
    check_limit("archive_bytes", total, file, "uncompressed size of the archive (bytes)")
    if total > limit("archive_ratio_floor_bytes") and total > limit("archive_ratio") * archive_size:
        raise LimitError(f"{file}: unpacks to {total:,} bytes, more than {limit('archive_ratio')} times its "
                         f"{archive_size:,} bytes (a decompression bomb?); set ASTROCYTE_MAX_ARCHIVE_RATIO to "
                         "raise the limit")


def _check_disk(total: int, target: Path, file: Path) -> None:
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # free space unknown: writing will report a full disk itself
    if total > free:
        raise LimitError(f"{file}: unpacks to {total:,} bytes but only {free:,} are free at {existing}")


# -- extraction ------------------------------------------------------------------------------------------------
def _extract_one(tar: tarfile.TarFile, member: Member, root: int, file: Path) -> None:
    parts = member.path.split("/")
    folder = _open_folders(root, parts if member.info.isdir() else parts[:-1], member, file)
    try:
        if member.info.isreg():
            _write_file(tar, member, folder, parts[-1], file)
    finally:
        os.close(folder)


def _open_folders(root: int, folders: list[str], member: Member, file: Path) -> int:
    """A descriptor of ``folders`` below the folder ``root``, each level created if needed and opened relative to
    the one above without following links, so a link put there (by a member or by another process) never leads
    out."""
    fd = os.dup(root)
    try:
        for part in folders:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeArchiveError(f"{file}: member {member.info.name!r}: {part!r} is not a folder") \
                        from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_file(tar: tarfile.TarFile, member: Member, folder: int, name: str, file: Path) -> None:
    """Copy exactly the member's declared size into a new file of ``folder`` (never through an existing file or
    link)."""
    try:
        fd = os.open(name, _FILE_FLAGS, 0o644, dir_fd=folder)
    except FileExistsError:
        raise UnsafeArchiveError(f"{file}: member {member.info.name!r} would overwrite {member.path}") from None
    with os.fdopen(fd, "wb") as out:
        try:
            stream = tar.extractfile(member.info)
        except _READ_ERRORS as exc:
            raise AstrocyteError(f"{file}: cannot read member {member.info.name!r} ({exc})") from None
        _copy_bounded(stream, out, member.info.size, f"{file}: member {member.info.name!r}")


def _copy_bounded(stream: Any, out: Any, size: int, what: str) -> None:
    """Copy ``size`` bytes in chunks (``tarfile`` stops a member's stream at its declared size)."""
    left = size
    try:
        while left > 0:
            chunk = stream.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise AstrocyteError(f"{what} is truncated ({size - left:,} of {size:,} bytes)")
            out.write(chunk)
            left -= len(chunk)
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise AstrocyteError(f"{what}: cannot unpack ({exc.strerror or exc})") from None
        raise AstrocyteError(f"{what}: damaged data ({exc})") from None
