"""The zoo's own plumbing: a model built with onnx's helpers is served under its folder's name."""

import json
import urllib.request

import numpy as np
from onnx import TensorProto, helper


def test_name_only_settings_serve_the_folder(zoo_server):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    # onnx 1.23 writes IR 14 by default; ONNX Runtime 1.31 reads up to IR 13.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    server = zoo_server({"relu": model})
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [-1, 2, -3, 4, -5, 6]}]}
    request = urllib.request.Request(f"http://{server.http}/v2/models/relu/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        answer = json.load(r)
    got = np.array(answer["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_array_equal(got, np.maximum(np.array([-1, 2, -3, 4, -5, 6], dtype=np.float32), 0))
