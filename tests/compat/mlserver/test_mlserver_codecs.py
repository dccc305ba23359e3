"""Requests built with MLServer's own codecs (mlserver.codecs), sent to oxinfer as MLServer users send them
(`InferenceRequest(...).model_dump()`, nulls included), and responses read back with the same codecs."""

import base64
import io
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import requests
from mlserver.codecs import (
    Base64Codec,
    DatetimeCodec,
    NumpyCodec,
    NumpyRequestCodec,
    PandasCodec,
    StringCodec,
    StringRequestCodec,
)
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, RequestInput, RequestOutput
from PIL import Image

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def infer(server, model, request: InferenceRequest) -> InferenceResponse:
    r = requests.post(f"http://{server.http}/v2/models/{model}/infer", json=request.model_dump(), timeout=30)
    assert r.status_code == 200, r.text
    return InferenceResponse(**r.json())


def infer_error(server, model, request: InferenceRequest):
    r = requests.post(f"http://{server.http}/v2/models/{model}/infer", json=request.model_dump(), timeout=30)
    assert r.status_code == 400, r.text
    return r.json()["error"]


def output(response, name):
    return next(o for o in response.outputs if o.name == name)


def test_numpy_codec(server):
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("input", IRIS)])
    response = infer(server, "iris", request)
    np.testing.assert_array_equal(NumpyCodec.decode_output(output(response, "label")), [0, 2])
    probabilities = NumpyCodec.decode_output(output(response, "probabilities"))
    assert probabilities.shape == (2, 3)
    assert abs(probabilities[0][0] - 0.98165685) < 1e-6


def test_numpy_request_codec_with_float64(server):
    # NumpyRequestCodec: request-level np, float64 data cast to the model's FP32 as numpy would.
    request = NumpyRequestCodec.encode_request(IRIS.astype(np.float64))
    request.outputs = [RequestOutput(name="label")]
    response = infer(server, "iris", request)
    labels = NumpyRequestCodec.decode_response(response)
    np.testing.assert_array_equal(labels.flatten(), [0, 2])


def test_numpy_request_codec_needs_one_input(server):
    request = NumpyRequestCodec.encode_request(np.ones((1, 16), dtype=np.int32))
    request.inputs.append(NumpyCodec.encode_input("INPUT1", np.ones((1, 16), dtype=np.int32)))
    request.inputs[0].name = "INPUT0"
    assert "exactly one input" in infer_error(server, "simple", request)


def test_string_codecs(server):
    strings = StringCodec.encode_input("INPUT0", [str(i) for i in range(16)], use_bytes=False)
    strings.shape = [1, 16]
    ones = StringCodec.encode_input("INPUT1", ["1"] * 16, use_bytes=False)
    ones.shape = [1, 16]
    response = infer(server, "simple_string", InferenceRequest(inputs=[strings, ones]))
    got = StringCodec.decode_output(output(response, "OUTPUT0"))
    assert got == [str(i + 1) for i in range(16)]
    # StringRequestCodec on the way back: the string labels of iris-labels.
    response = infer(server, "iris-labels", InferenceRequest(inputs=[NumpyCodec.encode_input("input", IRIS)]))
    assert StringCodec.decode_output(output(response, "label")) == ["setosa", "virginica"]
    request = StringRequestCodec.encode_request(["a"])
    assert request.parameters.content_type == "str"


def test_base64_codec(server):
    encoded = Base64Codec.encode_input("INPUT0", [str(i).encode() for i in range(16)], use_bytes=False)
    encoded.shape = [1, 16]
    ones = StringCodec.encode_input("INPUT1", ["2"] * 16, use_bytes=False)
    ones.shape = [1, 16]
    response = infer(server, "simple_string", InferenceRequest(inputs=[encoded, ones]))
    assert StringCodec.decode_output(output(response, "OUTPUT1")) == [str(i - 2) for i in range(16)]
    # Elements that are not base64 ("17": no padding) are taken as they are, as MLServer's Base64Codec does.
    raw = RequestInput(name="INPUT0", shape=[1, 16], datatype="BYTES", data=["17"] * 16,
                       parameters=Parameters(content_type="base64"))
    response = infer(server, "simple_string", InferenceRequest(inputs=[raw, ones]))
    assert StringCodec.decode_output(output(response, "OUTPUT1")) == ["15"] * 16


def test_base64_codec_carries_any_bytes(server):
    # NUL and bytes that are not UTF-8 through an ONNX string Identity: the JSON output is base64 and says so.
    elements = [b"a\x00b", b"\xff", b"", b"a\x00b\x80"]
    request = InferenceRequest(inputs=[Base64Codec.encode_input("INPUT0", elements, use_bytes=False)])
    out = output(infer(server, "identity_string", request), "OUTPUT0")
    assert out.parameters.content_type == "base64"
    assert Base64Codec.decode_output(out) == elements


def datatypes_inputs(n):
    return [
        NumpyCodec.encode_input(f"input_{name}", np.ones((n, 1), dtype=dtype))
        for name, dtype in [("bool", np.bool_), ("int8", np.int8), ("int16", np.int16), ("int32", np.int32),
                            ("uint8", np.uint8), ("uint16", np.uint16), ("uint32", np.uint32),
                            ("uint64", np.uint64), ("fp16", np.float16), ("fp32", np.float32),
                            ("fp64", np.float64)]
    ] + [StringCodec.encode_input("input_string", ["x"] * n, use_bytes=False)]


def test_datetime_codec_feeds_int64_nanoseconds(server):
    moments = [datetime(2021, 8, 24, 15, 1, 19), datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)]
    request = InferenceRequest(inputs=[DatetimeCodec.encode_input("input_int64", moments, use_bytes=False)] + datatypes_inputs(2))
    response = infer(server, "datatypes", request)
    got = NumpyCodec.decode_output(output(response, "output_int64")).flatten().tolist()
    assert got == [1629817279 * 10**9, 10**9]
    bad = RequestInput(name="input_int64", shape=[2, 1], datatype="BYTES", data=["2021-08-24", "tuesday"],
                       parameters=Parameters(content_type="datetime"))
    error = infer_error(server, "datatypes", InferenceRequest(inputs=[bad] + datatypes_inputs(2)))
    assert "input 'input_int64' element 1" in error


def test_pandas_codec_columns_to_inputs(server):
    frame = pd.DataFrame({
        "input_bool": [True, False], "input_int8": np.array([-1, 2], dtype=np.int8),
        "input_int16": np.array([3, 4], dtype=np.int16), "input_int32": np.array([5, 6], dtype=np.int32),
        "input_int64": [7, 8], "input_uint8": np.array([9, 10], dtype=np.uint8),
        "input_uint16": np.array([11, 12], dtype=np.uint16), "input_uint32": np.array([13, 14], dtype=np.uint32),
        "input_uint64": np.array([15, 16], dtype=np.uint64), "input_fp16": np.array([0.5, 1.5], dtype=np.float32),
        "input_fp32": np.array([2.5, 3.5], dtype=np.float32), "input_fp64": [4.5, 5.5],
        "input_string": ["hello", "world"],
    })
    request = PandasCodec.encode_request(frame, use_bytes=False)
    assert request.parameters.content_type == "pd"
    response = infer(server, "datatypes", request)
    result = PandasCodec.decode_response(response)
    assert result["output_int64"].tolist() == [7, 8]
    assert result["output_fp16"].tolist() == [0.5, 1.5]  # float32 column cast to the model's FP16
    assert result["output_fp64"].tolist() == [4.5, 5.5]
    assert [v.decode() if isinstance(v, bytes) else v for v in result["output_string"]] == ["hello", "world"]


def test_pillow_image_codec(server):
    image = Image.new("RGB", (64, 48), (255, 0, 100))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    request = InferenceRequest(inputs=[RequestInput(name="image", shape=[1], datatype="BYTES", data=[data],
                                                    parameters=Parameters(content_type="pillow_image"))])
    response = infer(server, "image_stats", request)
    mean = NumpyCodec.decode_output(output(response, "mean"))
    np.testing.assert_allclose(mean, [[255.0, 0.0, 100.0]], atol=0.01)
    bad = RequestInput(name="image", shape=[1], datatype="BYTES", data=[base64.b64encode(b"text").decode()],
                       parameters=Parameters(content_type="img"))
    assert "input 'image' element 0" in infer_error(server, "image_stats", InferenceRequest(inputs=[bad]))
