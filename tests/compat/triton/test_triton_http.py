"""tritonclient.http, with its defaults (binary tensors), against oxinfer: Triton's example-client flows."""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


@pytest.fixture
def client(server):
    return httpclient.InferenceServerClient(url=server.http)


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("simple")
    assert [i["name"] for i in model["inputs"]] == ["INPUT0", "INPUT1"]
    assert model["inputs"][0]["datatype"] == "INT32"
    config = client.get_model_config("simple")
    assert config["input"][0]["data_type"] == "TYPE_INT32"


@pytest.mark.parametrize("binary", [True, False])
def test_simple_infer(client, binary):
    # Triton's simple_http_infer_client.py flow.
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=not binary)]
    result = client.infer("simple", inputs, outputs=outputs, request_id="7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.get_response()["id"] == "7"


def test_simple_infer_with_default_outputs(client):
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    inputs = [httpclient.InferInput("INPUT0", [2, 16], "INT32"), httpclient.InferInput("INPUT1", [2, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros_like(a))


@pytest.mark.parametrize("binary", [True, False])
def test_simple_string_infer(client, binary):
    # Triton's simple_http_string_infer_client.py flow.
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    sa = np.array([str(x).encode() for x in a.flatten()], dtype=np.object_).reshape(1, 16)
    sb = np.array([str(x).encode() for x in b.flatten()], dtype=np.object_).reshape(1, 16)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "BYTES"), httpclient.InferInput("INPUT1", [1, 16], "BYTES")]
    inputs[0].set_data_from_numpy(sa, binary_data=binary)
    inputs[1].set_data_from_numpy(sb, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    result = client.infer("simple_string", inputs, outputs=outputs)
    out0 = result.as_numpy("OUTPUT0")
    out1 = result.as_numpy("OUTPUT1")
    for i in range(16):
        assert int(out0[0][i]) == a[0][i] + b[0][i]
        assert int(out1[0][i]) == a[0][i] - b[0][i]


DATATYPES = {
    "bool": np.array([[True, False, True]], dtype=np.bool_),
    "int8": np.array([[-128, 0, 127]], dtype=np.int8),
    "int16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "int32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "int64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "uint8": np.array([[0, 1, 255]], dtype=np.uint8),
    "uint16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "uint32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "uint64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "fp16": np.array([[0.5, -2.0, 65504.0]], dtype=np.float16),
    "fp32": np.array([[0.1, -1.5, 3.4e38]], dtype=np.float32),
    "fp64": np.array([[0.1, -1.5, 1.7e308]], dtype=np.float64),
    "string": np.array([["a".encode(), "héllo".encode(), b""]], dtype=np.object_),
}


@pytest.mark.parametrize("binary", [True, False])
def test_every_datatype(client, binary):
    inputs = []
    for suffix, array in DATATYPES.items():
        i = httpclient.InferInput(f"input_{suffix}", list(array.shape), np_to_triton_dtype(array.dtype))
        if suffix == "fp16" and not binary:
            i.set_data_from_numpy(array, binary_data=True)  # tritonclient refuses FP16 as JSON
        else:
            i.set_data_from_numpy(array, binary_data=binary)
        inputs.append(i)
    outputs = [httpclient.InferRequestedOutput(f"output_{s}", binary_data=binary) for s in DATATYPES]
    result = client.infer("datatypes", inputs, outputs=outputs)
    for suffix, array in DATATYPES.items():
        got = result.as_numpy(f"output_{suffix}")
        if suffix == "string":
            assert [x if isinstance(x, bytes) else x.encode() for x in got.flatten()] == list(array.flatten())
        else:
            assert got.dtype == array.dtype, suffix
            np.testing.assert_array_equal(got, array)


def test_classification(client):
    data = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    i = httpclient.InferInput("input", [2, 4], "FP32")
    i.set_data_from_numpy(data)
    result = client.infer("iris", [i], outputs=[httpclient.InferRequestedOutput("probabilities", class_count=2)])
    top = result.as_numpy("probabilities")
    assert top.shape == (2, 2)
    assert top[0][0].decode().endswith(":0:setosa")
    assert top[1][0].decode().endswith(":2:virginica")


def test_errors_and_statistics(client):
    with pytest.raises(InferenceServerException, match="Model nope not found"):
        client.get_model_metadata("nope")
    i = httpclient.InferInput("input", [1, 3], "FP32")
    i.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="input 'input' has shape"):
        client.infer("iris", [i])
    stats = client.get_inference_statistics("iris")
    assert stats["model_stats"][0]["name"] == "iris"
    assert int(stats["model_stats"][0]["inference_stats"]["fail"]["count"]) >= 1


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(client, algorithm):
    # tritonclient compresses the body (JSON header + binary tensors) and asks for a compressed answer.
    a = np.arange(64, dtype=np.int32).reshape(4, 16)
    inputs = [httpclient.InferInput("INPUT0", [4, 16], "INT32"), httpclient.InferInput("INPUT1", [4, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    result = client.infer("simple", inputs, request_compression_algorithm=algorithm,
                          response_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros_like(a))
