"""Single-file dataset export/import (``.astrods``) and whole-workspace backup/restore (``.tar``)."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: restores are journalled, only the cross-process lock is skipped
    fcntl = None  # type: ignore[assignment]

from astrocyte_lab.data.jsonfile import read_json
from astrocyte_lab.data.safe_archive import (
    MissingMemberError,
    check_members,
    format_version,
    open_tar,
    read_manifest,
    safe_extract,
)
from astrocyte_lab.data.store import FORMAT_VERSION, DatasetStore, _atomic_write_text, batches_of
from astrocyte_lab.errors import AstrocyteError, FormatVersionError, LimitError

DATASET_MANIFEST = "astrocyte-dataset.json"
BACKUP_MANIFEST = "astrocyte-backup.json"
#: how long opening a workspace waits for a restore swap under way in another process (two renames)
RECOVERY_WAIT_S = 30.0
_LOCK_POLL_S = 0.05


def export_dataset(store: DatasetStore, file: Path) -> Path:
    """Write the saved version of a dataset (table plus the batches it uses) into one tar file."""
    version = store.current_version()
    table = store.load_table(version)
    manifest = {"format_version": FORMAT_VERSION, "name": store.root.name, "module": table.attrs["module"],
                "version": version, "images": int(table.sizes.get("image", 0))}
    file = Path(file)
    tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with tarfile.open(tmp, "w") as tar:
            _add_bytes(tar, DATASET_MANIFEST, json.dumps(manifest, indent=1).encode())
            _add_bytes(tar, "HEAD", f"{version}\n".encode())
            tar.add(store.root / "versions" / f"{version}.zarr", f"versions/{version}.zarr")
            for kind, batch in sorted(batches_of(table)):
                tar.add(store.batch_path(kind, batch), f"{kind}/{batch}.zarr")
        tmp.replace(file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


def read_dataset_manifest(file: Path) -> dict:
    """The export's manifest, read under the archive limits; refuse a non-export or a newer format."""
    manifest = _read_archive_manifest(file, DATASET_MANIFEST, "astrocyte dataset export")
    if not isinstance(manifest.get("name"), str):
        raise AstrocyteError(f"{file}:{DATASET_MANIFEST}: 'name' must be a string")
    return manifest


def _read_archive_manifest(file: Path, name: str, what: str) -> dict:
    """The manifest ``name`` of the archive ``file`` (a ``what``), read after every header passed the archive
    limits; an archive without it, or of a newer format, is refused."""
    with open_tar(file) as tar:
        check_members(tar, file)
        try:
            manifest = read_manifest(tar, name, file)
        except MissingMemberError:
            raise AstrocyteError(f"{file}: not an {what} (no {name})") from None
    found = format_version(manifest, f"{file}:{name}")
    if found > FORMAT_VERSION:
        raise FormatVersionError(f"{file}: made by a newer astrocyte-lab (format {found} > {FORMAT_VERSION})")
    return manifest


def import_dataset(file: Path, destination: Path) -> None:
    """Unpack an export into ``destination`` (which must not exist); all or nothing."""
    read_dataset_manifest(file)
    staging = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.importing")
    try:
        safe_extract(file, staging)  # refuses links, devices, traversal and size bombs before writing
        (staging / DATASET_MANIFEST).unlink()
        _check_unpacked(staging, file)  # validates table and batches before the dataset becomes visible
        staging.rename(destination)
    except OSError as exc:
        raise AstrocyteError(f"{file}: import failed ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_unpacked(staging: Path, file: Path) -> None:
    """Refuse an export whose table is missing or damaged, or that lacks (or has a damaged) batch the table uses."""
    from astrocyte_lab.data.dataset import Dataset

    store = DatasetStore(staging)
    try:
        used = sorted(batches_of(store.load_table()))
        Dataset(store).info()  # attributes, categories and objects must parse too
    except FormatVersionError:
        raise
    except LimitError as exc:
        raise LimitError(f"{file}: {_hide_staging(exc, staging)}") from None
    except Exception as exc:  # AstrocyteError for a missing HEAD/version; zarr/xarray/key errors for damage
        reason = _hide_staging(exc, staging)
        raise AstrocyteError(f"{file}: damaged or incomplete dataset export ({reason})") from exc
    missing = [f"{kind}/{batch}" for kind, batch in used if not store.batch_path(kind, batch).is_dir()]
    if missing:
        raise AstrocyteError(f"{file}: incomplete dataset export, missing batches {missing}")
    for kind, batch in used:
        try:
            store.open_batch(kind, batch)  # names, metadata and declared sizes of each batch
        except AstrocyteError as exc:
            raise AstrocyteError(f"{file}: damaged dataset export ({_hide_staging(exc, staging)})") from None


def _hide_staging(exc: Exception, staging: Path) -> str:
    """The message of ``exc`` with the temporary unpack folder shown as ``export``."""
    return str(exc).replace(str(staging), "export").replace(staging.name, "export")


def backup_workspace(root: Path, file: Path) -> Path:
    """Pack the whole workspace (datasets, models, settings) into one tar file of folders and regular files."""
    file = Path(file)
    if file.resolve().is_relative_to(root.resolve()):
        raise AstrocyteError(f"{file}: the backup file must lie outside the workspace {root}")
    tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with tarfile.open(tmp, "w") as tar:
            manifest = {"format_version": FORMAT_VERSION, "kind": "workspace"}
            _add_bytes(tar, BACKUP_MANIFEST, json.dumps(manifest).encode())
            for child in sorted(root.iterdir()):
                if not child.name.startswith("."):
                    tar.add(child, child.name, filter=partial(_backup_member, root))
        tmp.replace(file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


def read_backup_manifest(file: Path) -> dict:
    """The backup's manifest, read under the archive limits; refuse a non-backup or a newer format."""
    manifest = _read_archive_manifest(file, BACKUP_MANIFEST, "astrocyte workspace backup")
    if manifest.get("kind") != "workspace":
        raise AstrocyteError(f"{file}: not an astrocyte workspace backup")
    return manifest


def restore_workspace(file: Path, root: Path, overwrite: bool = False) -> None:
    """Unpack a backup into ``root``; an existing non-empty workspace needs ``overwrite``.

    Nothing is left beside ``root`` when the backup is refused; the final swap is journalled so an interrupted
    one is finished or rolled back by :func:`recover_restore` (called when the workspace is opened).
    """
    root = Path(os.path.abspath(root))
    read_backup_manifest(file)
    if root.exists() and not root.is_dir():
        raise AstrocyteError(f"{root} is a file, not a workspace folder")
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise AstrocyteError(f"{root} is not empty: pass overwrite=True to replace it")
    staging = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.restoring")
    try:
        safe_extract(file, staging)
        (staging / BACKUP_MANIFEST).unlink()
        _swap_in(staging, root)
    except OSError as exc:
        raise AstrocyteError(f"{file}: restore into {root} failed ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restore_journal(root: Path) -> Path:
    """The file beside ``root`` that records a restore swap in progress."""
    return root.with_name(f".{root.name}.restore-journal.json")


def restore_lock(root: Path) -> Path:
    """The lock file beside ``root`` that a restore swap holds (it exists only while someone holds it)."""
    return root.with_name(f".{root.name}.restore.lock")


@contextlib.contextmanager
def _holding_restore_lock(root: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold the restore lock of ``root`` across processes (the OS releases it if the holder dies).

    ``wait_s=None`` waits as long as it takes; otherwise a lock still held after ``wait_s`` seconds raises. The
    file is removed on release; a lock taken on a file that was removed (or replaced) meanwhile is retried, so
    two holders never lock different files.
    """
    if fcntl is None:  # Windows: no cross-process lock, as for dataset saves
        yield
        return
    path = restore_lock(root)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise AstrocyteError(f"{root}: a restore into it is in progress (it holds {path}); open it again "
                                     "when the restore is done") from None
            time.sleep(_LOCK_POLL_S)
            continue
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder before us removed the file: lock the current one instead
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _swap_in(staging: Path, root: Path) -> None:
    """Replace ``root`` by the complete ``staging`` folder under the restore lock: journal, two renames, clean up.

    A failure between the renames puts the old workspace back; a kill leaves the journal for
    :func:`recover_restore`, which waits for the lock so it never acts on a swap still under way.
    """
    old = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.old")
    journal = restore_journal(root)
    with _holding_restore_lock(root):
        _atomic_write_text(journal, json.dumps({"staging": staging.name, "old": old.name}))
        try:
            if root.exists():
                root.rename(old)
            try:
                staging.rename(root)
            except BaseException:
                if old.exists() and not root.exists():
                    old.rename(root)
                raise
        except BaseException:
            journal.unlink(missing_ok=True)
            raise
        journal.unlink()
    shutil.rmtree(old, ignore_errors=True)


def recover_restore(root: Path) -> None:
    """Finish or roll back a restore swap that was interrupted (its journal is still beside ``root``).

    With the workspace gone, the complete staging folder is moved in (finish) or else the previous workspace
    is put back (roll back). With the workspace present, whichever of staging/old is left over is removed;
    if both are, nothing is touched and the user is asked to check. A swap still under way (another process
    holds the restore lock) is waited for up to :data:`RECOVERY_WAIT_S` seconds, then left alone with an error:
    acting on it would delete the folder that process is renaming into place.
    """
    root = Path(os.path.abspath(root))
    journal = restore_journal(root)
    if not root.name or not root.parent.is_dir() or (root.exists() and not journal.is_file()):
        return  # the file-system root, a new workspace, or (most often) nothing was interrupted
    with _holding_restore_lock(root, RECOVERY_WAIT_S):
        if journal.is_file():
            _recover_journalled(root, journal)
        else:
            _recover_unjournalled(root)


def _recover_journalled(root: Path, journal: Path) -> None:
    staging, old = _journal_folders(journal, root)
    if not root.exists():
        if staging.is_dir():
            staging.rename(root)  # the backup had been unpacked completely: finish the swap
            shutil.rmtree(old, ignore_errors=True)
        elif old.is_dir():
            old.rename(root)  # roll back to the previous workspace
    elif staging.exists() and old.exists():
        raise AstrocyteError(f"{root}: an interrupted restore left both {staging.name} and {old.name} beside it; "
                             f"keep the one you want as {root} and remove {journal}")
    else:
        shutil.rmtree(staging, ignore_errors=True)  # the swap never started: roll back
        shutil.rmtree(old, ignore_errors=True)  # the swap had completed: drop the previous workspace
    journal.unlink(missing_ok=True)


def _recover_unjournalled(root: Path) -> None:
    """Put back the one previous workspace a swap without journal (older astrocyte-lab) left beside a missing root."""
    if root.exists() or not root.parent.is_dir():
        return
    olds = [p for p in root.parent.glob(f".{glob.escape(root.name)}.*.old") if (p / "workspace.json").is_file()]
    if len(olds) == 1:
        olds[0].rename(root)


def _journal_folders(journal: Path, root: Path) -> tuple[Path, Path]:
    """The staging and old folders a restore journal names (both must be siblings named after ``root``)."""
    record = read_json(journal)
    names = [record.get(key) if isinstance(record, dict) else None for key in ("staging", "old")]
    for name in names:
        if not isinstance(name, str) or "/" in name or "\\" in name or not name.startswith(f".{root.name}."):
            raise AstrocyteError(f"{journal}: damaged restore journal; remove it once {root} is checked")
    return root.with_name(names[0]), root.with_name(names[1])


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _backup_member(root: Path, info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Skip unfinished files and links (a restore refuses links); store a hard-linked file as a plain copy."""
    base = info.name.rsplit("/", 1)[-1]
    if base.endswith((".partial", ".tmp", ".importing")):
        return None
    if info.islnk():
        info.type, info.linkname = tarfile.REGTYPE, ""
        info.size = (root / info.name).stat().st_size
    return info if info.isreg() or info.isdir() else None
