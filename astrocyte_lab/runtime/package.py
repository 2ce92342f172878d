"""The ``.astromodel`` package: one zip file with an ONNX graph and the metadata needed to use it.

Members (all at the archive root):

``metadata.json``
    The contract below (UTF-8 JSON). Written first, so a reader can inspect it without touching the model.
``model.onnx``
    The network. One input named ``image``: float32 ``(N, C, H, W)``, already preprocessed (see
    :mod:`astrocyte_lab.runtime.preprocess`), dynamic batch axis. Outputs are found by the names listed in
    ``metadata["outputs"]``.
``roi_mask.png`` (optional)
    8-bit grey PNG the size of the ROI crop box (or of the image when there is no crop); 255 = pixel used,
    0 = ignored.
``prototypes.npy`` (optional, continual learning)
    float32 ``(K, D)`` class prototypes in NumPy ``.npy`` format (read with ``allow_pickle=False``); row ``k``
    is the running mean of the L2-normalised embeddings learned for ``categories[k]``.

Other members are kept as they are when a predictor saves the package again (room for later additions).

``metadata.json``, format version 1 or 2 (unknown extra keys are allowed and preserved)::

    {"format": "astromodel",            # fixed
     "format_version": 1,               # readers refuse a newer version; 2 with input.dataset_resize
     "module": "classification",        # anomaly | classification | detection | segmentation
     "name": "my model",
     "created": "2026-11-24T10:00:00+00:00",   # ISO 8601, set by write_package when missing
     "modified": "...",                 # optional: set when a predictor saves learned classes
     "producer": "astrocyte-lab 0.1.0", # set by write_package when missing
     "categories": ["a", "b"],          # class names, in logit / prototype order, unique
     "input": {"width": 224, "height": 160,   # network input size (pixels)
               "channels": 3,                 # 1 (grey) or 3 (RGB) planes fed to the network
               "source_channels": 3,          # channels of the training images (informational)
               "bit_depth": 8,                # uint16 pixels are divided by 2**bit_depth - 1
               "resize": "bilinear",          # the only method so far
               "dataset_resize": {"width": 640, "height": 480, "method": "area"},   # optional, see below
               "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},   # one value per channel
     "roi": {"crop": [x, y, w, h] or null,   # pixels from the image's top-left corner
             "mask": "roi_mask.png" or null},
     "outputs": {"logits": "logits", "embedding": "embedding"},   # role -> ONNX output name
     "thresholds": {},                  # module specific; the classification predictor does not use it
     "segmentation": null or {         # segmentation packages only; null or absent = the defaults
         "background": 0,               # category index of "nothing" (default 0): outside the ROI, ignored pixels
         "tiling": null or {"tile": [w, h], "overlap": 0.25},   # tile == [input.width, input.height]
         "colours": [[r, g, b], ...] or null},                  # optional display colours, one per category
     "continual": null or {
         "prototypes": "prototypes.npy",
         "counts": [12, 7],             # samples learned per category
         "threshold": 0.6,              # best cosine similarity below this -> undefined_label
         "max_classes": null,           # or the most categories learn() may create
         "metric": "cosine",            # the only metric so far
         "temperature": 10.0,           # optional, default 10: scores = softmax(temperature * similarity)
         "undefined_label": "Undefined"}}

``input.dataset_resize`` (format version 2) is the size the training dataset's images were generated at: an
image of another size is first brought to it as generation did (``"area"``: OpenCV's ``INTER_AREA`` when both
sides shrink, else bilinear; see :func:`astrocyte_lab.runtime.preprocess.dataset_image`), and the ROI crop and
mask refer to that size. Packages carrying it are written as version 2, so that older readers, which would
skip the step and feed the model other pixels, refuse them; packages without it stay version 1 and keep
resizing straight to the input size.

Outputs per module: classification needs ``logits`` ``(N, K)`` unless it is continual; a continual package
needs ``embedding`` ``(N, D)`` (its labels come from the prototypes, the logits are not used). Segmentation
needs ``probabilities`` ``(N, K, H, W)`` float32, softmax already applied in the graph, channel ``k`` for
``categories[k]`` (at most 256 categories, as masks are uint8). Anomaly packages need ``score`` ``(N,)`` and
``anomaly_map`` ``(N, 1, H, W)`` and an ``anomaly`` section (threshold, heatmap ratio, tiling): see
:mod:`astrocyte_lab.runtime.anomaly`.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from astrocyte_lab.runtime.errors import FormatVersionError, PackageError
from astrocyte_lab.runtime.limits import METADATA_BYTES, above, env_name, image_pixels_problem, limit, strict_json

FORMAT_NAME = "astromodel"
FORMAT_VERSION = 2  # 2: input.dataset_resize
DATASET_RESIZE_METHODS: tuple[str, ...] = ("area",)
SUFFIX = ".astromodel"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
ROI_MASK_FILE = "roi_mask.png"
PROTOTYPES_FILE = "prototypes.npy"
MODULES: tuple[str, ...] = ("anomaly", "classification", "detection", "segmentation")
DEFAULT_TEMPERATURE = 10.0
DEFAULT_UNDEFINED_LABEL = "Undefined"
MAX_METADATA_BYTES = METADATA_BYTES
MAX_SEGMENTATION_CLASSES = 256  # class indices must fit the uint8 mask
MAX_CROP_ORIGIN = 1 << 31  # roi.crop x and y: no camera image is that wide


def producer() -> str:
    """``"astrocyte-lab X.Y.Z"`` from the installed distribution (without importing the heavy package)."""
    try:
        from importlib.metadata import version

        return f"astrocyte-lab {version('astrocyte-lab')}"
    except Exception:  # noqa: BLE001 - running from a source tree without installed metadata
        return "astrocyte-lab"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ validation

def _fail(where: str, message: str) -> PackageError:
    return PackageError(f"{where}: {message}")


def _show(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to ``width`` characters, for messages about absurd values."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def validate_metadata(metadata: Any, where: str = METADATA_FILE) -> None:
    """Raise :class:`PackageError` (or :class:`FormatVersionError`) naming ``where`` if ``metadata`` is unusable."""
    if not isinstance(metadata, Mapping):
        raise _fail(where, f"{METADATA_FILE} must hold a JSON object")
    if metadata.get("format") != FORMAT_NAME:
        raise _fail(where, f"not an {FORMAT_NAME} package (format is {metadata.get('format')!r})")
    version = metadata.get("format_version")
    if not _is_int(version) or version < 1:
        raise _fail(where, f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise FormatVersionError(f"{where}: package format version {version} is newer than this astrocyte-lab "
                                 f"reads (up to {FORMAT_VERSION}); upgrade astrocyte-lab to use it")
    module = metadata.get("module")
    if module not in MODULES:
        raise _fail(where, f"unknown module {module!r} (expected one of {', '.join(MODULES)})")
    if not isinstance(metadata.get("name", ""), str):
        raise _fail(where, "name must be a string")
    categories = metadata.get("categories")
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise _fail(where, "categories must be a list of non-empty strings")
    if len(set(categories)) != len(categories):
        raise _fail(where, "categories must be unique")
    _validate_input(metadata.get("input"), where)
    _validate_roi(metadata.get("roi"), where)
    outputs = metadata.get("outputs")
    if not isinstance(outputs, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                   for k, v in outputs.items()):
        raise _fail(where, "outputs must map roles to ONNX output names")
    if not isinstance(metadata.get("thresholds", {}), Mapping):
        raise _fail(where, "thresholds must be an object")
    continual = metadata.get("continual")
    if continual is not None:
        if module != "classification":
            raise _fail(where, f"continual learning is only defined for classification, not {module}")
        _validate_continual(continual, categories, where)
        if "embedding" not in outputs:
            raise _fail(where, "a continual package needs an 'embedding' output")
    elif module == "classification":
        if "logits" not in outputs:
            raise _fail(where, "a classification package needs a 'logits' output")
        if not categories:
            raise _fail(where, "a classification package needs at least one category")
    elif module == "segmentation":
        _validate_segmentation(metadata, where)
    if module in ("anomaly", "detection"):
        from astrocyte_lab.runtime.heads import validate_module_metadata

        validate_module_metadata(module, metadata, where)


def _validate_input(section: Any, where: str) -> None:
    if not isinstance(section, Mapping):
        raise _fail(where, "input must be an object")
    side = limit("input_side")
    for key in ("width", "height"):
        if not _is_int(section.get(key)) or section[key] <= 0:
            raise _fail(where, f"input.{key} must be a positive integer, got {_show(section.get(key))}")
        if section[key] > side:
            raise _fail(where, f"input.{key} is {_show(section[key])}, above the limit of {side} pixels; set "
                               f"{env_name('input_side')} to raise it")
    problem = image_pixels_problem(int(section["width"]), int(section["height"]))
    if problem:
        raise _fail(where, f"input: {problem}")
    channels = section.get("channels")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise _fail(where, f"input.channels must be 1 or 3, got {channels!r}")
    source = section.get("source_channels", channels)
    if not _is_int(source) or source <= 0:
        raise _fail(where, f"input.source_channels must be a positive integer, got {source!r}")
    depth = section.get("bit_depth", 8)
    if not _is_int(depth) or not 1 <= depth <= 16:
        raise _fail(where, f"input.bit_depth must be an integer from 1 to 16, got {depth!r}")
    if section.get("resize", "bilinear") != "bilinear":
        raise _fail(where, f"input.resize {section.get('resize')!r} is not supported (only 'bilinear')")
    _validate_dataset_resize(section.get("dataset_resize"), where)
    for key, default in (("mean", 0.0), ("std", 1.0)):
        values = section.get(key, [default] * channels)
        if not isinstance(values, list) or len(values) != channels or not all(_is_number(v) for v in values):
            raise _fail(where, f"input.{key} must be a list of {channels} numbers, got {values!r}")
    if any(float(v) == 0.0 for v in section.get("std", [1.0])):
        raise _fail(where, "input.std must not contain 0")


def _validate_dataset_resize(section: Any, where: str) -> None:
    """``input.dataset_resize``: null/absent, or ``{"width", "height", "method"}`` within the image limits."""
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise _fail(where, "input.dataset_resize must be an object or null")
    for key in ("width", "height"):
        if not _is_int(section.get(key)) or section[key] <= 0:
            raise _fail(where, f"input.dataset_resize.{key} must be a positive integer, got "
                               f"{_show(section.get(key))}")
    problem = image_pixels_problem(int(section["width"]), int(section["height"]))
    if problem:
        raise _fail(where, f"input.dataset_resize: {problem}")
    if section.get("method") not in DATASET_RESIZE_METHODS:
        raise _fail(where, f"input.dataset_resize.method {_show(section.get('method'))} is not supported "
                           f"(only {', '.join(repr(m) for m in DATASET_RESIZE_METHODS)})")


def format_version(metadata: Mapping[str, Any]) -> int:
    """The lowest format version that holds ``metadata``: 2 with ``input.dataset_resize``, else 1 (so older
    readers still open packages that need nothing new, and refuse those they would misread)."""
    return 2 if (metadata.get("input") or {}).get("dataset_resize") else 1


def _validate_roi(section: Any, where: str) -> None:
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise _fail(where, "roi must be an object or null")
    crop = section.get("crop")
    if crop is not None:
        if not isinstance(crop, list) or len(crop) != 4 or not all(_is_int(v) for v in crop):
            raise _fail(where, f"roi.crop must be [x, y, w, h] integers or null, got {_show(crop)}")
        x, y, w, h = crop
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise _fail(where, f"roi.crop needs x, y >= 0 and w, h > 0, got {_show(crop)}")
        problem = image_pixels_problem(int(w), int(h)) or (
            f"x, y must be below {MAX_CROP_ORIGIN:,}" if max(x, y) >= MAX_CROP_ORIGIN else None)
        if problem:
            raise _fail(where, f"roi.crop {_show(crop)}: {problem}")
    mask = section.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask):
        raise _fail(where, f"roi.mask must be a member name or null, got {mask!r}")


def _validate_segmentation(metadata: Mapping[str, Any], where: str) -> None:
    """The ``probabilities`` output and the optional ``segmentation`` section (see the module docstring)."""
    categories = metadata["categories"]
    if "probabilities" not in metadata["outputs"]:
        raise _fail(where, "a segmentation package needs a 'probabilities' output")
    if not categories:
        raise _fail(where, "a segmentation package needs at least one category")
    if len(categories) > MAX_SEGMENTATION_CLASSES:
        raise _fail(where, f"a segmentation package has at most {MAX_SEGMENTATION_CLASSES} categories (the mask "
                           f"is uint8), got {len(categories)}")
    section = metadata.get("segmentation")
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise _fail(where, "segmentation must be an object or null")
    background = section.get("background", 0)
    if not _is_int(background) or not 0 <= background < len(categories):
        raise _fail(where, f"segmentation.background must be a category index from 0 to {len(categories) - 1}, "
                           f"got {background!r}")
    tiling = section.get("tiling")
    if tiling is not None:
        if not isinstance(tiling, Mapping):
            raise _fail(where, "segmentation.tiling must be an object or null")
        tile = tiling.get("tile")
        if not isinstance(tile, list) or len(tile) != 2 or not all(_is_int(v) and v > 0 for v in tile):
            raise _fail(where, f"segmentation.tiling.tile must be [width, height] positive integers, got {tile!r}")
        size = [metadata["input"]["width"], metadata["input"]["height"]]
        if list(tile) != size:
            raise _fail(where, f"segmentation.tiling.tile {tile} must equal the input size {size}")
        overlap = tiling.get("overlap", 0.0)
        if not _is_number(overlap) or not 0.0 <= float(overlap) < 1.0:
            raise _fail(where, f"segmentation.tiling.overlap must be a number in [0, 1), got {overlap!r}")
    colours = section.get("colours")
    if colours is not None:
        if not isinstance(colours, list) or len(colours) != len(categories) or not all(
                isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)
                for c in colours):
            raise _fail(where, f"segmentation.colours must hold one [r, g, b] (0-255) per category "
                               f"({len(categories)}), got {colours!r}")


def _validate_continual(section: Any, categories: list[str], where: str) -> None:
    if not isinstance(section, Mapping):
        raise _fail(where, "continual must be an object or null")
    if not isinstance(section.get("prototypes"), str) or not section["prototypes"]:
        raise _fail(where, "continual.prototypes must name the prototypes member")
    counts = section.get("counts")
    if not isinstance(counts, list) or len(counts) != len(categories) or \
            not all(_is_int(c) and c >= 0 for c in counts):
        raise _fail(where, f"continual.counts must hold one non-negative integer per category "
                           f"({len(categories)}), got {counts!r}")
    if not _is_number(section.get("threshold")):
        raise _fail(where, f"continual.threshold must be a number, got {section.get('threshold')!r}")
    limit = section.get("max_classes")
    if limit is not None and (not _is_int(limit) or limit < max(1, len(categories))):
        raise _fail(where, f"continual.max_classes must be null or an integer >= the number of categories "
                           f"({len(categories)}), got {limit!r}")
    if section.get("metric", "cosine") != "cosine":
        raise _fail(where, f"continual.metric {section.get('metric')!r} is not supported (only 'cosine')")
    temperature = section.get("temperature", DEFAULT_TEMPERATURE)
    if not _is_number(temperature) or temperature <= 0:
        raise _fail(where, f"continual.temperature must be a positive number, got {temperature!r}")
    undefined = section.get("undefined_label", DEFAULT_UNDEFINED_LABEL)
    if not isinstance(undefined, str) or not undefined:
        raise _fail(where, "continual.undefined_label must be a non-empty string")
    if undefined in categories:
        raise _fail(where, f"continual.undefined_label {undefined!r} is also a category")


def _check_members(metadata: Mapping[str, Any], files: Mapping[str, bytes], where: str) -> None:
    """Cross-check metadata against the members: referenced files exist, shapes agree."""
    if MODEL_FILE not in files:
        raise _fail(where, f"{MODEL_FILE} is missing")
    roi = metadata.get("roi") or {}
    if roi.get("mask") is not None:
        if roi["mask"] not in files:
            raise _fail(where, f"roi.mask names {roi['mask']!r} but the package has no such member")
        mask = decode_mask(files[roi["mask"]], where)
        crop = roi.get("crop")
        if crop is not None and mask.shape != (crop[3], crop[2]):
            raise _fail(where, f"the ROI mask is {mask.shape[1]}x{mask.shape[0]} but the crop box is "
                               f"{crop[2]}x{crop[3]}")
    continual = metadata.get("continual")
    if continual is not None:
        name = continual["prototypes"]
        if name not in files:
            raise _fail(where, f"continual.prototypes names {name!r} but the package has no such member")
        prototypes = decode_prototypes(files[name], where)
        if prototypes.shape[0] != len(metadata["categories"]):
            raise _fail(where, f"{name} holds {prototypes.shape[0]} prototypes for "
                               f"{len(metadata['categories'])} categories")


# ------------------------------------------------------------------------------------------------ members

def encode_mask(mask: np.ndarray) -> bytes:
    """PNG bytes of a 2-D mask (bool, or uint8 with 255 = used)."""
    from PIL import Image

    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or array.size == 0:
        raise PackageError(f"the ROI mask must be a non-empty 2-D array, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise PackageError(f"the ROI mask must be bool or uint8, got {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def decode_mask(data: bytes, where: str = ROI_MASK_FILE) -> np.ndarray:
    """The ROI mask as a 2-D uint8 array (its declared size checked against the pixel limit before decoding)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            problem = image_pixels_problem(*im.size)
            if problem:
                raise _fail(where, f"the ROI mask: {problem}")
            return np.asarray(im.convert("L")).copy()
    except PackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a corrupt member
        raise _fail(where, f"the ROI mask cannot be decoded ({exc})") from exc


def encode_prototypes(prototypes: np.ndarray) -> bytes:
    array = np.asarray(prototypes, dtype=np.float32)
    if array.ndim != 2:
        raise PackageError(f"prototypes must be a (K, D) array, got shape {array.shape}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_prototypes(data: bytes, where: str = PROTOTYPES_FILE) -> np.ndarray:
    """The ``(K, D)`` float32 prototypes; the ``.npy`` header's shape must match the bytes that follow it."""
    try:
        _check_npy_header(data)
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - truncated or not .npy
        raise _fail(where, f"the prototypes cannot be decoded ({exc})") from exc
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise _fail(where, f"the prototypes must be a float (K, D) array, got {array.dtype} {array.shape}")
    return array.astype(np.float32)


def _check_npy_header(data: bytes) -> None:
    """Refuse a ``.npy`` whose header declares more values than its bytes hold (numpy would allocate them first)."""
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    version = npy.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = npy.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = npy.read_array_header_2_0(stream)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    values = math.prod(int(n) for n in shape)
    if values * dtype.itemsize > len(data) - stream.tell():
        raise ValueError(f"the header declares shape {shape} ({dtype}) but only {len(data) - stream.tell():,} "
                         "bytes follow it")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ------------------------------------------------------------------------------------------------ write / read

def write_package(path: str | os.PathLike[str], onnx_bytes: bytes | str | os.PathLike[str],
                  metadata: Mapping[str, Any], roi_mask: np.ndarray | bytes | None = None,
                  prototypes: np.ndarray | None = None, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write an ``.astromodel`` file atomically (a temporary file in the same folder, then a rename).

    ``onnx_bytes`` is the serialised model (or a path to an ``.onnx`` file). ``metadata`` is completed and
    validated, not modified: ``format``/``format_version`` are set (the lowest version that holds the metadata),
    ``created`` and ``producer`` filled when missing, ``roi.mask`` set to ``roi_mask.png`` when ``roi_mask`` is
    given (a 2-D bool/uint8 array, or PNG bytes) and ``continual.prototypes`` to ``prototypes.npy`` when
    ``prototypes`` (float ``(K, D)``) are given. Returns the path written. Raises :class:`PackageError` on bad input.
    """
    path = Path(path)
    where = str(path)
    if isinstance(onnx_bytes, str | os.PathLike):
        model = Path(onnx_bytes).read_bytes()
    else:
        model = bytes(onnx_bytes)
    if not model:
        raise _fail(where, "the ONNX model is empty")
    try:
        meta = json.loads(json.dumps(dict(metadata), default=_json_default))
    except (TypeError, ValueError) as exc:
        raise _fail(where, f"metadata is not JSON serialisable ({exc})") from exc
    meta["format"] = FORMAT_NAME
    meta["format_version"] = format_version(meta)
    meta.setdefault("created", now_iso())
    meta.setdefault("producer", producer())
    meta.setdefault("name", path.name.removesuffix(SUFFIX))
    meta.setdefault("thresholds", {})
    meta.setdefault("continual", None)
    roi = meta.get("roi")
    _validate_roi(roi, where)
    if roi is None or isinstance(roi, dict):
        meta["roi"] = {"crop": None, "mask": None, **(roi or {})}
    files: dict[str, bytes] = {}
    for name, data in (extra_files or {}).items():
        if name in (METADATA_FILE, MODEL_FILE) or not isinstance(name, str) or _unsafe_name(name) or name.endswith("/"):
            raise _fail(where, f"extra member name {name!r} is reserved or unsafe")
        files[name] = bytes(data)
    files[MODEL_FILE] = model
    if roi_mask is not None:
        files[ROI_MASK_FILE] = bytes(roi_mask) if isinstance(roi_mask, bytes | bytearray) else encode_mask(roi_mask)
        meta["roi"]["mask"] = ROI_MASK_FILE
    if prototypes is not None:
        if not isinstance(meta.get("continual"), dict):
            raise _fail(where, "prototypes given but the metadata has no 'continual' section")
        files[PROTOTYPES_FILE] = encode_prototypes(prototypes)
        meta["continual"]["prototypes"] = PROTOTYPES_FILE
    validate_metadata(meta, where)
    _check_members(meta, files, where)
    text = json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8")
    _atomic_zip(path, [(METADATA_FILE, text)] + sorted(files.items(), key=lambda item: item[0] != MODEL_FILE))
    return path


def _atomic_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    temp = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w") as archive:
            for name, data in members:
                # JSON compresses well; ONNX weights, PNG and .npy barely do, so store them for fast loading
                method = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
                info = zipfile.ZipInfo(name, date_time=datetime.now().timetuple()[:6])
                info.compress_type = method
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        with open(temp, "rb+") as synced:
            os.fsync(synced.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:  # make the rename durable where the platform allows it
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_package(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read and validate an ``.astromodel`` file: ``(metadata, {member name: bytes})``.

    The members dict holds every member except ``metadata.json``. Before any member is read, the archive's
    declared sizes are checked against :mod:`astrocyte_lab.runtime.limits` (member count, uncompressed total,
    compression ratio) and every member must be a plain file with a safe name; each member is then read with a
    reader that stops at its declared size. Raises :class:`PackageError` naming the file when it is missing
    members, corrupt, above a limit or not a package, and :class:`FormatVersionError` when it was written by a
    newer format version.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such package file")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            _check_directory(handle, size, where)
            with zipfile.ZipFile(handle) as archive:
                infos = _checked_members(archive.infolist(), size, where)
                metadata = _read_metadata(archive, infos, where)
                validate_metadata(metadata, where)
                files = {name: _read_member(archive, info, where)
                         for name, info in infos.items() if name != METADATA_FILE and not info.is_dir()}
    except PackageError:
        raise
    except zipfile.BadZipFile as exc:
        raise _fail(where, f"not an {FORMAT_NAME} package or corrupt ({exc})") from exc
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError, ValueError, OverflowError, struct.error,
            zlib.error) as exc:  # zipfile lets these through for crafted headers and corrupt deflate streams
        raise _fail(where, f"cannot read the package ({exc})") from exc
    _check_members(metadata, files, where)
    return metadata, files


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_DIRECTORY_ENTRY_BYTES = 46  # fixed part of one central directory entry


def _check_directory(handle: Any, size: int, where: str) -> None:
    """Refuse an archive whose end record declares more members than the limit, before zipfile parses them.

    zipfile builds one Python object per central directory entry, several times the entry's size on disk, so
    the declared count (or, where it is not declared, the directory's size) is checked first. An archive
    without a readable end record is left for zipfile to refuse.
    """
    tail = min(size, _EOCD.size + 0xFFFF)
    handle.seek(size - tail)
    data = handle.read(tail)
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(data):
        return
    _, _, _, _, entries, directory, _, _ = _EOCD.unpack_from(data, at)
    locator = at - _ZIP64_LOCATOR.size
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0 and \
            data[locator:locator + 4] == b"PK\x06\x07":
        offset = _ZIP64_LOCATOR.unpack_from(data, locator)[2]
        handle.seek(min(offset, size))
        record = handle.read(_ZIP64_EOCD.size)
        if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
            entries, directory = _ZIP64_EOCD.unpack(record)[7:9]
    bound = limit("archive_members")
    if entries > bound or directory > bound * (_DIRECTORY_ENTRY_BYTES + 3 * 0xFFFF):
        raise _fail(where, f"the archive declares {entries:,} members in a {directory:,}-byte directory, above the "
                           f"limit of {bound:,} members; set {env_name('archive_members')} to raise it")


def _checked_members(infos: list[zipfile.ZipInfo], size: int, where: str) -> dict[str, zipfile.ZipInfo]:
    """``{name: info}`` after the checks on every member's name, type and declared size (see :func:`read_package`)."""
    problem = above("archive_members", len(infos), "number of members")
    if problem:
        raise _fail(where, problem)
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_member(info, where)
        if info.filename in members:
            raise _fail(where, f"member {info.filename!r} appears twice")
        members[info.filename] = info
    total = sum(info.file_size for info in infos)
    problem = above("package_bytes", total, "uncompressed size of the members (bytes)")
    if not problem and total > limit("archive_ratio_floor_bytes"):
        problem = above("archive_ratio", total // max(size, 1), "compression ratio (uncompressed / file size)")
    if problem:
        raise _fail(where, problem)
    return members


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a member that is not a plain, unencrypted, stored or deflated file with a safe relative name."""
    name = info.filename
    if _unsafe_name(name):
        raise _fail(where, f"member name {name!r} is absolute or unsafe")
    kind = (info.external_attr >> 16) & 0o170000
    if kind not in (0, 0o100000, 0o040000):  # unset (DOS), regular file, folder: no link, device or FIFO
        raise _fail(where, f"member {name!r} is not a plain file (mode {kind:o})")
    if info.flag_bits & 0x1:
        raise _fail(where, f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _fail(where, f"member {name!r} uses compression method {info.compress_type}; only stored and "
                           "deflated members are read")


def _unsafe_name(name: str) -> bool:
    """True for a member name that could reach outside a folder it were extracted to, or is ambiguous there:
    empty, absolute, a drive letter, a backslash or NUL, or an empty, ``.`` or ``..`` part (a trailing ``/``
    marks a folder)."""
    parts = name.removesuffix("/").split("/")
    return not name or name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0] or \
        any(part in ("", ".", "..") for part in parts)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """A member's bytes, read no further than its declared size (zipfile checks the CRC at the end)."""
    with archive.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _fail(where, f"member {info.filename!r} holds {len(data):,} bytes, not the {info.file_size:,} declared")
    return data


def _read_metadata(archive: zipfile.ZipFile, infos: Mapping[str, zipfile.ZipInfo], where: str) -> Any:
    """``metadata.json`` parsed strictly (UTF-8, bounded size and depth, no NaN / Infinity)."""
    info = infos.get(METADATA_FILE)
    if info is None:
        raise _fail(where, f"not an {FORMAT_NAME} package ({METADATA_FILE} is missing)")
    if info.file_size > MAX_METADATA_BYTES:
        raise _fail(where, f"{METADATA_FILE} is {info.file_size:,} bytes, above the limit of {MAX_METADATA_BYTES:,}")
    try:
        return strict_json(_read_member(archive, info, where))
    except ValueError as exc:
        if isinstance(exc, PackageError):
            raise
        raise _fail(where, f"{METADATA_FILE} is not valid JSON ({exc})") from None
