"""Writes the benchmark's models into a folder: a tiny identity model (FP32 [N,M]) and, when no MobileNetV3-small
file is given, a stand-in: a randomly initialised network with MobileNetV3-small's layer layout (inverted
residual blocks of 1x1 expand, depthwise kxk, 1x1 project; hard-swish; squeeze-excite left out), FP32
[N,3,224,224] -> [N,1000]. The real file (../shared/models/mobilenet_v3_small.onnx) is preferred when present.
Likewise mlp512 (x FP32 [N,512] -> MatMul 512x1024, Relu, MatMul 1024x512, Relu, MatMul 512x10 -> y FP32 [N,10],
a GEMM-bound model where batching pays on a CPU): ../shared/models/mlp512.onnx when given, else the same graph made
here as ../shared/models/make_mlp.py makes it (numpy seed 0, weights scaled 0.05).

usage: make_models.py OUT_DIR [MOBILENET_ONNX [MLP512_ONNX]]"""

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# MobileNetV3-small blocks: kernel, expanded channels, output channels, stride, activation.
BLOCKS = [
    (3, 16, 16, 2, "relu"),
    (3, 72, 24, 2, "relu"),
    (3, 88, 24, 1, "relu"),
    (5, 96, 40, 2, "hswish"),
    (5, 240, 40, 1, "hswish"),
    (5, 240, 40, 1, "hswish"),
    (5, 120, 48, 1, "hswish"),
    (5, 144, 48, 1, "hswish"),
    (5, 288, 96, 2, "hswish"),
    (5, 576, 96, 1, "hswish"),
    (5, 576, 96, 1, "hswish"),
]


def identity(path: Path) -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "M"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "M"])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def mobilenet_like(path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def conv(x, cin, cout, k, stride, group=1, act=None):
        w = name("w")
        b = name("b")
        fan_in = cin // group * k * k
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(fan_in)).astype(np.float32), w))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), b))
        y = name("conv")
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4, group=group))
        if act == "relu":
            z = name("relu")
            nodes.append(helper.make_node("Relu", [y], [z]))
            return z
        if act == "hswish":
            z = name("hswish")
            nodes.append(helper.make_node("HardSwish", [y], [z]))
            return z
        return y

    x = conv("input", 3, 16, 3, 2, act="hswish")
    cin = 16
    for k, exp, cout, stride, act in BLOCKS:
        h = conv(x, cin, exp, 1, 1, act=act) if exp != cin else x
        h = conv(h, exp, exp, k, stride, group=exp, act=act)
        h = conv(h, exp, cout, 1, 1)
        if stride == 1 and cin == cout:
            s = name("add")
            nodes.append(helper.make_node("Add", [x, h], [s]))
            h = s
        x, cin = h, cout
    x = conv(x, cin, 576, 1, 1, act="hswish")
    pooled = name("pool")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    flat = name("flat")
    nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
    for i, (a, b, act) in enumerate([(576, 1024, True), (1024, 1000, False)]):
        w, bias = name("fc_w"), name("fc_b")
        inits.append(numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), w))
        inits.append(numpy_helper.from_array(np.zeros(b, np.float32), bias))
        out = "output" if i == 1 else name("fc")
        nodes.append(helper.make_node("Gemm", [flat, w, bias], [out]))
        flat = out
        if act:
            z = name("hswish")
            nodes.append(helper.make_node("HardSwish", [flat], [z]))
            flat = z
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])
    graph = helper.make_graph(nodes, "mobilenet_v3_small_like", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def mlp512(path: Path) -> None:
    rng = np.random.default_rng(0)
    w = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in [(512, 1024), (1024, 512), (512, 10)]]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "W2"], ["c"]), helper.make_node("Relu", ["c"], ["d"]),
             helper.make_node("MatMul", ["d", "W3"], ["y"])]
    graph = helper.make_graph(nodes, "mlp512", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 512])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(a, f"W{i + 1}") for i, a in enumerate(w)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    identity(out / "identity.onnx")
    given = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if given and given.is_file():
        shutil.copyfile(given, out / "mobilenet.onnx")
        print(f"mobilenet: {given}")
    else:
        mobilenet_like(out / "mobilenet.onnx")
        print("mobilenet: generated stand-in (random weights, MobileNetV3-small layout, no squeeze-excite)")
    given = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    if given and given.is_file():
        shutil.copyfile(given, out / "mlp512.onnx")
        print(f"mlp512: {given}")
    else:
        mlp512(out / "mlp512.onnx")
        print("mlp512: generated (the graph of ../shared/models/make_mlp.py)")


if __name__ == "__main__":
    main()
