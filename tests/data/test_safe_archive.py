"""Safe tar extraction: every unsafe member and every size bomb is refused before anything is written."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest

from astrocyte_lab.data import safe_archive
from astrocyte_lab.data.safe_archive import check_members, open_tar, read_manifest, read_member, safe_extract
from astrocyte_lab.errors import AstrocyteError, LimitError, UnsafeArchiveError
from tests.data.tar_helpers import add, header_bomb_tar, header_chain_tar, symlink_chain_tar


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
    (tarfile.REGTYPE, "a/C:/mid-path.txt", "", "absolute or invalid"),
    (tarfile.DIRTYPE, "a/C:", "", "absolute or invalid"),
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


# -- review of the issue-19 hardening: header bombs, header chains, folders swapped for links ----------------------
@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_oversized_extension_header_refused_before_reading(tmp_path, kind):
    """``tarfile`` read a GNU long-name or pax header whole before any limit was checked (256 MiB declared in a
    1 MB .tar.gz raised peak memory by 260 MB; the fuzz suite checks the memory, here 8 MiB shows the refusal)."""
    file = header_bomb_tar(tmp_path / "bomb.tar.gz", 8 << 20, kind)
    with pytest.raises(LimitError, match=r"bomb\.tar\.gz: extension header at byte 0 declares 8,388,608 bytes"):
        safe_extract(file, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_header_bomb_does_not_reach_memory(tmp_path):
    """The 64 MiB a long-name header declares (64 KB compressed) are never read: peak traced memory stays small."""
    import tracemalloc

    file = header_bomb_tar(tmp_path / "bomb.tar.gz", 64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match="declares 67,108,864 bytes"):
            safe_extract(file, tmp_path / "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak:,} bytes"


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_chain_of_extension_headers_refused(tmp_path, kind):
    """2000 chained long-name headers made ``tarfile`` recurse until a raw ``RecursionError``."""
    file = header_chain_tar(tmp_path / "chain.tar", 2000, kind)
    with pytest.raises(LimitError, match=r"chain\.tar: .*more than 8 extension headers in a row"):
        safe_extract(file, tmp_path / "t")
    chain_later = header_chain_tar(tmp_path / "later.tar", 2000, kind, extra={"first.txt": b"first"})
    with pytest.raises(LimitError, match=r"later\.tar: .*in a row"), open_tar(chain_later) as tar:
        check_members(tar, chain_later)
    assert not (tmp_path / "t").exists()


def test_a_few_extension_headers_are_fine(tmp_path):
    """Long names and pax records of real archives still read (GNU and pax formats)."""
    long_name = "f" * 200 + "/" + "g" * 200 + ".txt"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        file = tmp_path / f"long{fmt}.tar"
        with tarfile.open(file, "w", format=fmt) as tar:
            add(tar, long_name, data=b"long")
        assert safe_extract(file, tmp_path / f"t{fmt}") == [long_name]
        assert (tmp_path / f"t{fmt}" / long_name).read_bytes() == b"long"


def test_recursion_error_is_a_read_error():
    assert RecursionError in safe_archive._READ_ERRORS


def test_folder_swapped_for_a_link_during_extraction_is_not_followed(tmp_path, outside, monkeypatch):
    """Folders used to be checked with ``lstat`` and then reopened by path: a link put in their place in between
    (by another process) led the next file out of the target. Now each level is opened by descriptor."""
    file = tmp_path / "two.tar"
    with tarfile.open(file, "w") as tar:
        add(tar, "a", tarfile.DIRTYPE)
        add(tar, "a/x.txt", data=b"x")
        add(tar, "a/y.txt", data=b"y")
    target = tmp_path / "t"
    real_write = safe_archive._write_file

    def write_after_swap(*args, **kwargs):
        if (target / "a/x.txt").exists() and not (target / "a").is_symlink():
            (target / "a").rename(target / "a-real")
            os.symlink(outside, target / "a")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(safe_archive, "_write_file", write_after_swap)
    safe_extract(file, target)
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in (target / "a-real").iterdir()) == ["x.txt", "y.txt"]
