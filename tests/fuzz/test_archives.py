"""Fuzz the archive importers (dataset ``.astrods``, workspace backup, ``.astrotrained`` model, VOC ``.tar``) with
crafted member lists, truncated files and bit flips of valid exports.

Each case runs in a memory-capped child (``bounded``) and must end in success or a project error; afterwards
nothing may have been written outside the importer's target: nothing under ``tmp_path`` outside the case folder
changed (``outside`` included, which the crafted ``..`` names aim at from each importer's unpack folder), no link
exists anywhere under the case folder and no staging folder is left behind. Header bombs (one extension header
declaring 256 MiB) and header chains run under a tighter memory cap. ``ASTROCYTE_FUZZ_EXAMPLES`` sets the number
of cases per test (default 40) for longer runs.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrocyte_lab.data.sources import segmentation_set
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.formats.export import export_annotated, import_voc_export
from tests.data.tar_helpers import header_bomb_tar, header_chain_tar

KINDS = ("dataset", "backup", "model", "voc")
SUFFIX = {"dataset": ".astrods", "backup": ".tar", "model": ".astrotrained", "voc": ".tar"}
MANIFEST = {
    "dataset": ("astrocyte-dataset.json", {"format_version": 1, "name": "fuzz"}),
    "backup": ("astrocyte-backup.json", {"format_version": 1, "kind": "workspace"}),
    "model": ("model.json", {"module": "classification", "categories": ["a"],
                             "input": {"width": 8, "height": 8, "channels": 1}}),
    "voc": ("labels.txt", "0 a\n"),
}
#: how many folders each importer's unpack folder lies below ``tmp_path`` (the case folder is ``tmp_path/cases/<id>``):
#: ``case/ws/datasets/.imported.*.importing``, ``case/.restored.*.restoring``, ``case/ws/models/.import.*``,
#: ``case/ws/imports/imported``; ``"../" * UP[kind]`` from there is ``tmp_path``
UP = {"dataset": 5, "backup": 3, "model": 5, "voc": 5}
#: the folders of a case where staging folders are made: none may be left there
STAGING_PARENTS = (".", "ws", "ws/datasets", "ws/models", "ws/imports")
FUZZ = settings(max_examples=int(os.environ.get("ASTROCYTE_FUZZ_EXAMPLES", "40")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Valid(dict):
    """The valid archives, with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<valid archives: {', '.join(f'{k} {len(v[0]):,} bytes' for k, v in self.items())}>"


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, list[tuple[int, int]]]]:
    """One valid archive of each kind (bytes and member regions), from a two-image segmentation dataset and a
    tiny model."""
    root = tmp_path_factory.mktemp("valid")
    rng = np.random.default_rng(0)
    for i in range(2):
        (root / "img").mkdir(exist_ok=True)
        (root / "mask").mkdir(exist_ok=True)
        cv2.imwrite(str(root / f"img/p{i}.png"), rng.integers(0, 255, (12, 16, 3), np.uint8))
        mask = np.zeros((12, 16), np.uint8)
        mask[: 3 + i] = 1
        cv2.imwrite(str(root / f"mask/p{i}.png"), mask)
    ws = Workspace(root / "ws")
    seg = ws.create_dataset("seg", "segmentation", [segmentation_set("s", root / "img", root / "mask")])
    ws.model_store.save("m", MANIFEST["model"][1], {"w": np.ones((2, 3), np.float32)})
    files = {"dataset": ws.export_dataset("seg", root / "seg.astrods"),
             "model": ws.export_model("m", root / "m.astrotrained"),
             "voc": export_annotated(seg, root / "voc.tar"),
             "backup": ws.backup(root / "backup.tar")}
    return Valid({kind: (path.read_bytes(), regions(path.read_bytes())) for kind, path in files.items()})


def run_import(kind: str, file: Path, case: Path) -> None:
    """The importer of ``kind`` on ``file``, into a fresh workspace under ``case``."""
    if kind == "backup":
        Workspace.restore(file, case / "restored")
        return
    ws = Workspace(case / "ws")
    if kind == "dataset":
        ws.import_dataset(file, "imported")
    elif kind == "model":
        ws.import_model(file, "imported")
    else:
        import_voc_export(ws, file, "imported", "segmentation")


def snapshot_except(root: Path, case: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` but inside ``case``, with its size and modification time (links not followed)."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")
            if p != case and case not in p.parents}


def check_case(case: Path, file: Path, before: dict, tmp_path: Path, outside_untouched) -> None:
    """Nothing outside the target: all of ``tmp_path`` but the case unchanged, no links, no staging left."""
    outside_untouched()
    assert snapshot_except(tmp_path, case) == before, "a file was written outside the case folder"
    assert not [p for p in case.rglob("*") if p.is_symlink()], "a link was created"
    assert {p.name for p in case.iterdir()} <= {file.name, "ws", "restored"}
    for folder in (case / name for name in STAGING_PARENTS):
        if folder.is_dir():
            assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "staging left behind"


def fuzz_one(kind: str, data: bytes, tmp_path: Path, bounded, outside_untouched, memory_mib: int = 768) -> Any:
    """Import ``data`` as a ``kind`` archive in a capped child; check the case; return what ``bounded`` returned."""
    case = tmp_path / "cases" / uuid.uuid4().hex[:8]
    case.mkdir(parents=True)
    file = case / f"in{SUFFIX[kind]}"
    file.write_bytes(data)
    before = snapshot_except(tmp_path, case)
    result = bounded(run_import, kind, file, case, memory_mib=memory_mib)
    check_case(case, file, before, tmp_path, outside_untouched)
    return result


# -- strategies ---------------------------------------------------------------------------------------------------
EXTENSIONS = [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE]
DECLARED = [0, 1, 8, 40, 513, 1 << 20, (1 << 20) + 1, 1 << 28, 1 << 33]
TYPES = [tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE]


def names(kind: str, outside: Path) -> st.SearchStrategy[str]:
    """Member and link names: ordinary ones, and ones that land in ``outside`` (or just beside it) from the
    importer's unpack folder."""
    escapes = [f"{'../' * up}outside/{leaf}" for up in (UP[kind] - 1, UP[kind], UP[kind] + 1)
               for leaf in ("keep.txt", "new.txt")]
    fixed = ["a", "a/b", "HEAD", "versions/v000001.zarr/zarr.json", "weights.safetensors", "model.json",
             "astrocyte-dataset.json", "astrocyte-backup.json", "labels.txt", "JPEGImages/p0.png", "../x",
             *escapes, f"a/{'../' * (UP[kind] + 1)}outside/new.txt", str(outside / "keep.txt"),
             str(outside / "new.txt"), "/etc/x", "", ".", "./a", "a//b", "a/../..", "a/C:/x", "C:x",
             "x" * 300, "d" * 247 + "/" + "e" * 247]
    return st.one_of(st.sampled_from(fixed), st.text(st.sampled_from("ab./\\-_\x00é:"), max_size=12))


def member_data() -> st.SearchStrategy[bytes]:
    jsons = [json.dumps(v).encode() for v in (MANIFEST["dataset"][1], MANIFEST["backup"][1], MANIFEST["model"][1],
                                               [1], {"format_version": "x"}, {"format_version": 1.5, "name": 3})]
    return st.one_of(st.binary(max_size=64), st.sampled_from(jsons), st.just(b"v000001\n"),
                     st.just(b"\x00" * 4096))


@st.composite
def crafted_tar(draw: st.DrawFn, kind: str, outside: Path) -> bytes:
    """A tar of random member types, names, link targets and (possibly lying) sizes, often with a valid manifest."""
    buffer = io.BytesIO()
    mode = draw(st.sampled_from(["w", "w", "w:gz"]))
    with tarfile.open(fileobj=buffer, mode=mode, format=draw(st.sampled_from([tarfile.PAX_FORMAT,
                                                                               tarfile.GNU_FORMAT]))) as tar:
        if draw(st.booleans()):
            name, value = MANIFEST[kind]
            payload = value.encode() if isinstance(value, str) else json.dumps(value).encode()
            _add(tar, name, tarfile.REGTYPE, payload, "")
        for _ in range(draw(st.integers(0, 6))):
            for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 12]))):  # extension headers, often lying
                _add_extension(tar, draw(st.sampled_from(EXTENSIONS)), draw(st.sampled_from(DECLARED)),
                               draw(st.binary(max_size=40)))
            _add(tar, draw(names(kind, outside)), draw(st.sampled_from(TYPES)), draw(member_data()),
                 draw(names(kind, outside)))
    data = buffer.getvalue()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _add(tar: tarfile.TarFile, name: str, kind: bytes, data: bytes, linkname: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    regular = kind in (tarfile.REGTYPE, tarfile.CONTTYPE)
    info.size = len(data) if regular else 0
    try:
        tar.addfile(info, io.BytesIO(data) if regular else None)
    except (ValueError, UnicodeError):
        pass  # a name tarfile itself cannot write (NUL in a GNU name): skip the member


def _add_extension(tar: tarfile.TarFile, kind: bytes, declared: int, data: bytes) -> None:
    """A raw extension header declaring ``declared`` bytes but followed by ``data`` only (what comes next is then
    read as its content)."""
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, declared
    block = info.tobuf(tarfile.GNU_FORMAT, tar.encoding, tar.errors) + data + bytes(-len(data) % 512)
    tar.fileobj.write(block)
    tar.offset += len(block)


def regions(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each member's header and of its data in the tar ``data``: where damage matters."""
    spans = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            spans.append((member.offset, member.offset_data))
            if member.size:
                spans.append((member.offset_data, member.offset_data + member.size))
    return spans


@st.composite
def damaged(draw: st.DrawFn, data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` cut inside a member, or with a few bits flipped in members' headers or data."""
    start, end = draw(st.sampled_from(spans))
    if draw(st.booleans()):
        return data[: draw(st.integers(start, end))]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        start, end = draw(st.sampled_from(spans))
        out[draw(st.integers(start, end - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


# -- tests --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_crafted_tars(kind, data, tmp_path, bounded, outside_untouched):
    archive = data.draw(crafted_tar(kind, tmp_path / "outside"))
    fuzz_one(kind, archive, tmp_path, bounded, outside_untouched)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_damaged_valid_archives(kind, data, valid, tmp_path, bounded, outside_untouched):
    fuzz_one(kind, data.draw(damaged(*valid[kind])), tmp_path, bounded, outside_untouched)


@pytest.mark.parametrize("kind", KINDS)
def test_valid_archives_import(kind, valid, tmp_path, bounded, outside_untouched):
    """The harness itself: the undamaged archives import successfully."""
    fuzz_one(kind, valid[kind][0], tmp_path, bounded, outside_untouched)
    case = next((tmp_path / "cases").iterdir())
    assert (case / ("restored" if kind == "backup" else "ws")).is_dir()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Header bombs and a header chain, built once: any importer refuses them while reading headers."""
    root = tmp_path_factory.mktemp("bombs")
    return {"long-name bomb": header_bomb_tar(root / "l.tar.gz", 256 << 20, tarfile.GNUTYPE_LONGNAME).read_bytes(),
            "pax bomb": header_bomb_tar(root / "x.tar.gz", 256 << 20, tarfile.XHDTYPE).read_bytes(),
            "header chain": header_chain_tar(root / "chain.tar", 2000).read_bytes()}


@pytest.mark.parametrize("build", ["long-name bomb", "pax bomb", "header chain"])
@pytest.mark.parametrize("kind", KINDS)
def test_header_bombs_and_chains(kind, build, bombs, tmp_path, bounded, outside_untouched):
    """One extension header declaring 256 MiB (260 KB compressed) used to be read whole (peak memory +260 MB),
    2000 chained ones raised a raw RecursionError: both are refused, here under a 160 MiB cap."""
    result = fuzz_one(kind, bombs[build], tmp_path, bounded, outside_untouched, memory_mib=160)
    assert result.type == "LimitError" and "extension header" in result.message, result
