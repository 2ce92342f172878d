"""File writers for the sample datasets: images, tab-separated box labels, Pascal VOC XML, manifests.

All writers are byte-deterministic: fixed encoder parameters, fixed float formatting, no timestamps.
Images are encoded with ``cv2.imencode`` and written with ``Path.write_bytes`` (the same bytes as
``cv2.imwrite``, but also safe for non-ASCII paths on Windows).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY = 92
PNG_COMPRESSION = 3
BOX_NOTE = (
    "integer pixel-edge coordinates: X1,Y1 inclusive top-left, X2,Y2 exclusive bottom-right "
    "(width = X2 - X1), tight around the object's drawn pixels"
)


@dataclass(frozen=True)
class Box:
    """An annotated object: class name, axis-aligned box and optional oriented box.

    ``x1, y1, x2, y2`` are integer pixel-edge coordinates: X2/Y2 are *exclusive* (width = x2 - x1);
    the object occupies pixel columns x1..x2-1. The oriented box ``(cx, cy, w, h, angle)`` uses the
    same continuous coordinates (pixel i spans [i, i+1)) and the roLabelImg convention: the ``w`` side
    points along (cos angle, sin angle) in image axes (y down), angle in radians in [0, pi).
    """

    name: str
    x1: int
    y1: int
    x2: int
    y2: int
    rotated: tuple[float, float, float, float, float] | None = None


def _encode(path: Path, ext: str, img: np.ndarray, params: Sequence[int]) -> None:
    ok, buf = cv2.imencode(ext, img, list(params))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise OSError(f"could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def write_png(path: Path, img: np.ndarray) -> None:
    """Write an 8-bit grey or BGR image as PNG."""
    _encode(path, ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def write_jpg(path: Path, img: np.ndarray) -> None:
    """Write an 8-bit BGR image as baseline JPEG, quality 92."""
    _encode(path, ".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def write_text_lines(path: Path, lines: Iterable[str]) -> None:
    """Write lines with ``\\n`` endings on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\n" for line in lines).encode("utf-8"))


def write_tab_labels(path: Path, boxes: Iterable[Box]) -> None:
    """One object per line: ``class<TAB>X1<TAB>Y1<TAB>X2<TAB>Y2`` (X2/Y2 exclusive)."""
    write_text_lines(path, (f"{b.name}\t{b.x1}\t{b.y1}\t{b.x2}\t{b.y2}" for b in boxes))


def rotated_corners(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    """The 4 corners (4x2) of a roLabelImg oriented box, in image coordinates."""
    c, s = math.cos(angle), math.sin(angle)
    u = np.array([c, s]) * (w / 2.0)
    v = np.array([-s, c]) * (h / 2.0)
    ctr = np.array([cx, cy])
    return np.stack([ctr - u - v, ctr + u - v, ctr + u + v, ctr - u + v])


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def write_voc_xml(path: Path, filename: str, size: tuple[int, int, int], boxes: Iterable[Box]) -> None:
    """Pascal VOC annotation with roLabelImg ``<robndbox>`` oriented boxes.

    ``size`` is (width, height, depth). Each object has ``<robndbox>`` (cx, cy, w, h, angle) and the
    axis-aligned ``<bndbox>`` enclosing that oriented box, clipped to the image.
    """
    width, height, depth = size
    root = ET.Element("annotation", verified="yes")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = filename
    ET.SubElement(root, "path").text = f"images/{filename}"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "astrocyte-lab synthetic samples"
    sz = ET.SubElement(root, "size")
    ET.SubElement(sz, "width").text = str(width)
    ET.SubElement(sz, "height").text = str(height)
    ET.SubElement(sz, "depth").text = str(depth)
    ET.SubElement(root, "segmented").text = "0"
    for b in boxes:
        if b.rotated is None:
            raise ValueError("write_voc_xml needs oriented boxes")
        cx, cy, w, h, angle = b.rotated
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "type").text = "robndbox"
        ET.SubElement(obj, "name").text = b.name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        rb = ET.SubElement(obj, "robndbox")
        for tag, val in zip(("cx", "cy", "w", "h", "angle"), (cx, cy, w, h, angle), strict=True):
            ET.SubElement(rb, tag).text = _fmt(val)
        corners = rotated_corners(cx, cy, w, h, angle)
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        bb = ET.SubElement(obj, "bndbox")
        for tag, val in zip(
            ("xmin", "ymin", "xmax", "ymax"),
            (max(0, x0), max(0, y0), min(width, x1), min(height, y1)),
            strict=True,
        ):
            ET.SubElement(bb, tag).text = str(int(val))
    ET.indent(root, space="  ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")


def write_json(path: Path, data: dict) -> None:
    """Pretty, stable JSON (keys kept in insertion order, ``\\n`` line endings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
