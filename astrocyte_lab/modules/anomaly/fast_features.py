"""The frozen backbone run through onnxruntime while fitting on CPU: the same features, several times faster.

Fitting PatchCore (and PaDiM) is mostly running the frozen backbone over every Normal image, and, with the
defect segmenter, over the synthetic defects too. On CPU, PyTorch's eager depthwise convolutions, unfused
batch norms and per-call "same" padding make tf_efficientnet_lite0 cost about 50 ms per 256 x 256 image on
2 cores; onnxruntime runs the exported graph in about 11 ms (``benchmarks/anomaly_fit.py`` prints both).
The backbone never trains here, so it is exported once per fit, in memory, for the fixed input size, and
the first batch is checked against eager PyTorch; any failure falls back to eager with a reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from astrocyte_lab.training.onnx_export import export_onnx

TOLERANCE = 1e-3  # largest accepted |onnx - eager| relative to the feature scale on the check batch


class _Outputs(nn.Module):
    """The timm feature network with its ``{layer: tensor}`` dict as a tuple (what ONNX export accepts)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.extractor(x).values())


class OnnxFeatures:
    """Callable like anomalib's feature extractor (``x -> {layer: features}``) for one input shape."""

    def __init__(self, extractor: nn.Module, channels: int, height: int, width: int, threads: int,
                 report: Callable[[str], None] | None = None) -> None:
        import onnxruntime as ort

        self.shape = (channels, height, width)
        self._eager = extractor
        example = torch.zeros(1, channels, height, width)
        with torch.no_grad():
            self.layers = list(extractor(example).keys())
        graph = export_onnx(_Outputs(extractor).eval(), example, input_name="x", output_names=self.layers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session: ort.InferenceSession | None = ort.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"])
        self._report = report
        self._checked = False

    @property
    def active(self) -> bool:
        """False once the check against eager PyTorch failed (every call then runs eager)."""
        return self._session is not None

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._session is None or tuple(x.shape[1:]) != self.shape or x.device.type != "cpu":
            return self._eager(x)
        outputs = self._session.run(None, {"x": np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)})
        features = {layer: torch.from_numpy(out) for layer, out in zip(self.layers, outputs, strict=True)}
        if not self._checked:
            self._checked = True
            problem = self._mismatch(x[:1], features)
            if problem:
                self._session = None
                if self._report is not None:
                    self._report(f"backbone features in eager PyTorch ({problem})")
                return self._eager(x)
        return features

    def _mismatch(self, x: torch.Tensor, features: dict[str, torch.Tensor]) -> str | None:
        with torch.no_grad():
            eager = self._eager(x)
        for layer, value in eager.items():
            error = (features[layer][:1] - value).abs().max().item()
            scale = value.abs().max().item() or 1.0
            if error > TOLERANCE * scale:
                return f"onnxruntime features of {layer} differ from eager PyTorch by {error:.3g}"
        return None


def onnx_features(extractor: nn.Module, channels: int, height: int, width: int,
                  report: Callable[[str], None] | None = None) -> OnnxFeatures | None:
    """An :class:`OnnxFeatures` for the frozen ``extractor``, or ``None`` (eager PyTorch) when it cannot be built."""
    try:
        return OnnxFeatures(extractor.eval(), channels, height, width, torch.get_num_threads(), report)
    except Exception as error:  # noqa: BLE001 - any export/runtime failure means "use eager", never a failed fit
        if report is not None:
            report(f"backbone features in eager PyTorch (onnxruntime unavailable: {error})")
        return None
