"""Fuzzing the torch-free runtime: malformed ``.astromodel`` packages and hostile images.

Every case runs ``load_package`` (and a prediction) in a forked child under an address-space limit (the
``bounded`` fixture): it must succeed or raise the runtime's own :class:`AstromodelError`, never another
exception type, and stay within its memory allowance. Packages are made by hand (bit flips and truncations of a
valid tiny package, zips of random members, random metadata JSON trees); images are random arrays of every
dtype and shape, with NaN / infinity, views that declare huge sizes without holding them, and image files whose
headers declare absurd sizes.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: F401 - imported here so the children's memory allowance does not pay for it
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from astrocyte_lab.runtime import load_package, write_package

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_MIB = 768


# ------------------------------------------------------------------------------------------------ a valid package

def _tiny_onnx(channels: int = 3, dim: int = 4, classes: int = 2) -> bytes:
    """``embedding = mean over pixels @ W``, ``logits = embedding @ V``: a classifier of any input size."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(channels, dim)).astype(np.float32)
    v = rng.normal(size=(dim, classes)).astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "W"], ["embedding"]),
             helper.make_node("MatMul", ["embedding", "V"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(v, "V")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fuzz")
    model.ir_version = 9
    return model.SerializeToString()


def _metadata(continual: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "module": "classification", "name": "fuzz", "categories": ["a", "b"],
        "input": {"width": 12, "height": 8, "channels": 3, "source_channels": 3, "bit_depth": 8,
                  "resize": "bilinear", "mean": [0.5] * 3, "std": [0.25] * 3},
        "roi": {"crop": [1, 1, 20, 14], "mask": None},
        "outputs": {"logits": "logits", "embedding": "embedding"}, "thresholds": {}, "continual": None}
    if continual:
        meta["continual"] = {"prototypes": "prototypes.npy", "counts": [1, 2], "threshold": 0.5, "max_classes": 4,
                             "metric": "cosine", "undefined_label": "Undefined"}
    return meta


@functools.cache
def valid_package(continual: bool = False) -> bytes:
    """The bytes of a small valid package (ROI crop and mask, an extra member; prototypes when ``continual``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_package(Path(folder) / "valid.astromodel", _tiny_onnx(), _metadata(continual),
                             roi_mask=np.full((14, 20), 255, np.uint8),
                             prototypes=np.eye(2, 4, dtype=np.float32) if continual else None,
                             extra_files={"notes/readme.txt": b"kept"})
        return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# ------------------------------------------------------------------------------------------------ child work

IMAGE = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)


def load_and_predict(path: str, image: Any = None) -> tuple[str, float] | None:
    """What a user does with a package: load it, predict one image; a small picklable summary comes back."""
    predictor = load_package(path, threads=1)
    prediction = predictor.predict(IMAGE if image is None else image)
    assert np.isfinite(prediction.score), "a prediction with a non-finite score"
    return prediction.label, float(prediction.score)


def run_package(bounded: Any, data: bytes, image: Any = None) -> Any:
    """Write ``data`` to a fresh folder, run :func:`load_and_predict` bounded, check nothing else was written."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.astromodel"
        path.write_bytes(data)
        result = bounded(load_and_predict, str(path), image, memory_mib=MEMORY_MIB, timeout_s=60)
        assert sorted(p.name for p in Path(folder).iterdir()) == ["fuzz.astromodel"]
        assert path.read_bytes() == data
    return result


def test_the_valid_package_predicts(bounded: Any) -> None:
    for continual in (False, True):
        label, score = run_package(bounded, valid_package(continual))
        assert label in ("a", "b", "Undefined") and 0 <= score <= 1


# ------------------------------------------------------------------------------------------------ damaged zips

@FUZZ
@given(continual=st.booleans(),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
       cut=st.none() | st.floats(0, 1))
def test_bit_flips_and_truncations(bounded: Any, continual: bool, flips: list[tuple[float, int]],
                                   cut: float | None) -> None:
    data = bytearray(valid_package(continual))
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    if cut is not None:
        data = data[:int(cut * len(data))]
    run_package(bounded, bytes(data))


@FUZZ
@given(continual=st.booleans(), where=st.sampled_from(["head", "directory", "end"]),
       junk=st.binary(min_size=1, max_size=64))
def test_junk_spliced_into_the_structures(bounded: Any, continual: bool, where: str, junk: bytes) -> None:
    data = valid_package(continual)
    at = {"head": 0, "directory": data.find(b"PK\x01\x02"), "end": data.find(b"PK\x05\x06")}[where]
    run_package(bounded, data[:at + 4] + junk + data[at + 4 + len(junk):])


NAMES = st.sampled_from(["metadata.json", "model.onnx", "roi_mask.png", "prototypes.npy", "../escape", "/abs/x",
                         "a/../../b", "C:\\x", "dir/", "", "notes/readme.txt", "x" * 300]) | \
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
MODES = st.sampled_from([0, 0o100644, 0o120777, 0o040755, 0o010644, 0o060644, 0o140777])
METHODS = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


@st.composite
def member_data(draw: st.DrawFn) -> bytes:
    valid = _members(valid_package(True))
    return draw(st.sampled_from(sorted(valid.values())) | st.binary(max_size=300))


@FUZZ
@given(members=st.lists(st.tuples(NAMES, member_data(), MODES, METHODS), max_size=7), keep_valid=st.booleans())
def test_zips_of_random_members(bounded: Any, members: list[tuple[str, bytes, int, int]], keep_valid: bool) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
        if keep_valid:
            for name, data in _members(valid_package(True)).items():
                archive.writestr(name, data)
        for name, data, mode, method in members:
            info = zipfile.ZipInfo(name or "_")
            info.external_attr, info.compress_type = mode << 16, method
            archive.writestr(info, data)
    run_package(bounded, buffer.getvalue())


# ------------------------------------------------------------------------------------------------ metadata trees

LEAVES = st.none() | st.booleans() | st.sampled_from([0, -1, 1, 2, 3, 4, 255, 8193, 2 ** 31, 2 ** 63, 10 ** 30]) | \
    st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
TREES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
PLACES = ["format", "format_version", "module", "categories", "input", "input.width", "input.height",
          "input.channels", "input.bit_depth", "input.mean", "input.std", "roi", "roi.crop", "roi.mask", "outputs",
          "thresholds", "continual", "continual.counts", "continual.threshold", "continual.prototypes",
          "continual.max_classes", "segmentation", "anomaly", "detection", "name"]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PLACES), TREES), min_size=1, max_size=4))
def test_random_metadata_trees(bounded: Any, changes: list[tuple[str, Any]]) -> None:
    members = _members(valid_package(True))
    metadata = json.loads(members["metadata.json"])
    for place, value in changes:
        *parents, key = place.split(".")
        section = metadata
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section[key] = value
    members["metadata.json"] = json.dumps(metadata).encode()
    run_package(bounded, _zip(members))


@FUZZ
@given(text=st.sampled_from([b'{"format": NaN}', b"[" * 100_000, b'{"a": ' * 5000, b"\xff\xfe{}", b"", b"null",
                             b'{"format": "astromodel", "format_version": 1e999}', b'{"x": ' + b"9" * 5000 + b"}"])
       | st.binary(max_size=200))
def test_raw_metadata_text(bounded: Any, text: bytes) -> None:
    members = _members(valid_package())
    members["metadata.json"] = text
    run_package(bounded, _zip(members))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ images

DTYPES = st.sampled_from([np.uint8, np.uint16, np.float16, np.float32, np.float64, np.int8, np.int32, np.int64,
                          np.bool_, np.complex64])


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 40), max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    scale = draw(st.sampled_from([1.0, 255.0, 65535.0, 1e30]))
    with np.errstate(over="ignore", invalid="ignore"):  # 1e30 overflows the small types: part of the fuzz
        array = (rng.random(shape) * scale).astype(dtype) if dtype.kind != "b" else rng.random(shape) > 0.5
    if dtype.kind == "f" and array.size and draw(st.booleans()):
        array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return array


HUGE = st.sampled_from([(20_000, 20_000), (1, 10 ** 9), (10 ** 6, 10 ** 6, 3), (2 ** 31, 2), (16_384, 16_384),
                        (16_385, 16_384, 3), (3, 10 ** 8, 4)])


@FUZZ
@given(image=images() | st.tuples(HUGE, DTYPES).map(lambda spec: np.broadcast_to(np.zeros((), spec[1]), spec[0])))
def test_random_images(bounded: Any, image: np.ndarray) -> None:
    run_package(bounded, valid_package(), image)


def _png(width: int, height: int, body: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


@FUZZ
@given(width=st.integers(1, 2 ** 31 - 1), height=st.integers(1, 2 ** 31 - 1), body=st.binary(max_size=64),
       raw=st.none() | st.binary(max_size=200))
def test_image_files_with_absurd_headers(bounded: Any, width: int, height: int, body: bytes,
                                         raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "image.png"
        image.write_bytes(_png(width, height, body) if raw is None else raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning for large declared sizes
            run_package(bounded, valid_package(), str(image))


@pytest.mark.parametrize("size", [288 << 20])
def test_zero_bomb_at_the_default_limits(bounded: Any, size: int) -> None:
    buffer = io.BytesIO(valid_package())
    with zipfile.ZipFile(buffer, "a") as archive:
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(size >> 24):
                member.write(bytes(1 << 24))
    refused = run_package(bounded, buffer.getvalue())
    assert "compression ratio" in refused.message
