"""NaN and infinities in JSON tensor data with MLServer's types and codecs: the strings "NaN", "Infinity",
"-Infinity" and `null` (MLServer's NaN) are read on input; the answer's strings decode back to the same floats
with MLServer's `InferenceResponse` and `NumpyCodec.decode_output`. A finite FP32 beyond range is a 400."""

import numpy as np
import requests
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse

TYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "fp16", "fp32", "fp64"]


def test_non_finite_strings_and_null_in_and_out(server):
    inputs = []
    for t in TYPES:
        data = ["NaN", "Infinity", "-Infinity", None] if t.startswith("fp") else [0, 0, 0, 0]
        datatype = "BOOL" if t == "bool" else t.upper()
        inputs.append({"name": f"input_{t}", "shape": [1, 4], "datatype": datatype, "data": data})
    inputs.append({"name": "input_string", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]})
    answer = requests.post(f"http://{server.http}/v2/models/datatypes/infer", json={
        "inputs": inputs, "outputs": [{"name": "output_fp32"}, {"name": "output_fp64"}]}, timeout=30)
    assert answer.status_code == 200, answer.text
    response = InferenceResponse.model_validate(answer.json())
    for output in response.outputs:
        got = NumpyCodec.decode_output(output)
        np.testing.assert_array_equal(got, np.array([[np.nan, np.inf, -np.inf, np.nan]], dtype=got.dtype))


def test_out_of_range_fp32_is_a_400_naming_the_input(server):
    inputs = [{"name": "input_fp32", "shape": [1, 1], "datatype": "FP32", "data": [1e39]}]
    answer = requests.post(f"http://{server.http}/v2/models/datatypes/infer", json={"inputs": inputs}, timeout=30)
    assert answer.status_code == 400
    assert "input 'input_fp32'" in answer.json()["error"] and "out of range" in answer.json()["error"]
