"""ONNX VGGs (convert_weights.onnx_reader): graphs built here with onnx.helper in the layout of each source (the model
zoo's MXNet Gluon VGG and its -bn variant, Caffe2's VGG19, a tf2onnx Keras export), from known arrays, converted by
the command line, features equal to a reference at every ReLU; quantized and unknown models refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import random_images
from convert_weights.cli import main
from convert_weights.network import ConversionError
from nst_jax.weights import load_weights
from vgg_reference import (
    CHANNELS,
    assert_features_match,
    assert_params_equal,
    caffe_input,
    known_convs,
    reference_relus,
    torchvision_input,
)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

IMAGE = random_images((32, 40, 3), seed=9)
NAMES = {  # each source's initializer names for conv i's kernel and bias, its producer and its input
    "mxnet": (lambda i: (f"vgg0_conv{i}_weight", f"vgg0_conv{i}_bias"), "mxnet", "data"),
    "caffe2": (lambda i: (f"{CONV_NAMES[i]}_w_0", f"{CONV_NAMES[i]}_b_0"), "onnx-caffe2", "data_0"),
    "tf2onnx": (lambda i: (f"functional_1/{KERAS_NAMES[i]}_1/convolution/ReadVariableOp:0",
                           f"functional_1/{KERAS_NAMES[i]}_1/Reshape:0"), "tf2onnx", "input"),
    "unknown": (lambda i: (f"onnx::Conv_{2 * i}", f"onnx::Conv_{2 * i + 1}"), "pytorch", "x"),
}
CONV_NAMES = [f"conv{b}_{p}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for p in range(1, n + 1)]
KERAS_NAMES = [f"block{b}_conv{p}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for p in range(1, n + 1)]


def batch_norms(seed: int = 4) -> list[tuple[np.ndarray, ...]]:
    """Per conv: gamma, beta, running mean, running variance (the -bn models' BatchNormalization)."""
    rng = np.random.default_rng(seed)
    norms = []
    for kernel, _ in known_convs():
        channels = kernel.shape[0]
        norms.append(tuple(value.astype(np.float32) for value in (
            rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.1, channels), rng.normal(0, 0.2, channels),
            rng.uniform(0.5, 2.0, channels))))
    return norms


def write_onnx(path: Path, source: str, *, bn: bool = False, quantized: bool = False) -> None:
    """A VGG16 classifier graph as ``source`` exports it: Conv (pads 1) [-> BatchNormalization] -> Relu, MaxPool
    between blocks, then Flatten and Gemm; tf2onnx's takes NHWC input through a Transpose."""
    names, producer, input_name = NAMES[source]
    nodes, initializers = [], []
    current = input_name
    if source == "tf2onnx":
        nodes.append(helper.make_node("Transpose", [current], ["nchw"], perm=[0, 3, 1, 2]))
        current = "nchw"
    norms = batch_norms() if bn else None
    index = 0
    for layer, channels in enumerate(CHANNELS):
        if channels == "P":
            nodes.append(helper.make_node("MaxPool", [current], [f"pool{layer}"], kernel_shape=[2, 2], strides=[2, 2]))
            current = f"pool{layer}"
            continue
        kernel, bias = known_convs()[index]
        weight_name, bias_name = names(index)
        initializers += [numpy_helper.from_array(kernel, weight_name), numpy_helper.from_array(bias, bias_name)]
        nodes.append(helper.make_node("Conv", [current, weight_name, bias_name], [f"conv{index}"],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]))
        current = f"conv{index}"
        if bn:
            stats = [f"bn{index}_{part}" for part in ("gamma", "beta", "mean", "var")]
            initializers += [numpy_helper.from_array(value, name) for value, name in zip(norms[index], stats)]
            nodes.append(helper.make_node("BatchNormalization", [current, *stats], [f"bn{index}"], epsilon=1e-5))
            current = f"bn{index}"
        nodes.append(helper.make_node("Relu", [current], [f"relu{index}"]))
        current = f"relu{index}"
        index += 1
    initializers.append(numpy_helper.from_array(np.zeros((4, 8), np.float32), "fc_weight"))
    nodes += [helper.make_node("Flatten", [current], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc_weight"], ["logits"], transB=1)]
    if quantized:  # as the model zoo's vgg16-12-int8: integer kernels through QLinearConv
        nodes.insert(0, helper.make_node("QuantizeLinear", [input_name, "scale", "zero"], ["q"]))
    shape = [1, 224, 224, 3] if source == "tf2onnx" else [1, 3, 224, 224]
    graph = helper.make_graph(nodes, "vgg16", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], initializers)
    onnx.save(helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 13)]), path)


def torch_batch_norm(index: int) -> nn.Module:
    """The reference's batch norm after conv ``index`` (eval mode: running statistics)."""
    gamma, beta, mean, variance = batch_norms()[index]
    norm = nn.BatchNorm2d(len(gamma), eps=1e-5)
    with torch.no_grad():
        for target, value in ((norm.weight, gamma), (norm.bias, beta), (norm.running_mean, mean),
                              (norm.running_var, variance)):
            target.copy_(torch.from_numpy(value))
    return norm.eval()


@pytest.mark.parametrize("source,bn,preprocessing", [
    ("mxnet", False, "torchvision"), ("mxnet", True, "torchvision"), ("tf2onnx", False, "caffe")])
def test_each_origin_converts_to_its_networks_features(tmp_path, capsys, source, bn, preprocessing):
    path = tmp_path / f"{source}.onnx"
    write_onnx(path, source, bn=bn)
    output = tmp_path / "out.h5"
    assert main([str(path), "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"preprocessing: {preprocessing}" in out
    assert ("folded 13 BatchNormalization node(s)" in out) == bn
    weights = load_weights(output)
    assert weights.info.preprocessing == preprocessing
    network_input = torchvision_input(IMAGE) if preprocessing == "torchvision" else caffe_input(IMAGE)
    reference = reference_relus(known_convs(), network_input, torch_batch_norm if bn else None)
    assert_features_match(weights, IMAGE, reference)


def test_caffe2s_vgg19_is_recognised_as_caffes_convention(tmp_path):
    """The same arrays as the files whose features are checked above, under Caffe2's names."""
    from convert_weights.onnx_reader import read_onnx

    path = tmp_path / "vgg19-caffe2-9.onnx"
    write_onnx(path, "caffe2")
    network = read_onnx(path)
    assert network.preprocessing == "caffe" and network.origin.startswith("the ONNX model zoo's Caffe2 VGG19")
    assert_params_equal(network.params)


def test_an_unknown_origin_asks_for_the_preprocessing(tmp_path, capsys):
    path = tmp_path / "exported.onnx"
    write_onnx(path, "unknown")
    output = tmp_path / "out.h5"
    assert main([str(path), "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not say which input its weights expect: give --preprocessing" in err
    assert not output.exists()
    assert main([str(path), "-o", str(output), "--preprocessing", "caffe"]) == 0
    assert_params_equal(load_weights(output).params)


def test_quantized_models_and_other_graphs_are_refused(tmp_path):
    from convert_weights.onnx_reader import read_onnx

    path = tmp_path / "vgg16-12-int8.onnx"
    write_onnx(path, "mxnet", quantized=True)
    with pytest.raises(ConversionError, match=r"quantized model \(QuantizeLinear\): style transfer needs the float"):
        read_onnx(path)
    model = onnx.load(path)
    del model.graph.node[0]  # the quantizer
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type = "Sigmoid"
    onnx.save(model, path)
    with pytest.raises(ConversionError, match="is followed by Sigmoid, not a ReLU: not a plain VGG"):
        read_onnx(path)
    strided = next(node for node in model.graph.node if node.op_type == "Conv")
    next(a for a in strided.attribute if a.name == "strides").CopyFrom(helper.make_attribute("strides", [2, 2]))
    onnx.save(model, path)
    with pytest.raises(ConversionError, match="is not a stride-1 'same' 3x3 convolution"):
        read_onnx(path)
