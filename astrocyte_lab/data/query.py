"""Filter, sort and page a dataset's images: what the image list shows, kept out of the widgets.

The query works on one snapshot of :attr:`Dataset.table` (built once, then filtered with pandas), so a
filter or page change on a 10,000-image dataset costs milliseconds; call :meth:`ImageQuery.refresh`
after editing the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from astrocyte_lab.data.annotations import Annotation
from astrocyte_lab.errors import AstrocyteError

PseudoFilter = Literal["all", "exclude", "only"]
ANY = None  # a filter value that keeps every image
DEFAULT_OVERLAP_IOU = 0.9


@dataclass(frozen=True)
class ImageFilter:
    """Which images to show. ``None`` fields keep every image.

    ``ground_truth`` / ``prediction``: a category name, ``""`` for unlabelled / not predicted.
    ``set``: ``train``, ``validation``, ``test`` or ``auto``, or the assigned side ``train`` / ``validation``
    with ``assigned``. ``pseudo``: images with pseudo labels excluded, all, or only those.
    ``overlapping``: only images holding near-duplicate annotations (see :func:`overlapping_pairs`).
    ``ids``: restrict to these image ids (a drill-down from a results view).
    """

    name_contains: str = ""
    ground_truth: str | None = ANY
    prediction: str | None = ANY
    set: str | None = ANY
    assigned: str | None = ANY
    named_set: str | None = ANY
    pseudo: PseudoFilter = "all"
    overlapping: bool = False
    ids: tuple[int, ...] | None = None


class ImageQuery:
    """A filtered, sorted, paged view of a dataset's image table."""

    def __init__(self, dataset, page_size: int = 50, overlap_iou: float = DEFAULT_OVERLAP_IOU) -> None:
        if page_size < 1:
            raise AstrocyteError(f"page_size must be at least 1, got {page_size}")
        self.dataset = dataset
        self.page_size = page_size
        self.overlap_iou = overlap_iou
        self.filter = ImageFilter()
        self.sort_by: str | None = None
        self.ascending = True
        self._frame = pd.DataFrame()
        self._overlapping: set[int] | None = None
        self._view = pd.DataFrame()
        self.refresh()

    # -- state -----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take a new snapshot of the dataset table (after edits) and re-apply the filter."""
        self._frame = self.dataset.table
        self._overlapping = None
        self._apply()

    def set_filter(self, **fields) -> None:
        """Change some filter fields (see :class:`ImageFilter`); the others keep their values."""
        unknown = set(fields) - set(ImageFilter.__dataclass_fields__)
        if unknown:
            known = sorted(ImageFilter.__dataclass_fields__)
            raise AstrocyteError(f"unknown image filter {sorted(unknown)}; use {known}")
        if fields.get("pseudo", "all") not in ("all", "exclude", "only"):
            raise AstrocyteError(f"pseudo must be 'all', 'exclude' or 'only', got {fields['pseudo']!r}")
        if fields.get("ids") is not None:
            fields["ids"] = tuple(int(i) for i in fields["ids"])
        self.filter = replace(self.filter, **fields)
        self._apply()

    def clear_filter(self) -> None:
        self.filter = ImageFilter()
        self._apply()

    def sort(self, column: str | None, ascending: bool = True) -> None:
        """Sort by a table column (``None``: image id order)."""
        if column is not None and column not in self._frame.columns:
            raise AstrocyteError(f"cannot sort by {column!r}; columns are {list(self._frame.columns)}")
        self.sort_by, self.ascending = column, ascending
        self._apply()

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Images passing the filter."""
        return len(self._view)

    @property
    def total(self) -> int:
        return len(self._frame)

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.page_size))

    def summary(self) -> str:
        return f"Number of images: {self.count}/{self.total}"

    def page(self, index: int) -> pd.DataFrame:
        """Rows of page ``index`` (0-based; clamped to the last page)."""
        index = min(max(0, index), self.pages - 1)
        start = index * self.page_size
        return self._view.iloc[start:start + self.page_size]

    @property
    def ids(self) -> np.ndarray:
        """Image ids passing the filter, in display order."""
        return self._view.index.to_numpy()

    # -- internals -------------------------------------------------------------------------------------
    def _apply(self) -> None:
        frame, f = self._frame, self.filter
        keep = np.ones(len(frame), bool)
        if f.name_contains:
            keep &= frame["name"].str.contains(f.name_contains, case=False, regex=False).to_numpy()
        for column, value in (("ground_truth", f.ground_truth), ("prediction", f.prediction), ("set", f.set),
                              ("assigned", f.assigned), ("named_set", f.named_set)):
            if value is not None:
                keep &= (frame[column] == value).to_numpy()
        if f.pseudo != "all" and "n_pseudo" in frame:
            has_pseudo = (frame["n_pseudo"] > 0).to_numpy()
            keep &= has_pseudo if f.pseudo == "only" else ~has_pseudo
        if f.overlapping:
            keep &= frame.index.isin(sorted(self._overlapping_ids()))
        if f.ids is not None:
            keep &= frame.index.isin(f.ids)
        view = frame[keep]
        if self.sort_by is not None:
            view = view.sort_values(self.sort_by, ascending=self.ascending, kind="stable")
        self._view = view

    def _overlapping_ids(self) -> set[int]:
        if self._overlapping is None:
            self._overlapping = {int(i) for i in self._frame.index[self._frame.get("n_ground_truth", 0) > 1]
                                 if overlapping_pairs(self.dataset.objects(int(i)), self.overlap_iou)}
        return self._overlapping


def box_iou(a: Annotation, b: Annotation) -> float:
    """Intersection over union of two annotations' axis-aligned bounds."""
    ax1, ay1, ax2, ay2 = a.bounds()
    bx1, by1, bx2, by2 = b.bounds()
    w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    h = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = w * h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def overlapping_pairs(objects: list[Annotation], iou: float = DEFAULT_OVERLAP_IOU) -> list[tuple[int, int]]:
    """Index pairs of same-category annotations whose bounds overlap by at least ``iou``: likely duplicates
    (a box drawn twice, or a pseudo label on top of a ground-truth box)."""
    pairs = []
    for i, a in enumerate(objects):
        for j in range(i + 1, len(objects)):
            b = objects[j]
            if a.category == b.category and box_iou(a, b) >= iou:
                pairs.append((i, j))
    return pairs
