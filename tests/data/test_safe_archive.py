"""Safe tar extraction: every unsafe member and every size bomb is refused before anything is written."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from astrocyte_lab.data import safe_archive
from astrocyte_lab.data.safe_archive import check_members, open_tar, read_manifest, read_member, safe_extract
from astrocyte_lab.errors import AstrocyteError, LimitError, UnsafeArchiveError


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
    then overwrite. ``tarfile``'s ``filter="data"`` on Python 3.11.7 lets it through."""
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


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    return folder


def test_symlink_chain_is_refused_before_writing(tmp_path, outside):
    file = symlink_chain_tar(tmp_path / "evil.tar", up=1)
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=r"evil\.tar: member .* symbolic link"):
        safe_extract(file, target)
    assert not target.exists() and (outside / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize(("kind", "name", "linkname", "message"), [
    (tarfile.SYMTYPE, "link", "/etc/passwd", "symbolic link"),
    (tarfile.SYMTYPE, "link", "inside.txt", "symbolic link"),
    (tarfile.LNKTYPE, "hard", "ok.txt", "hard link"),
    (tarfile.CHRTYPE, "dev", "", "device"),
    (tarfile.BLKTYPE, "disk", "", "device"),
    (tarfile.FIFOTYPE, "pipe", "", "FIFO"),
    (tarfile.GNUTYPE_SPARSE, "sparse", "", "sparse"),
    (tarfile.REGTYPE, "../escaped.txt", "", r"outside the archive"),
    (tarfile.REGTYPE, "a/../../escaped.txt", "", r"outside the archive"),
    (tarfile.REGTYPE, "/tmp/absolute.txt", "", "absolute"),
    (tarfile.REGTYPE, "C:/absolute.txt", "", "absolute"),
    (tarfile.REGTYPE, "back\\slash.txt", "", "absolute or invalid"),
    (tarfile.REGTYPE, "ok.txt", "", "twice"),
    (tarfile.REGTYPE, "./ok.txt", "", "twice"),
])
def test_unsafe_members_are_refused_before_writing(tmp_path, outside, kind, name, linkname, message):
    file = tmp_path / "evil.tar"
    with tarfile.open(file, "w") as tar:
        add(tar, "ok.txt", data=b"fine")
        add(tar, name, kind, data=b"x" if kind == tarfile.REGTYPE else b"", linkname=linkname)
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(file, target)
    assert not target.exists() and not list(tmp_path.glob("**/escaped.txt"))
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_safe_archive_unpacks_folders_and_files(tmp_path):
    file = tmp_path / "good.tar.gz"
    with tarfile.open(file, "w:gz") as tar:
        add(tar, ".", tarfile.DIRTYPE)
        add(tar, "a", tarfile.DIRTYPE)
        add(tar, "a/b/c.txt", data=b"deep")
        add(tar, "top.bin", data=bytes(range(256)) * 10)
        add(tar, "empty", tarfile.DIRTYPE)
    assert safe_extract(file, tmp_path / "t") == ["a", "a/b/c.txt", "top.bin", "empty"]
    assert (tmp_path / "t/a/b/c.txt").read_bytes() == b"deep" and (tmp_path / "t/empty").is_dir()
    assert (tmp_path / "t/top.bin").read_bytes() == bytes(range(256)) * 10
    with pytest.raises(AstrocyteError, match="already exists"):
        safe_extract(file, tmp_path / "t")


def test_declared_size_bomb_refused_without_reading(tmp_path):
    """A 2 KB tar whose header declares a 1 GB member is refused by the ratio check (default limits)."""
    file = tmp_path / "bomb.tar"
    with tarfile.open(file, "w") as tar:
        add(tar, "zeros", data=b"", size=0)
    header = bytearray(file.read_bytes())
    header[124:136] = b"%011o\0" % (1 << 30)  # the size field of the first header
    header[148:156] = b"        "
    header[148:155] = b"%06o\0" % sum(header[:512])
    file.write_bytes(bytes(header))
    with pytest.raises(LimitError, match=r"bomb\.tar: unpacks to 1,073,741,824 bytes"):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_compressed_zero_bomb_refused_by_ratio(tmp_path, monkeypatch):
    """A small .tar.gz holding a large zero file (scaled down: 16 MiB in ~16 KiB) is refused before writing."""
    monkeypatch.setenv("ASTROCYTE_MAX_ARCHIVE_RATIO_FLOOR_BYTES", str(1 << 20))
    file = tmp_path / "bomb.tar.gz"
    with tarfile.open(file, "w:gz") as tar:
        add(tar, "zeros.bin", data=bytes(16 << 20))
    assert file.stat().st_size < 100_000
    with pytest.raises(LimitError, match="ASTROCYTE_MAX_ARCHIVE_RATIO"):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("ARCHIVE_MEMBERS", 2, "number of archive members"),
    ("ARCHIVE_MEMBER_BYTES", 100, "size of member 'b.bin'"),
    ("ARCHIVE_BYTES", 150, "uncompressed size"),
])
def test_member_and_total_limits(tmp_path, monkeypatch, variable, value, message):
    file = tmp_path / "many.tar"
    with tarfile.open(file, "w") as tar:
        for name in ("a.bin", "b.bin", "c.bin"):
            add(tar, name, data=bytes(60 if name == "a.bin" else 120))
    monkeypatch.setenv(f"ASTROCYTE_MAX_{variable}", str(value))
    with pytest.raises(LimitError, match=message):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_not_enough_disk_space(tmp_path, monkeypatch):
    file = tmp_path / "big.tar"
    with tarfile.open(file, "w") as tar:
        add(tar, "a.bin", data=bytes(5000))
    monkeypatch.setattr(safe_archive.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(LimitError, match="only 1,000 are free"):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("damage", ["truncated", "not_a_tar", "empty", "bad_gzip"])
def test_damaged_archives_are_project_errors_and_leave_nothing(tmp_path, damage):
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        add(tar, "a.bin", data=bytes(range(256)) * 40)
        add(tar, "b.bin", data=b"b" * 3000)
    data = good.read_bytes()
    file = tmp_path / "damaged.tar"
    file.write_bytes({"truncated": data[:4000], "not_a_tar": b"hello" * 300, "empty": b"",
                      "bad_gzip": gzip.compress(data)[:200]}[damage])
    with pytest.raises(AstrocyteError, match=r"damaged\.tar"):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_read_member_is_bounded_and_manifest_must_be_an_object(tmp_path):
    file = tmp_path / "m.tar"
    with tarfile.open(file, "w") as tar:
        add(tar, "list.json", data=b"[1, 2]")
        add(tar, "big.json", data=b"{}" + b" " * 5000)
        add(tar, "bad.json", data=b"\xff\xfe{}")
        add(tar, "folder", tarfile.DIRTYPE)
    with open_tar(file) as tar:
        check_members(tar, file)
        assert read_member(tar, "list.json", 100) == b"[1, 2]"
        with pytest.raises(LimitError, match="big.json"):
            read_member(tar, "big.json", 1000)
        with pytest.raises(AstrocyteError, match=r"m\.tar: no missing.json inside"):
            read_member(tar, "missing.json")
        with pytest.raises(UnsafeArchiveError, match="not a regular file"):
            read_member(tar, "folder")
        with pytest.raises(AstrocyteError, match=r"m\.tar:list\.json: expected a JSON object"):
            read_manifest(tar, "list.json", file)
        with pytest.raises(AstrocyteError, match=r"m\.tar:bad\.json: not UTF-8"):
            read_manifest(tar, "bad.json", file)
