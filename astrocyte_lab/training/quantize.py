"""Post-training int8 quantisation of an exported ONNX graph, for faster CPU inference of a package.

onnxruntime's static quantiser rewrites the graph in QDQ form: convolution weights become int8 per output
channel and the activations entering each convolution are quantised to uint8 with ranges measured on a few
real network inputs (the calibration batches). Only convolutions are quantised, and nodes whose name contains
one of ``exclude`` stay in float (e.g. the fixed convolution that turns box-edge distributions into
distances, where 8 bits would cost pixels). The package runtime needs nothing new: onnxruntime runs the
QDQ graph with integer kernels (VNNI on recent x86 CPUs). Scores and boxes move slightly, so a quantised
package is a choice the user makes, checked by testing the package (not the PyTorch model) on a dataset.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from astrocyte_lab.errors import AstrocyteError


def quantize_int8(onnx_bytes: bytes, input_name: str, batches: Sequence[np.ndarray],
                  exclude: Sequence[str] = ()) -> tuple[bytes, list[str]]:
    """The int8 (QDQ) version of ``onnx_bytes`` and the names of the convolutions left in float.

    ``batches`` are float32 network inputs ``(N, C, H, W)`` as the package's preprocessing makes them.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise AstrocyteError("int8 quantisation needs at least one calibration image")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._items, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    model = onnx.load_from_string(onnx_bytes)
    kept = [node.name for node in model.graph.node
            if node.op_type == "Conv" and any(part in node.name for part in exclude)]
    with tempfile.TemporaryDirectory(prefix="astro-int8-") as folder:
        source, prepared, target = (Path(folder) / name for name in ("model.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(onnx_bytes)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=kept)
        return target.read_bytes(), kept
