"""Fuzz every annotation reader of :mod:`astrocyte_lab.formats` with malformed input, in a memory-capped child.

Readers (see ``formats/registry.py``): COCO (with its RLE masks), Pascal VOC, YOLO (boxes, oriented boxes,
polygons, names files), KITTI, text/CSV databases (global and one file per image) and DeepPCB-style pairs
lists; plus the registry's ``database_from_dict`` and the image header check every import goes through.
Each generated case is written to a fresh folder and read through ``bounded``: the reader must return or
raise a project error (never another exception, never past the memory allowance or the time limit), the
images it returns must lie inside its image folder (absolute and ``..`` paths are never followed), and
nothing beside the case is written.
"""

from __future__ import annotations

import copy
import json
import shutil
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrocyte_lab.data import imageio
from astrocyte_lab.formats import (
    CocoDatabase,
    KittiDatabase,
    TextDatabase,
    TextFormat,
    VocDatabase,
    YoloDatabase,
    database_from_dict,
    rle,
)
from astrocyte_lab.formats.registry import DATABASE_FORMATS
from astrocyte_lab.formats.text import ROLES

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

W, H = 64, 48
PNG = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))[1].tobytes()

# --- generated values ---

HUGE = st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1, 60000, 1 << 40])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HUGE, st.floats(), st.text(max_size=12))
JSON_JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
NUMBER_TEXT = st.one_of(
    st.floats(-100, 200).map(lambda v: f"{v:.3f}"), st.integers(-10, 100).map(str), st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "", "abc", "0x10", "1_000", "\u0663", "9" * 5000, "-0"]),
    st.text(max_size=6))
FRACTION_TEXT = st.one_of(st.floats(-0.5, 1.5).map(lambda v: f"{v:.6f}"), NUMBER_TEXT)
#: image references; {outside} is replaced by the absolute path of a folder beside the image folder
IMAGE_PATHS = st.one_of(
    st.sampled_from(["img0.png", "img0.jpg", "img0", "{outside}/secret.png", "../outside/secret.png",
                     "sub/../../outside/secret.png", "C:\\outside\\secret.png", "\\\\server\\share\\img0.png",
                     "..", "/", "", ".", "./img0.png", "{outside}/img0.png", "images/img0.png"]),
    st.text(max_size=12))
WORDS = st.one_of(st.sampled_from(["nut", "bolt", "DontCare", "a b", "\u00e9t\u00e9", "\t", '"q"']),
                  st.text(max_size=8))


def write_case(root: Path, files: dict[str, str | bytes]) -> Path:
    """A fresh case folder: ``images/img0.png``, ``outside/secret.png``, ``outside/img0.png`` and ``files``."""
    case = Path(tempfile.mkdtemp(dir=root))
    for name in ("images/img0.png", "outside/secret.png", "outside/img0.png"):
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).write_bytes(PNG)
    for name, content in files.items():
        path = case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.replace("{outside}", str(case / "outside")) if isinstance(content, str) else content
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return case


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def read_images(make_reader: Callable[[], Any]) -> list[str]:
    """Build and run a reader (in the child); the image paths it found. Its warnings are expected, not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = make_reader().read()
    return [str(entry.image) for entry in parsed.images]


def check_case(bounded: Callable[..., Any], case: Path, make_reader: Callable[[], Any]) -> None:
    """Run ``make_reader().read()`` bounded; its images stay in ``case/images`` and the case is unchanged."""
    before = snapshot(case)
    try:
        result = bounded(read_images, make_reader, timeout_s=60)
        if isinstance(result, list):
            images = (case / "images").resolve()
            assert all(Path(p).resolve().is_relative_to(images) for p in result), result
        assert snapshot(case) == before, "the reader wrote into its folders"
    finally:
        shutil.rmtree(case, ignore_errors=True)


# --- COCO and RLE ---


def coco_base(file_name: str) -> dict[str, Any]:
    mask = np.zeros((H, W), np.uint8)
    mask[5:20, 5:30] = 1
    return {
        "images": [{"id": 1, "file_name": file_name, "width": W, "height": H}],
        "categories": [{"id": 1, "name": "nut"}, {"id": 2, "name": "bolt"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5, 5, 25, 15], "iscrowd": 0,
             "segmentation": rle.encode(mask)},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0,
             "segmentation": [[5, 5, 15, 5, 10, 15]]},
        ],
    }


RLE_JUNK = st.fixed_dictionaries({
    "size": st.one_of(st.just([60000, 60000]), st.just([H, W]), st.lists(st.one_of(st.integers(), HUGE), max_size=3),
                      JSON_JUNK),
    "counts": st.one_of(st.text(st.characters(min_codepoint=40, max_codepoint=120), max_size=40),
                        st.lists(st.one_of(st.integers(-5, 5000), HUGE), max_size=6), JSON_JUNK)})


@st.composite
def coco_documents(draw: st.DrawFn) -> str:
    """A valid COCO document with 1-4 values replaced by junk (wrong types, NaN, huge numbers...), as text."""
    document = coco_base(draw(IMAGE_PATHS))
    for _ in range(draw(st.integers(1, 4))):
        parent: Any = document
        key = draw(st.sampled_from(list(document)))
        while isinstance(parent[key], dict | list) and parent[key] and draw(st.booleans()):  # walk down
            parent = parent[key]
            key = draw(st.sampled_from(list(parent) if isinstance(parent, dict) else list(range(len(parent)))))
        parent[key] = copy.deepcopy(draw(st.one_of(JSON_JUNK, RLE_JUNK)))  # st.just gives one shared object
    text = json.dumps(document, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:  # now and then, broken syntax too
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "[", "}", ",", "\ufeff", "\udcff", "NaN"])) + text[cut + 1:]
    return text


@FUZZ
@given(text=coco_documents())
def test_coco_reader(bounded, tmp_path, outside_untouched, text):
    case = write_case(tmp_path, {"instances.json": text})
    check_case(bounded, case, lambda: CocoDatabase(case / "instances.json", case / "images"))
    outside_untouched()


def test_coco_rle_bomb_of_300_bytes_is_refused_within_the_memory_cap(bounded, tmp_path):
    """Issue 19: a 300-byte COCO file whose RLE declares 60000 x 60000 used to allocate 3.35 GiB."""
    bomb = {"images": [{"id": 1, "file_name": "img0.png"}], "categories": [{"id": 1, "name": "nut"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0,
                             "segmentation": {"size": [60000, 60000], "counts": [3_599_999_999, 1]}}]}
    text = json.dumps(bomb)
    assert len(text) < 300
    for image, message in ((PNG, "is not the image's size"), (b"not a png", "above the limit")):
        case = write_case(tmp_path, {"instances.json": text, "images/img0.png": image})
        result = bounded(read_images, lambda c=case: CocoDatabase(c / "instances.json", c / "images"),
                         memory_mib=512)
        assert message in getattr(result, "message", ""), result


def test_coco_deeply_nested_json_is_refused(bounded, tmp_path):
    case = write_case(tmp_path, {"instances.json": '{"images": ' + "[" * 200_000 + "]" * 200_000 + "}"})
    result = bounded(read_images, lambda: CocoDatabase(case / "instances.json", case / "images"))
    assert result.type == "LimitError" and "instances.json" in result.message


# --- Pascal VOC ---


def xml_text(draw: st.DrawFn) -> str:
    return escape(draw(st.one_of(NUMBER_TEXT, IMAGE_PATHS, WORDS)))


@st.composite
def voc_objects(draw: st.DrawFn) -> str:
    name = f"<name>{xml_text(draw)}</name>" if draw(st.integers(0, 5)) else ""
    kind = draw(st.sampled_from(["bndbox", "robndbox", "polygon", "pt-polygon", "none"]))
    tags = {"bndbox": ["xmin", "ymin", "xmax", "ymax"], "robndbox": ["cx", "cy", "w", "h", "angle"],
            "polygon": [f"{axis}{i}" for i in range(1, draw(st.integers(1, 5))) for axis in "xy"]}
    if kind in tags:
        inner = "".join(f"<{tag}>{xml_text(draw)}</{tag}>" for tag in tags[kind] if draw(st.integers(0, 9)))
        shape = f"<{kind}>{inner}</{kind}>"
    elif kind == "pt-polygon":
        shape = "<polygon>" + "".join(f"<pt><x>{xml_text(draw)}</x><y>{xml_text(draw)}</y></pt>"
                                      for _ in range(draw(st.integers(0, 5)))) + "</polygon>"
    else:
        shape = ""
    return f"<object>{name}{shape}</object>"


@st.composite
def voc_files(draw: st.DrawFn) -> bytes:
    declaration = draw(st.one_of(st.just(""), st.just('<?xml version="1.0"?>\n'), st.sampled_from(
        ["utf-8", "latin-1", "utf-16", "no-such-codec", "shift_jis", "cp1252", "", "utf-32"]).map(
        lambda e: f'<?xml version="1.0" encoding="{e}"?>\n')))
    root = draw(st.sampled_from(["annotation"] * 5 + ["html", "a:b"]))
    size = (f"<size><width>{xml_text(draw)}</width><height>{xml_text(draw)}</height></size>"
            if draw(st.booleans()) else "")
    filename = f"<filename>{escape(draw(IMAGE_PATHS))}</filename>" if draw(st.integers(0, 4)) else ""
    objects = "".join(draw(st.lists(voc_objects(), max_size=4)))
    text = f"{declaration}<{root}>{filename}{size}{objects}</{root}>"
    choice = draw(st.integers(0, 9))
    if choice == 0:
        text = text[:draw(st.integers(0, len(text)))]
    elif choice == 1:
        text = "<annotation>" + "<object>" * 5000 + "</object>" * 5000 + "</annotation>"
    elif choice == 2:
        text = '<!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>'
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(content=voc_files())
def test_voc_reader(bounded, tmp_path, outside_untouched, content):
    case = write_case(tmp_path, {"ann/img0.xml": content})
    check_case(bounded, case, lambda: VocDatabase(case / "ann", case / "images"))
    outside_untouched()


# --- YOLO, KITTI ---


@st.composite
def yolo_lines(draw: st.DrawFn) -> str:
    count = draw(st.sampled_from([0, 1, 4, 5, 5, 6, 7, 9, 9, 11]))
    fields = [draw(st.one_of(st.integers(-1, 3).map(str), NUMBER_TEXT))]
    fields += [draw(FRACTION_TEXT) for _ in range(max(count - 1, 0))]
    return " ".join(field.replace("\n", " ") for field in fields[:count])


@FUZZ
@given(lines=st.lists(yolo_lines(), max_size=6), names=st.lists(WORDS, max_size=4), yaml=st.booleans())
def test_yolo_reader(bounded, tmp_path, outside_untouched, lines, names, yaml):
    names_file = "labels/data.yaml" if yaml else "labels/classes.txt"
    names_text = f"names: [{', '.join(names)}]\n" if yaml else "\n".join(["nut", "bolt", *names]) + "\n"
    case = write_case(tmp_path, {"labels/img0.txt": "\n".join(lines), names_file: names_text})
    check_case(bounded, case, lambda: YoloDatabase(case / "labels", case / "images", case / names_file))
    outside_untouched()


@st.composite
def kitti_lines(draw: st.DrawFn) -> str:
    count = draw(st.sampled_from([0, 1, 8, 14, 15, 15, 16, 17]))
    fields = [draw(WORDS).replace(" ", "_") or "x"] + [draw(NUMBER_TEXT) for _ in range(max(count - 1, 0))]
    return " ".join(field.replace("\n", " ") for field in fields[:count])


@FUZZ
@given(lines=st.lists(kitti_lines(), max_size=6))
def test_kitti_reader(bounded, tmp_path, outside_untouched, lines):
    case = write_case(tmp_path, {"labels/img0.txt": "\n".join(lines)})
    check_case(bounded, case, lambda: KittiDatabase(case / "labels", case / "images"))
    outside_untouched()


# --- text / CSV databases and DeepPCB pairs lists ---

SEPARATOR_CHARS = {"tab": "\t", "space": " ", "comma": ",", "semicolon": ";"}


@st.composite
def text_options(draw: st.DrawFn) -> dict[str, Any]:
    """Options as a user or a saved recipe could give them: mostly sensible, some of the wrong type."""
    options: dict[str, Any] = {
        "columns": draw(st.one_of(st.lists(st.sampled_from([*ROLES, "lft"]), max_size=7),
                                  st.just(["image", "class", "x1", "y1", "x2", "y2"]), JSON_JUNK)),
        "separator": draw(st.sampled_from([*SEPARATOR_CHARS, "pipe"])),
        "box_format": draw(st.sampled_from(["xyxy", "xywh", "tblr", "cxcywh", "polar"])),
        "target": draw(st.sampled_from(["box", "image", "mask"])),
        "skip_header_lines": draw(st.one_of(st.integers(-1, 3), st.just("1"), st.none())),
        "index_base": draw(st.one_of(st.integers(-1, 2), st.just("1"), st.floats(0, 1))),
        "coordinates_inclusive": draw(st.one_of(st.booleans(), st.just("yes"))),
    }
    if draw(st.booleans()):
        options["class_by"], options["index_file"] = "index", "names.txt"
    return options


@st.composite
def text_rows(draw: st.DrawFn, separator: str) -> str:
    cells = draw(st.lists(st.one_of(NUMBER_TEXT, IMAGE_PATHS, WORDS, st.just('"unclosed'),
                                    st.just("x" * 140_000)), max_size=8))
    return SEPARATOR_CHARS.get(separator, " ").join(cell.replace("\n", " ") for cell in cells)


@FUZZ
@given(data=st.data(), per_image=st.booleans())
def test_text_reader(bounded, tmp_path, outside_untouched, data, per_image):
    options = data.draw(text_options())
    lines = data.draw(st.lists(text_rows(options["separator"]), max_size=5))
    names = "\n".join(["nut", "bolt", *data.draw(st.lists(WORDS, max_size=3))])
    target = "labels/img0.txt" if per_image else "boxes.txt"
    case = write_case(tmp_path, {target: "\n".join(lines), "names.txt": names})
    if "index_file" in options:
        options["index_file"] = case / "names.txt"

    def reader() -> TextDatabase:  # built in the child: a DatabaseConfigError counts as a refusal
        return TextDatabase(TextFormat(path=case / ("labels" if per_image else "boxes.txt"),
                                       image_folder=case / "images", per_image=per_image, **options))

    check_case(bounded, case, reader)
    outside_untouched()


@st.composite
def pairs_lines(draw: st.DrawFn) -> str:
    parts = [draw(IMAGE_PATHS), draw(st.sampled_from(["a.txt", "../outside/a.txt", "{outside}/a.txt", "", "b/../a.txt",
                                                       "missing.txt"]))]
    parts += draw(st.lists(WORDS, max_size=1))
    return " ".join(part.replace("\n", " ") for part in parts if part)


@FUZZ
@given(pairs=st.lists(pairs_lines(), max_size=5), rows=st.lists(st.lists(NUMBER_TEXT, max_size=6), max_size=4),
       skip=st.booleans())
def test_deeppcb_pairs_reader(bounded, tmp_path, outside_untouched, pairs, rows, skip):
    label = "\n".join(" ".join(cell.replace("\n", " ") for cell in row) for row in rows)
    case = write_case(tmp_path, {"images/list.txt": "\n".join(pairs), "images/a.txt": label,
                                 "outside/a.txt": "1 2 3 4 1\n", "names.txt": "open\nshort\n"})

    def reader() -> TextDatabase:
        return TextDatabase(TextFormat(path=case / "images", image_folder=case / "images",
                                       columns=["x1", "y1", "x2", "y2", "class"], per_image=True, separator="space",
                                       class_by="index", index_file=case / "names.txt", index_base=1,
                                       pairs=case / "images" / "list.txt", skip_missing_images=skip))

    check_case(bounded, case, reader)
    outside_untouched()


# --- saved descriptions and image headers ---


def build(description: Any) -> str:
    return repr(database_from_dict(description))


@FUZZ
@given(description=st.one_of(JSON_JUNK, st.dictionaries(
    st.sampled_from(["format", "annotations", "images", "annotation_file", "labels", "names", "masks", "config",
                     "skip_missing_images"]),
    st.one_of(st.sampled_from(["voc", "coco", "kitti", "yolo", "text"]), JSON_JUNK), max_size=5)))
def test_database_descriptions(bounded, description):
    bounded(build, description)


def png_declaring(width: int, height: int, colour: int, depth: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def probe_and_read(path: Path) -> tuple[int, int]:
    info = imageio.probe(path)
    imageio.read_image(path)
    return info.width, info.height


@FUZZ
@given(width=st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([1, 16384, 16385, 65535])),
       height=st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([1, 16384, 16385, 65535])),
       colour=st.sampled_from([0, 2, 3, 4, 6, 7]), depth=st.sampled_from([1, 8, 16, 3]))
def test_image_headers(bounded, tmp_path, width, height, colour, depth):
    if width * height <= (1 << 28) and width * height * 8 > (256 << 20):
        return  # within the pixel limit but bigger than this test's memory allowance: allowed by design
    path = tmp_path / "declared.png"
    path.write_bytes(png_declaring(width, height, colour, depth))
    bounded(probe_and_read, path, memory_mib=768)


def test_every_registered_format_is_fuzzed():
    assert set(DATABASE_FORMATS) == {"coco", "voc", "yolo", "kitti", "text"}, "a new format needs a fuzz test here"
