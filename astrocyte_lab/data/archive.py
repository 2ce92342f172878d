"""Single-file dataset export/import (``.astrods``) and whole-workspace backup/restore (``.tar``)."""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from pathlib import Path

from astrocyte_lab.data.store import FORMAT_VERSION, DatasetStore, batches_of
from astrocyte_lab.errors import AstrocyteError, FormatVersionError

DATASET_MANIFEST = "astrocyte-dataset.json"
BACKUP_MANIFEST = "astrocyte-backup.json"


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
    try:
        with tarfile.open(file, "r") as tar:
            member = tar.extractfile(DATASET_MANIFEST)
            if member is None:
                raise KeyError(DATASET_MANIFEST)
            manifest = json.loads(member.read())
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise AstrocyteError(f"{file}: not an astrocyte dataset export ({exc})") from exc
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise FormatVersionError(f"{file}: exported by a newer astrocyte-lab (format "
                                 f"{manifest['format_version']} > {FORMAT_VERSION})")
    return manifest


def import_dataset(file: Path, destination: Path) -> None:
    """Unpack an export into ``destination`` (which must not exist); all or nothing."""
    read_dataset_manifest(file)
    staging = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.importing")
    try:
        with tarfile.open(file, "r") as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths, links out, traversal
        (staging / DATASET_MANIFEST).unlink()
        _check_unpacked(staging, file)  # validates table and batches before the dataset becomes visible
        staging.rename(destination)
    except (tarfile.TarError, OSError) as exc:
        raise AstrocyteError(f"{file}: import failed ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_unpacked(staging: Path, file: Path) -> None:
    """Refuse an export whose table is missing or damaged, or that lacks a batch the table uses."""
    store = DatasetStore(staging)
    try:
        table = store.load_table()
    except FormatVersionError:
        raise
    except Exception as exc:  # AstrocyteError for a missing HEAD/version; zarr/xarray errors for damage
        reason = str(exc).replace(str(staging), "export")
        raise AstrocyteError(f"{file}: damaged or incomplete dataset export ({reason})") from exc
    missing = [f"{kind}/{batch}" for kind, batch in sorted(batches_of(table))
               if not store.batch_path(kind, batch).is_dir()]
    if missing:
        raise AstrocyteError(f"{file}: incomplete dataset export, missing batches {missing}")


def backup_workspace(root: Path, file: Path) -> Path:
    """Pack the whole workspace (datasets, models, settings) into one tar file."""
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
                    tar.add(child, child.name, filter=_skip_partials)
        tmp.replace(file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


def restore_workspace(file: Path, root: Path, overwrite: bool = False) -> None:
    """Unpack a backup into ``root``; an existing non-empty workspace needs ``overwrite``."""
    try:
        with tarfile.open(file, "r") as tar:
            member = tar.extractfile(BACKUP_MANIFEST)
            manifest = json.loads(member.read()) if member else None
            if manifest is None or manifest.get("kind") != "workspace":
                raise AstrocyteError(f"{file}: not an astrocyte workspace backup")
            if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
                raise FormatVersionError(f"{file}: made by a newer astrocyte-lab")
            if root.exists() and any(root.iterdir()) and not overwrite:
                raise AstrocyteError(f"{root} is not empty: pass overwrite=True to replace it")
            staging = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.restoring")
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise AstrocyteError(f"{file}: unreadable backup ({exc})") from exc
    (staging / BACKUP_MANIFEST).unlink()
    old = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.old")
    if root.exists():
        root.rename(old)
    staging.rename(root)
    shutil.rmtree(old, ignore_errors=True)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _skip_partials(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    base = info.name.rsplit("/", 1)[-1]
    return None if base.endswith((".partial", ".tmp", ".importing")) else info
