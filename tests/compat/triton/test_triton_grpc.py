"""Compatibility: oxinfer's gRPC endpoint driven by tritonclient.grpc (kserve's client has its own venv and
test folder: the two packages cannot be imported into one process, both register protobuf messages inference.*)."""

import queue
from functools import partial

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
DATATYPES = {
    "bool": ("BOOL", np.array([[True, False, True], [False, True, True]])),
    "int8": ("INT8", np.array([[-128, -1, 0], [1, 2, 127]], dtype=np.int8)),
    "int16": ("INT16", np.array([[-32768, -1, 0], [1, 2, 32767]], dtype=np.int16)),
    "int32": ("INT32", np.array([[-(2**31), -1, 0], [1, 2, 2**31 - 1]], dtype=np.int32)),
    "int64": ("INT64", np.array([[-(2**63), -1, 0], [1, 2, 2**63 - 1]], dtype=np.int64)),
    "uint8": ("UINT8", np.array([[0, 1, 2], [3, 200, 255]], dtype=np.uint8)),
    "uint16": ("UINT16", np.array([[0, 1, 2], [3, 200, 65535]], dtype=np.uint16)),
    "uint32": ("UINT32", np.array([[0, 1, 2], [3, 200, 2**32 - 1]], dtype=np.uint32)),
    "uint64": ("UINT64", np.array([[0, 1, 2], [3, 200, 2**64 - 1]], dtype=np.uint64)),
    "fp16": ("FP16", np.array([[1.5, -2.0, 0.25], [0.0, 65504.0, -0.5]], dtype=np.float16)),
    "fp32": ("FP32", np.array([[1.5, -2.25, 3.0e38], [0.0, 1e-3, -7.0]], dtype=np.float32)),
    "fp64": ("FP64", np.array([[1e300, -2.5, 0.1], [0.0, -1e-300, 3.0]], dtype=np.float64)),
    "string": ("BYTES", np.array([[b"a", b"", "h\u00e9llo".encode()], [b"x y", b"123", b"\xf0\x9f\x98\x80"]],
                                 dtype=np.object_)),
}


@pytest.fixture
def client(server):
    c = grpcclient.InferenceServerClient(url=server.grpc)
    yield c
    c.close()


def make_input(name, datatype, array):
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def simple_inputs(offset=0):
    input0 = np.arange(offset, offset + 16, dtype=np.int32).reshape(1, 16)
    input1 = np.ones((1, 16), dtype=np.int32)
    return input0, input1, [make_input("INPUT0", "INT32", input0), make_input("INPUT1", "INT32", input1)]


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    meta = client.get_server_metadata()
    assert meta.name == "oxinfer"
    model = client.get_model_metadata("iris")
    assert model.name == "iris"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input", "FP32", [-1, 4])]
    assert [t.name for t in model.outputs] == ["label", "probabilities"]


def test_infer_fp32_iris(client):
    result = client.infer("iris", [make_input("input", "FP32", IRIS)], request_id="iris-1")
    assert result.get_response().id == "iris-1"
    assert result.as_numpy("label").tolist() == [0, 2]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_infer_int32_simple_with_requested_outputs(client):
    input0, input1, inputs = simple_inputs()
    outputs = [grpcclient.InferRequestedOutput("OUTPUT1")]
    result = client.infer("simple", inputs, outputs=outputs)
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), input0 - input1)


def test_infer_bytes_simple_string(client):
    numbers = np.array([str(i).encode() for i in range(16)], dtype=np.object_).reshape(1, 16)
    ones = np.array([b"1"] * 16, dtype=np.object_).reshape(1, 16)
    inputs = [make_input("INPUT0", "BYTES", numbers), make_input("INPUT1", "BYTES", ones)]
    result = client.infer("simple_string", inputs)
    assert result.as_numpy("OUTPUT0").tolist() == [[str(i + 1).encode() for i in range(16)]]
    assert result.as_numpy("OUTPUT1").tolist() == [[str(i - 1).encode() for i in range(16)]]


def test_every_datatype_round_trips(client):
    inputs = [make_input(f"input_{name}", datatype, array) for name, (datatype, array) in DATATYPES.items()]
    result = client.infer("datatypes", inputs)
    for name, (datatype, array) in DATATYPES.items():
        output = result.get_output(f"output_{name}")
        assert output.datatype == datatype
        got = result.as_numpy(f"output_{name}")
        assert got.shape == array.shape, name
        assert got.tolist() == array.tolist(), name


def test_large_tensor(client):
    arrays = {name: array for name, (_, array) in DATATYPES.items()}
    arrays["fp32"] = np.arange(2_000_000, dtype=np.float32).reshape(1, 2_000_000)
    inputs = [make_input(f"input_{name}", DATATYPES[name][0], a) for name, a in arrays.items()]
    result = client.infer("datatypes", inputs, outputs=[grpcclient.InferRequestedOutput("output_fp32")])
    np.testing.assert_array_equal(result.as_numpy("output_fp32"), arrays["fp32"])


def test_unknown_model_is_not_found(client):
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [make_input("input", "FP32", IRIS)])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "Model nope not found" in info.value.message()


def test_stream_answers_in_order_with_an_error_in_the_middle(client):
    replies = queue.Queue()
    client.start_stream(callback=lambda result, error: replies.put((result, error)))
    try:
        input0, input1, inputs = simple_inputs()
        client.async_stream_infer("simple", inputs, request_id="1")
        client.async_stream_infer("nope", inputs, request_id="2")
        _, _, later = simple_inputs(offset=100)
        client.async_stream_infer("simple", later, request_id="3")
        got = [replies.get(timeout=30) for _ in range(3)]
    finally:
        client.stop_stream()
    (first, first_error), (_, bad_error), (third, third_error) = got
    assert first_error is None and third_error is None
    assert first.get_response().id == "1" and third.get_response().id == "3"
    np.testing.assert_array_equal(first.as_numpy("OUTPUT0"), input0 + input1)
    np.testing.assert_array_equal(third.as_numpy("OUTPUT0"), np.arange(100, 116).reshape(1, 16) + 1)
    assert "Model nope not found" in str(bad_error)
