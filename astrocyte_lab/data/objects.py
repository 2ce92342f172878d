"""Store object annotations in the dataset table, and convert between polygons and masks.

In the table, objects live along an ``object`` dimension (one row per box / rotated box / polygon,
pointing at its image id) and polygon vertices along a ``vertex`` dimension, so a version of the
table carries its annotations and saves atomically with everything else. A model's predicted objects
(from a test) use the same layout under other names (:data:`PREDICTED`), kept apart from the annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import xarray as xr

from astrocyte_lab.data.annotations import Annotation, Box, Polygon, RotatedBox
from astrocyte_lab.data.limits import check_image_pixels

_FIELDS: tuple[str, ...] = ("image", "category", "kind", "x1", "y1", "x2", "y2", "cx", "cy", "w", "h", "angle",
                             "pseudo", "score", "vstart", "vcount")
_KINDS = {Box: 0, RotatedBox: 1, Polygon: 2}


@dataclass(frozen=True)
class Layout:
    """Names of one object list's columns: ``{prefix}_{field}`` along ``dim``, vertices along ``vertex_dim``."""

    prefix: str
    dim: str
    vertex_dim: str

    @property
    def names(self) -> tuple[str, ...]:
        return (*(f"{self.prefix}_{f}" for f in _FIELDS), f"{self.vertex_dim}_x", f"{self.vertex_dim}_y")


ANNOTATED = Layout("obj", "object", "vertex")  # ground truth and pseudo labels
PREDICTED = Layout("pobj", "pobject", "pvertex")  # a model's predictions, written back by a test
OBJECT_VARS: tuple[str, ...] = ANNOTATED.names


def objects_to_vars(objects: dict[int, list[Annotation]], categories: list[str],
                    layout: Layout = ANNOTATED) -> dict[str, tuple]:
    """Columns (object and vertex dims of ``layout``) for the objects of every image, in image id order."""
    rows: list[tuple[int, Annotation]] = [(i, a) for i in sorted(objects) for a in objects[i]]
    n = len(rows)
    nan = np.float32(np.nan)
    cols = {name: np.full(n, nan, np.float32) for name in ("x1", "y1", "x2", "y2", "cx", "cy", "w", "h", "angle",
                                                          "score")}
    image = np.zeros(n, np.int64)
    category = np.zeros(n, np.int16)
    kind = np.zeros(n, np.int8)
    pseudo = np.zeros(n, bool)
    vstart = np.zeros(n, np.int32)
    vcount = np.zeros(n, np.int32)
    vx: list[float] = []
    vy: list[float] = []
    for row, (image_id, ann) in enumerate(rows):
        image[row], category[row], kind[row], pseudo[row] = image_id, categories.index(ann.category), \
            _KINDS[type(ann)], ann.pseudo
        cols["x1"][row], cols["y1"][row], cols["x2"][row], cols["y2"][row] = ann.bounds()
        if ann.score is not None:
            cols["score"][row] = ann.score
        if isinstance(ann, RotatedBox):
            cols["cx"][row], cols["cy"][row], cols["w"][row] = ann.cx, ann.cy, ann.width
            cols["h"][row], cols["angle"][row] = ann.height, ann.angle
        elif isinstance(ann, Polygon):
            vstart[row], vcount[row] = len(vx), len(ann.points)
            vx += [p[0] for p in ann.points]
            vy += [p[1] for p in ann.points]
    cols.update(image=image, category=category, kind=kind, pseudo=pseudo, vstart=vstart, vcount=vcount)
    out: dict[str, tuple] = {f"{layout.prefix}_{k}": (layout.dim, v) for k, v in cols.items()}
    out[f"{layout.vertex_dim}_x"] = (layout.vertex_dim, np.asarray(vx, np.float64))
    out[f"{layout.vertex_dim}_y"] = (layout.vertex_dim, np.asarray(vy, np.float64))
    return out


def objects_from_table(table: xr.Dataset, categories: list[str],
                       layout: Layout = ANNOTATED) -> dict[int, list[Annotation]]:
    """Rebuild per-image annotation lists from the table's object columns (empty when it has none)."""
    if f"{layout.prefix}_image" not in table:
        return {}
    v = {name.replace(f"{layout.prefix}_", "obj_", 1).replace(f"{layout.vertex_dim}_", "vertex_", 1):
         np.asarray(table[name].values) for name in layout.names}
    out: dict[int, list[Annotation]] = {}
    for row in range(v["obj_image"].size):
        name = categories[int(v["obj_category"][row])]
        pseudo = bool(v["obj_pseudo"][row])
        score = None if np.isnan(v["obj_score"][row]) else float(v["obj_score"][row])
        kind = int(v["obj_kind"][row])
        ann: Annotation
        if kind == 0:
            ann = Box(name, *(float(v[f"obj_{k}"][row]) for k in ("x1", "y1", "x2", "y2")), pseudo, score)
        elif kind == 1:
            ann = RotatedBox(name, *(float(v[f"obj_{k}"][row]) for k in ("cx", "cy", "w", "h", "angle")), pseudo,
                             score)
        else:
            start, count = int(v["obj_vstart"][row]), int(v["obj_vcount"][row])
            points = tuple(zip(v["vertex_x"][start:start + count].tolist(), v["vertex_y"][start:start + count].tolist(),
                               strict=True))
            ann = Polygon(name, points, pseudo, score)
        out.setdefault(int(v["obj_image"][row]), []).append(ann)
    return out


def with_objects(table: xr.Dataset, objects: dict[int, list[Annotation]], categories: list[str],
                 layout: Layout = ANNOTATED) -> xr.Dataset:
    """A copy of ``table`` whose object columns (of ``layout``) hold ``objects``."""
    table = table.drop_vars([name for name in layout.names if name in table])
    table = table.drop_dims([d for d in (layout.dim, layout.vertex_dim) if d in table.dims])
    return table.assign(objects_to_vars(objects, categories, layout))


def polygons_from_mask(mask: np.ndarray, categories: list[str], background: int = 0,
                       min_area: float = 1.0) -> list[Polygon]:
    """Outer contours of each category's regions in a category-index mask (background skipped)."""
    polygons: list[Polygon] = []
    for index in np.unique(mask):
        if int(index) == background or int(index) >= len(categories):
            continue
        binary = (mask == index).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            if cv2.contourArea(contour) < min_area and len(contour) < 3:
                continue
            # contour points are pixel centres; shift by half a pixel into edge coordinates
            points = tuple((float(x) + 0.5, float(y) + 0.5) for x, y in contour.reshape(-1, 2))
            polygons.append(Polygon(categories[int(index)], points))
    return polygons


def mask_from_polygons(polygons: list[Polygon], size: tuple[int, int], categories: list[str],
                       background: int = 0) -> np.ndarray:
    """Rasterise polygons (later ones on top) into a category-index mask of ``size = (w, h)``.

    The size is checked against the ``image_pixels`` limit before the mask is allocated (LimitError).
    """
    width, height = size
    check_image_pixels(width, height, "segmentation mask from polygons")
    mask = np.full((height, width), background, np.uint8)
    for polygon in polygons:
        points = np.round(polygon.corners() - 0.5).astype(np.int32)
        cv2.fillPoly(mask, [points], int(categories.index(polygon.category)))
    return mask
