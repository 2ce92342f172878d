"""Export a stored dataset with its annotations in a standard layout (Pascal VOC, COCO, YOLO), and read back
our own VOC export.

Images are written losslessly as PNG at the stored size (what the models see), 16-bit kept. Ground truth
is exported; pseudo labels only with ``include_pseudo`` (no format has a flag for them). Layouts:

* ``voc``: ``JPEGImages/`` (PNG files, the folder keeps VOC's name), ``Annotations/<stem>.xml``,
  ``SegmentationClass/<stem>.png`` (segmentation: one pixel value per category, as stored),
  ``ImageSets/Main/{train,val}.txt`` (the assigned sets) and ``labels.txt`` (``value name`` per category);
  a destination ending in ``.tar`` is packed into one file.
* ``coco``: ``images/`` + ``annotations.json`` (segmentation masks become polygons).
* ``yolo``: ``images/`` + ``labels/<stem>.txt`` + ``classes.txt`` (rotated boxes as oriented-box lines).
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from astrocyte_lab.data.annotations import ImageAnnotations
from astrocyte_lab.data.limits import check_limit
from astrocyte_lab.data.safe_archive import safe_extract
from astrocyte_lab.errors import AstrocyteError, NameConflictError
from astrocyte_lab.formats.coco import write_coco
from astrocyte_lab.formats.voc import VocDatabase, write_voc
from astrocyte_lab.formats.yolo import write_yolo

if TYPE_CHECKING:
    from astrocyte_lab.data.dataset import Dataset
    from astrocyte_lab.data.workspace import Workspace

_LABEL_VALUE = re.compile(r"[0-9]{1,9}")
ExportFormat = Literal["voc", "coco", "yolo"]
EXPORT_FORMATS: tuple[str, ...] = ("voc", "coco", "yolo")


def export_annotated(dataset: Dataset, destination: str | Path, format: ExportFormat = "voc",
                     include_pseudo: bool = False) -> Path:
    """Write ``dataset`` (its saved or current in-memory state) to ``destination`` in ``format``."""
    if format not in EXPORT_FORMATS:
        raise AstrocyteError(f"unknown export format {format!r}; choose from {list(EXPORT_FORMATS)}")
    if dataset.module not in ("detection", "segmentation"):
        raise AstrocyteError(f"{format} holds object annotations; export the {dataset.module} dataset "
                             f"{dataset.name!r} with Workspace.export_dataset (.astrods) instead")
    destination = Path(destination)
    packed = destination.suffix == ".tar"
    if destination.exists() and not packed and any(destination.iterdir()):
        raise AstrocyteError(f"{destination} is not empty: export into a new or empty folder")
    with tempfile.TemporaryDirectory(prefix=".astro-export-", dir=destination.parent) as tmp:
        folder = Path(tmp) / destination.stem if packed else destination
        _WRITERS[format](dataset, folder, include_pseudo)
        if not packed:
            return destination
        partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.partial")
        with tarfile.open(partial, "w") as tar:
            for path in sorted(folder.rglob("*")):
                tar.add(path, str(path.relative_to(folder)), recursive=False)
        partial.replace(destination)
    return destination


def _stem(name: str) -> str:
    """A flat, unique file stem for a dataset image name (names may hold folder parts)."""
    return Path(name.replace("/", "__")).stem


def _write_images(dataset: Dataset, folder: Path, include_pseudo: bool) -> list[tuple[int, ImageAnnotations]]:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    g = dataset.geometry
    for image_id, name in zip(dataset.ids.tolist(), dataset.table["name"].tolist(), strict=True):
        pixels = dataset.image(image_id)
        if pixels.shape[2] == 3:
            pixels = pixels[:, :, ::-1]
        path = folder / f"{_stem(name)}.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(pixels)):
            raise AstrocyteError(f"{path}: could not write the image")
        objects = dataset.objects(image_id, pseudo=None if include_pseudo else False)
        if dataset.module == "segmentation":
            objects = dataset.mask_polygons(image_id)
        entries.append((image_id, ImageAnnotations(path, list(objects), size=(g.width, g.height))))
    return entries


def _voc(dataset: Dataset, folder: Path, include_pseudo: bool) -> None:
    entries = _write_images(dataset, folder / "JPEGImages", include_pseudo)
    g = dataset.geometry
    masks = folder / "SegmentationClass"
    assigned = dict(zip(dataset.ids.tolist(), dataset.table["assigned"].tolist(), strict=True))
    for image_id, entry in entries:
        stem = entry.image.stem
        objects = [] if dataset.module == "segmentation" else entry.objects
        write_voc(folder / "Annotations" / f"{stem}.xml", entry.image.name, (g.width, g.height, g.channels), objects,
                  folder="JPEGImages")
        mask = dataset.mask(image_id) if dataset.module == "segmentation" else None
        if mask is not None:
            masks.mkdir(exist_ok=True)
            cv2.imwrite(str(masks / f"{stem}.png"), mask.astype(np.uint8))
    sets = folder / "ImageSets" / "Main"
    sets.mkdir(parents=True, exist_ok=True)
    for split, file in (("train", "train.txt"), ("validation", "val.txt")):
        stems = [entry.image.stem for image_id, entry in entries if assigned[image_id] == split]
        (sets / file).write_text("".join(f"{s}\n" for s in stems))
    (folder / "labels.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(dataset.categories)))


def _coco(dataset: Dataset, folder: Path, include_pseudo: bool) -> None:
    entries = _write_images(dataset, folder / "images", include_pseudo)
    categories = [c for c in dataset.categories if dataset.module != "segmentation" or c != "background"]
    write_coco(folder / "annotations.json", [e for _, e in entries], categories, image_root=folder / "images")


def _yolo(dataset: Dataset, folder: Path, include_pseudo: bool) -> None:
    entries = _write_images(dataset, folder / "images", include_pseudo)
    write_yolo(folder / "labels", [e for _, e in entries], dataset.categories, names_file=folder / "classes.txt")


_WRITERS = {"voc": _voc, "coco": _coco, "yolo": _yolo}


def import_voc_export(workspace: Workspace, file: str | Path, name: str,
                      module: Literal["detection", "segmentation"] = "detection") -> Dataset:
    """Create a dataset from a VOC export of ours (folder or ``.tar``), categories and sets included.

    The archive is unpacked under ``<workspace>/imports/<name>/`` so the new dataset's source paths stay valid.
    """
    from astrocyte_lab.data.sources import DatabaseSet, segmentation_set
    from astrocyte_lab.data.workspace import check_name

    source = Path(file)
    root = Path(workspace.path) / "imports" / check_name(name)
    if name in workspace.dataset_names():
        raise NameConflictError(f"a dataset named {name!r} already exists in {workspace.path}: import the export "
                                "under another name")
    if root.exists():
        raise AstrocyteError(f"{root} already exists: choose another dataset name or remove that folder")
    if source.suffix == ".tar":
        safe_extract(source, root)  # refuses links, devices, traversal and size bombs before writing anything
    else:
        shutil.copytree(source, root)
    dataset = None
    try:
        labels = _read_labels(root / "labels.txt")
        if module == "segmentation":
            sets = [segmentation_set("export", root / "JPEGImages", root / "SegmentationClass")]
        else:
            sets = [DatabaseSet("export", VocDatabase(root / "Annotations", root / "JPEGImages"))]
        dataset = workspace.create_dataset(name, module, sets)
        if module == "segmentation":  # mask values come back as categories named after the value
            for value, label in labels.items():
                if str(value) in dataset.categories and label != str(value):
                    dataset.rename_category(str(value), label)
        for split, file_name in (("train", "train.txt"), ("validation", "val.txt")):
            listed = root / "ImageSets" / "Main" / file_name
            stems = set(_read_text(listed).split()) if listed.is_file() else set()
            ids = [i for i, n in zip(dataset.ids.tolist(), dataset.table["name"].tolist(), strict=True)
                   if Path(n).stem in stems]
            if ids:
                dataset.assign_set(ids, split)
        dataset.save()
        return dataset
    except BaseException:
        if dataset is not None:  # only the dataset this call created: never one of the same name made elsewhere
            workspace.delete_dataset(name)
        shutil.rmtree(root, ignore_errors=True)
        raise


def _read_text(path: Path) -> str:
    """A small UTF-8 text file of the export (labels, set lists), read under the annotation-file limit; anything
    else is an error naming it."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            check_limit("annotation_file_bytes", size, path)
            data = handle.read(size + 1)  # read(n) allocates n bytes up front: the size, not the limit
    except OSError as exc:
        raise AstrocyteError(f"{path}: cannot read ({exc.strerror or exc})") from None
    check_limit("annotation_file_bytes", len(data), path)  # a file that grew after the size check
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AstrocyteError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_labels(path: Path) -> dict[int, str]:
    if not path.is_file():
        return {}
    labels = {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        value, _, label = line.strip().partition(" ")
        if not value:
            continue
        if not _LABEL_VALUE.fullmatch(value) or not label:  # not isdigit(): it accepts '²' and 5000 digits
            raise AstrocyteError(f"{path}:{number}: expected 'value name', got {line[:80]!r}")
        labels[int(value)] = label
    return labels
