"""The description of one sample dataset: what it is for and which function writes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["anomaly", "classification", "detection", "segmentation"]

Generator = Callable[[Path, int], dict[str, Any]]
"""``generator(folder, scale)`` writes one sample into ``folder`` and returns manifest fields
(at least ``counts`` and ``layout``)."""


@dataclass(frozen=True)
class SampleSpec:
    """A named procedural sample dataset.

    ``version`` is bumped whenever the generator's output changes, so stale folders are regenerated.
    """

    name: str
    kind: Kind
    description: str
    generator: Generator
    version: int = 1
