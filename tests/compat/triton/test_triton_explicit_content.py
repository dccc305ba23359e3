"""Triton's grpc_explicit_int_content_client.py and grpc_explicit_byte_content_client.py examples, their flow
reproduced with tritonclient.grpc's generated stubs (service_pb2, service_pb2_grpc): requests with typed
`contents`, answers read from `raw_output_contents` only, as Triton always answers. oxinfer does so with
`grpc_raw_outputs: "always"`; by default (MLServer's behaviour) it answers a typed request typed."""

import json
import shutil

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import deserialize_bytes_tensor

from conftest import ROOT, Server


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw-outputs")
    for name in ("simple", "simple_string"):
        shutil.copytree(ROOT / "model-repository" / name, root / name)
    (root / "settings.json").write_text(json.dumps({"grpc_raw_outputs": "always"}))
    s = Server(root)
    yield s
    s.stop()


def explicit_request(model, datatype, input0, input1):
    request = service_pb2.ModelInferRequest()
    request.model_name = model
    request.model_version = ""
    for name, values in (("INPUT0", input0), ("INPUT1", input1)):
        tensor = service_pb2.ModelInferRequest().InferInputTensor()
        tensor.name = name
        tensor.datatype = datatype
        tensor.shape.extend([1, 16])
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(values)
        else:
            tensor.contents.int_contents[:] = values
        request.inputs.append(tensor)
    for name in ("OUTPUT0", "OUTPUT1"):
        output = service_pb2.ModelInferRequest().InferRequestedOutputTensor()
        output.name = name
        request.outputs.append(output)
    return request


def raw_results(response, decode):
    return [np.resize(decode(response.raw_output_contents[i]), list(o.shape)) for i, o in enumerate(response.outputs)]


def test_explicit_int_content(raw_server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(raw_server.grpc))
    input0, input1 = list(range(16)), [1] * 16
    request = explicit_request("simple", "INT32", input0, input1)
    response = stub.ModelInfer(request)
    results = raw_results(response, lambda b: np.frombuffer(b, dtype=np.int32))
    assert len(results) == 2
    assert results[0][0].tolist() == [a + b for a, b in zip(input0, input1)]
    assert results[1][0].tolist() == [a - b for a, b in zip(input0, input1)]
    # Raw and typed contents together are refused, in the words the example looks for.
    request.raw_input_contents.extend([np.array(input0[0:8]).tobytes()])
    request.inputs[0].contents.int_contents[:] = input0[8:]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(request)
    assert ("contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'"
            in str(refused.value))


def test_explicit_byte_content(raw_server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(raw_server.grpc))
    request = explicit_request("simple_string", "BYTES", [str(i).encode() for i in range(16)], [b"1"] * 16)
    response = stub.ModelInfer(request)
    results = raw_results(response, deserialize_bytes_tensor)
    assert len(results) == 2
    assert [int(x) for x in results[0][0]] == [i + 1 for i in range(16)]
    assert [int(x) for x in results[1][0]] == [i - 1 for i in range(16)]


def test_default_answers_typed_requests_typed(server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    response = stub.ModelInfer(explicit_request("simple", "INT32", list(range(16)), [1] * 16))
    assert len(response.raw_output_contents) == 0
    assert list(response.outputs[0].contents.int_contents) == list(range(1, 17))
