"""The .astromodel file: round trip, atomic writes, and clear errors for bad packages."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from astrocyte_lab.runtime import (
    FORMAT_VERSION,
    AstromodelError,
    FormatVersionError,
    PackageError,
    load_package,
    read_package,
    write_package,
)
from astrocyte_lab.runtime.package import decode_mask, decode_prototypes

from .conftest import classification_metadata, continual_metadata, tiny_model


def raw_package(path: Path, members: dict[str, bytes | dict[str, Any]]) -> Path:
    """A zip written without any validation (dict members become JSON)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(data) if isinstance(data, dict) else data)
    return path


def full_metadata(**changes: Any) -> dict[str, Any]:
    return {"format": "astromodel", "format_version": 1, **classification_metadata(), **changes}


def test_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    mask = np.zeros((8, 12), np.uint8)
    mask[2:6, 3:9] = 255
    meta = classification_metadata(roi={"crop": [4, 2, 12, 8], "mask": None})
    path = write_package(tmp_path / "round.astromodel", model.onnx_bytes, meta, roi_mask=mask)
    assert path == tmp_path / "round.astromodel"
    metadata, files = read_package(path)
    assert metadata["format"] == "astromodel" and metadata["format_version"] == 1  # nothing of version 2 in it
    assert metadata["producer"].startswith("astrocyte-lab") and metadata["created"]
    assert metadata["roi"] == {"crop": [4, 2, 12, 8], "mask": "roi_mask.png"}
    assert metadata["categories"] == ["a", "b"] and metadata["input"] == meta["input"]
    assert files["model.onnx"] == model.onnx_bytes
    assert np.array_equal(decode_mask(files["roi_mask.png"]), mask)
    assert "metadata.json" not in files
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()[0] == "metadata.json"
    assert meta["roi"]["mask"] is None  # the caller's dict is not modified
    assert [p.name for p in tmp_path.iterdir()] == ["round.astromodel"]  # no temporary file left


def test_prototypes_round_trip_and_numpy_values(tmp_path: Path) -> None:
    prototypes = np.random.default_rng(0).normal(size=(2, 5))
    meta = continual_metadata(["a", "b"], [np.int64(3), 4], threshold=np.float32(0.5))
    path = write_package(tmp_path / "c.astromodel", tiny_model().onnx_bytes, meta, prototypes=prototypes)
    metadata, files = read_package(path)
    assert metadata["continual"]["counts"] == [3, 4] and metadata["continual"]["threshold"] == 0.5
    loaded = decode_prototypes(files[metadata["continual"]["prototypes"]])
    assert loaded.dtype == np.float32 and np.allclose(loaded, prototypes, atol=1e-6)


def test_write_accepts_an_onnx_path_and_keeps_extra_files(tmp_path: Path) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(tiny_model().onnx_bytes)
    path = write_package(tmp_path / "x.astromodel", onnx_file, classification_metadata(),
                         extra_files={"notes/readme.txt": b"hello"})
    _, files = read_package(path)
    assert files["notes/readme.txt"] == b"hello"
    assert files["model.onnx"] == onnx_file.read_bytes()


def test_overwrite_is_atomic(tmp_path: Path) -> None:
    path = write_package(tmp_path / "m.astromodel", tiny_model().onnx_bytes, classification_metadata(name="one"))
    write_package(path, tiny_model().onnx_bytes, classification_metadata(name="two"))
    assert read_package(path)[0]["name"] == "two"
    before = path.read_bytes()
    with pytest.raises(PackageError, match="categories must be unique"):
        write_package(path, tiny_model().onnx_bytes, classification_metadata(["a", "a"]))
    assert path.read_bytes() == before  # the failed write left the old package intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.astromodel"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metadata": classification_metadata(continual=None), "prototypes": np.zeros((2, 5))}, "no 'continual'"),
    ({"metadata": classification_metadata(roi={"crop": [0, 0, 10, 10]}), "roi_mask": np.zeros((5, 5), np.uint8)},
     "mask is 5x5 but the crop box is 10x10"),
    ({"metadata": continual_metadata(["a", "b"], [1, 1]), "prototypes": np.zeros((3, 5))},
     "3 prototypes for 2 categories"),
    ({"metadata": continual_metadata(["a", "b"], [1, 1])}, "no such member"),
    ({"metadata": classification_metadata(module="regression")}, "unknown module 'regression'"),
    ({"metadata": classification_metadata(outputs={"embedding": "embedding"})}, "needs a 'logits' output"),
    ({"metadata": classification_metadata(categories=[])}, "at least one category"),
    ({"metadata": classification_metadata(input={"width": 0, "height": 5, "channels": 3})}, "input.width"),
    ({"metadata": classification_metadata(input={"width": 4, "height": 5, "channels": 2})}, "input.channels"),
    ({"metadata": classification_metadata(roi={"crop": [0, 0, -1, 4]})}, "roi.crop"),
    ({"metadata": classification_metadata(thresholds=[])}, "thresholds must be an object"),
    ({"metadata": classification_metadata(created=object())}, "not JSON serialisable"),
])
def test_write_refuses_inconsistent_packages(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    metadata = kwargs.pop("metadata")
    with pytest.raises(PackageError, match=message):
        write_package(tmp_path / "bad.astromodel", tiny_model().onnx_bytes, metadata, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "text.astromodel"
    path.write_text("hello")
    with pytest.raises(PackageError, match=r"text\.astromodel: not an astromodel package or corrupt"):
        load_package(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.astromodel"):
        load_package(tmp_path / "nothing.astromodel")


@pytest.mark.parametrize(("members", "error", "message"), [
    ({"model.onnx": b"x"}, PackageError, "metadata.json is missing"),
    ({"metadata.json": b"{not json", "model.onnx": b"x"}, PackageError, "not valid JSON"),
    ({"metadata.json": full_metadata()}, PackageError, "model.onnx is missing"),
    ({"metadata.json": full_metadata(format_version=FORMAT_VERSION + 1), "model.onnx": b"x"}, FormatVersionError,
     f"format version {FORMAT_VERSION + 1} is newer than this astrocyte-lab reads"),
    ({"metadata.json": full_metadata(format_version="1"), "model.onnx": b"x"}, PackageError, "format_version"),
    ({"metadata.json": full_metadata(format="zipmodel"), "model.onnx": b"x"}, PackageError,
     "not an astromodel package"),
    ({"metadata.json": full_metadata(module=None), "model.onnx": b"x"}, PackageError, "unknown module None"),
    ({"metadata.json": full_metadata(categories="ab"), "model.onnx": b"x"}, PackageError, "categories must be"),
    ({"metadata.json": full_metadata(outputs={"logits": 3}), "model.onnx": b"x"}, PackageError, "outputs"),
    ({"metadata.json": full_metadata(continual={"prototypes": "p.npy", "counts": [1], "threshold": 0.5}),
      "model.onnx": b"x"}, PackageError, "continual.counts"),
    ({"metadata.json": full_metadata(roi={"crop": None, "mask": "roi_mask.png"}), "model.onnx": b"x"},
     PackageError, "roi.mask names 'roi_mask.png'"),
    ({"metadata.json": full_metadata(roi={"crop": None, "mask": "roi_mask.png"}), "model.onnx": b"x",
      "roi_mask.png": b"garbage"}, PackageError, "ROI mask cannot be decoded"),
    ({"metadata.json": [1, 2], "model.onnx": b"x"}, PackageError, "JSON object"),
])
def test_bad_packages_name_the_file(tmp_path: Path, members: dict[str, Any], error: type[Exception],
                                    message: str) -> None:
    if isinstance(members.get("metadata.json"), list):
        members = {**members, "metadata.json": json.dumps(members["metadata.json"]).encode()}
    path = raw_package(tmp_path / "bad.astromodel", members)
    with pytest.raises(error, match=message) as info:
        read_package(path)
    assert "bad.astromodel" in str(info.value)


def test_corrupt_member_is_detected(make_package: Callable[..., Any]) -> None:
    path, _ = make_package()
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.onnx")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 40] ^= 0xFF  # flip bits inside the stored model: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="corrupt"):
        load_package(path)


def test_garbage_model_is_a_package_error(tmp_path: Path) -> None:
    path = raw_package(tmp_path / "g.astromodel", {"metadata.json": full_metadata(), "model.onnx": b"\x00garbage"})
    with pytest.raises(PackageError, match="model.onnx cannot be loaded by onnxruntime"):
        load_package(path)


def test_model_and_metadata_must_agree(make_package: Callable[..., Any]) -> None:
    path, _ = make_package("a.astromodel", model=tiny_model(input_name="pixels"))
    with pytest.raises(PackageError, match="one input named 'image'"):
        load_package(path)
    path, _ = make_package("b.astromodel", model=tiny_model(height=16, width=32))
    with pytest.raises(PackageError, match="width 32 but the metadata says 24"):
        load_package(path)
    path, _ = make_package("c.astromodel", model=tiny_model(channels=1))
    with pytest.raises(PackageError, match="channels 1 but the metadata says 3"):
        load_package(path)
    path, _ = make_package("d.astromodel", model=tiny_model(classes=3))
    with pytest.raises(PackageError, match="3 logits but the metadata lists 2 categories"):
        load_package(path)
    path, _ = make_package("e.astromodel", model=tiny_model(logits_name="scores_out"))
    with pytest.raises(PackageError, match="outputs.logits names 'logits'"):
        load_package(path)
    path, _ = make_package("f.astromodel", metadata=continual_metadata(["a"], [1]), prototypes=np.ones((1, 4)))
    with pytest.raises(PackageError, match="embedding has 5 values but the prototypes have 4"):
        load_package(path)


# ------------------------------------------------------------------------------------------------ limits (issue 19)

def _zero_member(path: Path, valid: Path, name: str, size: int) -> Path:
    """A copy of the package ``valid`` with a deflated member of ``size`` zero bytes added (a zip bomb)."""
    with zipfile.ZipFile(valid) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            chunk = bytes(1 << 24)
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return path


def test_zero_bomb_member_is_refused_before_it_is_read(make_package: Callable[..., Any], tmp_path: Path) -> None:
    import tracemalloc

    valid, _ = make_package()
    bomb = _zero_member(tmp_path / "bomb.astromodel", valid, "zeros.bin", 288 << 20)
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(PackageError, match=r"bomb\.astromodel: compression ratio .* ASTROCYTE_MAX_ARCHIVE_RATIO"):
            load_package(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_package_size_limits_come_from_the_environment(make_package: Callable[..., Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    valid, _ = make_package()
    monkeypatch.setenv("ASTROCYTE_MAX_PACKAGE_BYTES", "1000")
    with pytest.raises(PackageError, match=r"uncompressed size .* above the limit of 1,000; set "
                                           "ASTROCYTE_MAX_PACKAGE_BYTES"):
        read_package(valid)
    monkeypatch.delenv("ASTROCYTE_MAX_PACKAGE_BYTES")
    monkeypatch.setenv("ASTROCYTE_MAX_ARCHIVE_MEMBERS", "1")
    with pytest.raises(PackageError, match="declares 2 members"):
        read_package(valid)
    monkeypatch.setenv("ASTROCYTE_MAX_ARCHIVE_MEMBERS", "many")
    with pytest.raises(AstromodelError, match="ASTROCYTE_MAX_ARCHIVE_MEMBERS='many': expected a positive integer"):
        read_package(valid)


def _central_entry(data: bytes, name: str) -> int:
    """Offset of ``name``'s central directory entry in the zip bytes ``data``."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + length] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 1)
    raise AssertionError(f"{name} not found")


def test_member_longer_than_declared_is_refused(make_package: Callable[..., Any], tmp_path: Path) -> None:
    valid, _ = make_package()
    data = bytearray(valid.read_bytes())
    entry = _central_entry(bytes(data), "model.onnx")
    declared = int.from_bytes(data[entry + 24:entry + 28], "little")
    data[entry + 24:entry + 28] = (declared - 10).to_bytes(4, "little")  # the stream now holds more than declared
    broken = tmp_path / "longer.astromodel"
    broken.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"longer\.astromodel"):
        read_package(broken)


@pytest.mark.parametrize(("name", "mode"), [("../escape.txt", 0o100644), ("/etc/passwd", 0o100644),
                                            ("a/../../b", 0o100644), ("C:evil", 0o100644),
                                            ("link", 0o120777), ("fifo", 0o010644)])
def test_unsafe_members_are_refused(make_package: Callable[..., Any], tmp_path: Path, name: str, mode: int) -> None:
    valid, _ = make_package()
    path = tmp_path / "unsafe.astromodel"
    with zipfile.ZipFile(valid) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        archive.writestr(info, b"/tmp")
    with pytest.raises(PackageError, match=r"unsafe\.astromodel: member .*(unsafe|not a plain file)"):
        read_package(path)


def test_duplicate_and_encrypted_members_are_refused(make_package: Callable[..., Any], tmp_path: Path) -> None:
    valid, _ = make_package()
    path = tmp_path / "twice.astromodel"
    with zipfile.ZipFile(valid) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("model.onnx", b"other")
    with pytest.raises(PackageError, match="appears twice"):
        read_package(path)
    data = bytearray(valid.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" flag bit
        at = data.find(signature)
        while at >= 0:
            data[at + offset] |= 1
            at = data.find(signature, at + 1)
    encrypted = tmp_path / "encrypted.astromodel"
    encrypted.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="encrypted"):
        read_package(encrypted)


@pytest.mark.parametrize(("text", "message"), [
    (b'{"format": "astromodel", "format_version": NaN}', "NaN is not allowed"),
    (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", "nested 201 levels deep"),
    (b'{"name": "\xff"}', "not UTF-8"),
    (b'{"name": 1', "line 1 column 11"),
])
def test_metadata_is_strict_json(tmp_path: Path, text: bytes, message: str) -> None:
    path = raw_package(tmp_path / "strict.astromodel", {"metadata.json": text, "model.onnx": b"x"})
    with pytest.raises(PackageError, match=rf"strict\.astromodel: metadata\.json is not valid JSON \(.*{message}"):
        read_package(path)


@pytest.mark.parametrize(("changes", "field"), [
    ({"width": 10 ** 9}, "input.width is 1000000000, above the limit of 8192"),
    ({"height": 0}, "input.height must be a positive integer"),
    ({"width": 24.0}, "input.width must be a positive integer"),
    ({"width": "24"}, "input.width must be a positive integer"),
    ({"width": True}, "input.width must be a positive integer"),
    ({"channels": 4}, "input.channels must be 1 or 3"),
    ({"width": 10 ** 400}, r"input.width is 1000.*\.\.\., above the limit"),
])
def test_absurd_input_size_is_refused_at_load(make_package: Callable[..., Any], tmp_path: Path,
                                               changes: dict[str, Any], field: str) -> None:
    valid, _ = make_package()
    with zipfile.ZipFile(valid) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        model = archive.read("model.onnx")
    metadata["input"].update(changes)
    path = raw_package(tmp_path / "absurd.astromodel", {"metadata.json": metadata, "model.onnx": model})
    with pytest.raises(PackageError, match=rf"absurd\.astromodel: {field}"):
        load_package(path)


def test_input_pixels_and_crop_are_checked_against_the_pixel_limit(make_package: Callable[..., Any], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    valid, _ = make_package()
    with zipfile.ZipFile(valid) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        model = archive.read("model.onnx")
    monkeypatch.setenv("ASTROCYTE_MAX_IMAGE_PIXELS", "300")
    path = raw_package(tmp_path / "pixels.astromodel", {"metadata.json": metadata, "model.onnx": model})
    with pytest.raises(PackageError, match=r"pixels\.astromodel: input: image size 24 x 16 \(pixels\) is 384, above "
                                           "the limit of 300; set ASTROCYTE_MAX_IMAGE_PIXELS"):
        load_package(path)
    monkeypatch.delenv("ASTROCYTE_MAX_IMAGE_PIXELS")
    metadata["roi"] = {"crop": [0, 0, 100_000, 100_000], "mask": None}
    path = raw_package(tmp_path / "crop.astromodel", {"metadata.json": metadata, "model.onnx": model})
    with pytest.raises(PackageError, match=r"crop\.astromodel: roi\.crop \[0, 0, 100000, 100000\]: image size"):
        load_package(path)


def test_prototypes_header_cannot_declare_more_than_it_holds() -> None:
    import io

    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 6, 10 ** 6)})
    buffer.write(np.zeros(6, np.float32).tobytes())
    with pytest.raises(PackageError, match=r"p\.astromodel: the prototypes cannot be decoded \(the header declares "
                                           r"shape \(1000000, 1000000\)"):
        decode_prototypes(buffer.getvalue(), "p.astromodel")
