"""Shared helpers of the model zoo: building ONNX graphs that ONNX Runtime 1.31 reads, and asking a zoo server
for predictions over REST JSON, the binary extension (tritonclient.http) and gRPC (MLServer's own generated
dataplane messages, with raw contents as tritonclient sends them: tritonclient.grpc cannot share a process with
mlserver, both register the `inference.*` protobuf messages)."""

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import onnx
from onnx import helper

# onnx 1.23 writes IR 14 by default, ONNX Runtime 1.31 reads up to IR 13: every hand-built model says IR 10.
IR_VERSION = 10
MAX_IR_VERSION = 13

# V2 datatype <-> numpy dtype.
DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}
V2_OF = {np.dtype(v): k for k, v in DTYPES.items()}


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=IR_VERSION, ml_opset=None):
    """A model from onnx.helper pieces, with an IR version ONNX Runtime 1.31 reads."""
    graph = helper.make_graph(nodes, "zoo", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)]
    if ml_opset:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ml_opset))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)
    onnx.checker.check_model(model)
    return model


def clamp_ir(model):
    """Converters (skl2onnx, onnxmltools) may write the installed onnx's newest IR; ONNX Runtime 1.31 reads up to
    IR 13, so lower it when needed (the operator sets they use are far older than the IR)."""
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = IR_VERSION
    return model


def v2_datatype(array):
    """The V2 datatype of a numpy array (str/object arrays are BYTES)."""
    if array.dtype.kind in "OUS":
        return "BYTES"
    return V2_OF[array.dtype]


def json_input(name, array):
    """One REST JSON input tensor from a numpy array (FP16 as plain JSON numbers, as MLServer accepts)."""
    datatype = v2_datatype(array)
    data = [str(x) for x in array.ravel()] if datatype == "BYTES" else array.ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def post(server, path, body, timeout=30):
    """POSTs JSON; returns (status, decoded JSON body, None when empty) for 2xx and 4xx/5xx alike."""
    request = urllib.request.Request(f"http://{server.http}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    return status, json.loads(body) if body else None


def get(server, path):
    with urllib.request.urlopen(f"http://{server.http}{path}", timeout=30) as r:
        return json.load(r)


def decode_outputs(answer):
    """{name: numpy array} from a REST JSON inference response (reshape fails on a wrong element count)."""
    return {out["name"]: np.array(out["data"], dtype=DTYPES[out["datatype"]]).reshape(out["shape"])
            for out in answer["outputs"]}


def infer_json(server, model, arrays, **extra):
    """REST JSON inference on {name: array}; returns {name: array}. Fails the test on a non-200 answer."""
    body = {"inputs": [json_input(n, a) for n, a in arrays.items()], **extra}
    status, answer = post(server, f"/v2/models/{model}/infer", body)
    assert status == 200, answer
    return decode_outputs(answer)


def infer_binary(server, model, arrays, outputs=None, binary=True):
    """Inference over the binary tensor data extension with tritonclient.http (binary inputs and outputs, or
    tritonclient's JSON with binary=False); returns {name: array} for `outputs` (default: every output of the
    model's metadata)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http)
    try:
        inputs = []
        for name, array in arrays.items():
            tensor = httpclient.InferInput(name, list(array.shape), v2_datatype(array))
            tensor.set_data_from_numpy(array, binary_data=binary)
            inputs.append(tensor)
        if outputs is None:
            outputs = [o["name"] for o in get(server, f"/v2/models/{model}")["outputs"]]
        wanted = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
        result = client.infer(model, inputs, outputs=wanted)
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()


def _raw(array):
    if v2_datatype(array) == "BYTES":
        parts = []
        for x in array.ravel():
            b = x if isinstance(x, bytes) else str(x).encode()
            parts.append(len(b).to_bytes(4, "little") + b)
        return b"".join(parts)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def infer_grpc(server, model, arrays):
    """gRPC ModelInfer with raw_input_contents (as tritonclient.grpc sends); returns {name: array} read from
    raw_output_contents (the server answers raw when asked raw) or the typed contents."""
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=model)
    for name, array in arrays.items():
        request.inputs.add(name=name, datatype=v2_datatype(array), shape=list(array.shape))
        request.raw_input_contents.append(_raw(array))
    with grpc.insecure_channel(server.grpc) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    result = {}
    for i, out in enumerate(response.outputs):
        shape = list(out.shape)
        assert len(response.raw_output_contents) == len(response.outputs), "raw request, typed answer"
        raw = response.raw_output_contents[i]
        if out.datatype == "BYTES":
            items, at = [], 0
            while at < len(raw):
                n = int.from_bytes(raw[at:at + 4], "little")
                items.append(raw[at + 4:at + 4 + n])
                at += 4 + n
            result[out.name] = np.array(items, dtype=np.object_).reshape(shape)
        else:
            dtype = np.dtype(DTYPES[out.datatype]).newbyteorder("<")
            result[out.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return result
