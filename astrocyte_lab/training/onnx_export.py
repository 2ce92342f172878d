"""Trace a network into ONNX bytes for one fixed input size, in a form onnxruntime runs fast on CPU.

Every package (and the anomaly fit's onnxruntime backbone) has a fixed input height and width; only the batch
is dynamic. Two things in a plain ``torch.onnx.export`` of the TensorFlow-ported timm backbones (the
``tf_*`` EfficientNets, our default) cost onnxruntime about a third of the backbone's time at 1024 x 1024:

* timm's "same" padding for strided convolutions is computed from the input's shape at run time
  (``Conv2dSame``). Traced with a dynamic batch, the pad amounts become a shape-arithmetic subgraph, so the
  padding stays a separate ``Pad`` node that copies the largest activations and breaks onnxruntime's
  blocked (NCHWc) convolution layout. :func:`static_same_padding` computes the pads once, for the example's
  size, so they are constants.
* The exporter writes ``Pad`` with an empty trailing optional input, which keeps onnxruntime from folding
  the (now constant) pad into the following ``Conv``. :func:`drop_empty_trailing_inputs` removes such
  inputs; omitting a trailing optional input means the same in ONNX.

With both, the padding becomes part of each convolution: same numbers, no extra copies.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

OPSET = 17


def export_onnx(module: nn.Module, example: torch.Tensor, *, input_name: str, output_names: Sequence[str],
                opset: int = OPSET) -> bytes:
    """ONNX bytes of ``module`` traced on ``example`` (one input), every input and output with a dynamic batch.

    The spatial size is the example's: "same" padding is baked in for it (see the module docstring).
    """
    axes = {name: {0: "batch"} for name in (input_name, *output_names)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), static_same_padding(module, example):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, input_names=[input_name], output_names=list(output_names),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return drop_empty_trailing_inputs(buffer.getvalue())


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@contextlib.contextmanager
def static_same_padding(module: nn.Module, example: torch.Tensor) -> Iterator[None]:
    """Within the block, timm's ``Conv2dSame`` layers pad by constants computed for ``example``'s size.

    One forward pass records each layer's input size; the layers then pad by those fixed amounts, giving the
    same result for that size (and only for it). The original behaviour is restored on exit.
    """
    from timm.layers.conv2d_same import Conv2dSame

    convs = [layer for layer in module.modules() if isinstance(layer, Conv2dSame)]
    if not convs:
        yield
        return
    sizes: dict[nn.Module, tuple[int, int]] = {}

    def record(layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        sizes[layer] = (int(args[0].shape[-2]), int(args[0].shape[-1]))

    hooks = [layer.register_forward_pre_hook(record) for layer in convs]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    patched = []
    try:
        for layer in convs:
            if layer not in sizes:
                continue
            top, bottom = _same_pads(sizes[layer][0], layer.kernel_size[0], layer.stride[0], layer.dilation[0])
            left, right = _same_pads(sizes[layer][1], layer.kernel_size[1], layer.stride[1], layer.dilation[1])
            layer.forward = _fixed_pad_forward(layer, (left, right, top, bottom))  # type: ignore[method-assign]
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.forward


def _fixed_pad_forward(layer: nn.Conv2d, pads: tuple[int, int, int, int]):  # noqa: ANN202 - a bound forward
    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, pads), layer.weight, layer.bias, layer.stride, 0, layer.dilation, layer.groups)

    return forward


def drop_empty_trailing_inputs(model: bytes) -> bytes:
    """The same ONNX model with empty optional inputs at the end of every node's input list removed."""
    import onnx

    proto = onnx.load_from_string(model)
    changed = False
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            while len(node.input) and node.input[-1] == "":
                node.input.pop()
                changed = True
            graphs.extend(attribute.g for attribute in node.attribute if attribute.type == onnx.AttributeProto.GRAPH)
    return proto.SerializeToString() if changed else model
