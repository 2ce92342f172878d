"""ONNX export for a fixed input size: same numbers as eager, "same" padding folded into the convolutions."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from timm.layers.padding import get_same_padding

from astrocyte_lab.training.onnx_export import _same_pads, drop_empty_trailing_inputs, export_onnx


def _lite0() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                             out_indices=(1, 2)).eval()


def _optimized_ops(graph: bytes, tmp_path) -> collections.Counter:
    """Op types of the graph after onnxruntime's basic optimisations (where Pad fuses into Conv)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    return collections.Counter(node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)


@pytest.mark.parametrize("size", [(64, 64), (45, 67)])
def test_tf_same_padding_is_fused_and_the_features_match_eager(size, tmp_path) -> None:
    net = _lite0()
    example = torch.randn(1, 3, *size)
    graph = export_onnx(net, example, input_name="x", output_names=["a", "b"])
    assert _optimized_ops(graph, tmp_path)["Pad"] == 0
    batch = torch.randn(3, 3, *size)  # the batch axis stays dynamic
    with torch.no_grad():
        expected = [t.numpy() for t in net(batch)]
    got = ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {"x": batch.numpy()})
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape
        assert np.allclose(have, want, atol=1e-4 * float(np.abs(want).max()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_plain_export_keeps_the_pads_as_separate_nodes(tmp_path) -> None:
    """Why the helper exists: without it onnxruntime keeps timm's pads as Pad nodes."""
    import io

    net = _lite0()
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), buffer, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    assert _optimized_ops(buffer.getvalue(), tmp_path)["Pad"] > 0


def test_the_network_pads_dynamically_again_after_export() -> None:
    net = _lite0()
    export_onnx(net, torch.zeros(1, 3, 64, 64), input_name="x", output_names=["a", "b"])
    with torch.no_grad():
        features = net(torch.zeros(1, 3, 50, 70))  # a different size still pads correctly
    assert [tuple(f.shape[-2:]) for f in features] == [(13, 18), (7, 9)]


@pytest.mark.parametrize("kernel,stride,dilation", [(3, 2, 1), (5, 2, 1), (3, 1, 1), (3, 1, 2), (1, 1, 1)])
def test_same_pads_agree_with_timm(kernel, stride, dilation) -> None:
    for size in range(1, 40):
        before, after = _same_pads(size, kernel, stride, dilation)
        assert before + after == get_same_padding(size, kernel, stride, dilation)
        assert after - before in (0, 1)


def test_empty_trailing_inputs_are_dropped_and_nothing_else_changes() -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 2, 2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    pads = onnx.numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    node = onnx.helper.make_node("Pad", ["x", "pads", ""], ["y"], mode="constant")
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [x], [y], [pads]),
                                   opset_imports=[onnx.helper.make_opsetid("", 17)])
    cleaned = onnx.load_from_string(drop_empty_trailing_inputs(model.SerializeToString()))
    assert list(cleaned.graph.node[0].input) == ["x", "pads"]
    value = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    out = ort.InferenceSession(cleaned.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": value})
    assert np.array_equal(out[0][0, 0], np.pad(value[0, 0], 1))
    untouched = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                                              [x], [y]))
    assert drop_empty_trailing_inputs(untouched.SerializeToString()) == untouched.SerializeToString()
