"""What a module's latency case hands to ``benchmarks/inference.py --module NAME``.

Each module other than classification has a file ``benchmarks/inference_<module>.py`` with a function
``build_case(workdir: Path, threads: int) -> Case`` that builds a model the way a user would (train briefly,
export a package, all inside ``workdir``) and returns the timed rows. ``inference.py`` times the rows
(median / p90, passes over the rows) and prints them with the ratio eager / package and the vendor figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Case:
    title: str  # e.g. "MANet lite0 segmenter, 2048x2048x1 image to 1024x1024x1 input, batch 1"
    rows: list[tuple[str, Callable[[], object]]]  # (label, call) in print order
    package_row: str  # label of the deployable-package row (Predictor.predict on the raw image)
    eager_row: str  # label of the PyTorch eager row doing the same work
    vendor_ms: float  # the vendor's published figure for this module
    vendor_text: str  # where that figure comes from (machine, sizes)
    details: list[str] = field(default_factory=list)  # lines printed before the table (training, agreement)
