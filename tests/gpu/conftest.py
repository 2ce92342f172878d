"""GPU tests: marked ``gpu``, skipped unless CUDA is available (run them on a GPU machine with ``pytest -m gpu``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda:0")
