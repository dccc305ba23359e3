"""NaN and infinities in JSON tensor data, read back by tritonclient.http (rapidjson, then numpy): oxinfer writes
them as the strings "NaN", "Infinity", "-Infinity", which numpy's `np.array(data, dtype)` turns back into the
same values (`null` would give NaN for an infinity too)."""

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException
import pytest

TYPES = {"bool": np.bool_, "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
         "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64, "fp16": np.float16,
         "fp32": np.float32, "fp64": np.float64, "string": np.object_}
SPECIAL = [np.nan, np.inf, -np.inf, 1.5]


def datatypes_inputs(floats_binary=True):
    inputs = []
    for suffix, dtype in TYPES.items():
        if suffix.startswith("fp"):
            values = np.array([SPECIAL], dtype=dtype)
        elif suffix == "string":
            values = np.array([[b"a", b"b", b"c", b"d"]], dtype=np.object_)
        else:
            values = np.zeros((1, 4), dtype=dtype)
        tensor = httpclient.InferInput(f"input_{suffix}", [1, 4], httpclient.np_to_triton_dtype(values.dtype))
        tensor.set_data_from_numpy(values, binary_data=floats_binary or not suffix.startswith("fp"))
        inputs.append(tensor)
    return inputs


def test_non_finite_json_outputs_read_back(server):
    client = httpclient.InferenceServerClient(server.http)
    outputs = [httpclient.InferRequestedOutput(f"output_{t}", binary_data=False) for t in ("fp16", "fp32", "fp64")]
    result = client.infer("datatypes", datatypes_inputs(), outputs=outputs)
    for t in ("fp16", "fp32", "fp64"):
        assert result.get_output(f"output_{t}")["data"] == ["NaN", "Infinity", "-Infinity", 1.5]
        got = result.as_numpy(f"output_{t}")
        assert got.dtype == TYPES[t]
        np.testing.assert_array_equal(got, np.array([SPECIAL], dtype=TYPES[t]))


def test_bare_nan_literals_from_rapidjson_are_refused_with_400(server):
    """tritonclient.http's JSON input data goes through rapidjson, which writes bare `NaN`/`Infinity`: not JSON,
    refused (docs/conformance.md). Binary input data, tritonclient's default, carries them fine (above)."""
    client = httpclient.InferenceServerClient(server.http)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("datatypes", datatypes_inputs(floats_binary=False))
    assert refused.value.status() == "400"
