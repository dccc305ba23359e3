"""NaN and infinities in JSON tensor data read back by kserve's InferenceRESTClient (orjson, then numpy in
`as_numpy`): "NaN", "Infinity", "-Infinity" come back as the same floats."""

import asyncio

import numpy as np
from kserve import InferenceRESTClient, RESTConfig

TYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "fp16", "fp32", "fp64"]


async def main(url):
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    inputs = []
    for t in TYPES:
        data = ["NaN", "Infinity", "-Infinity", 2.5] if t.startswith("fp") else [0, 0, 0, 0]
        inputs.append({"name": f"input_{t}", "shape": [1, 4], "datatype": "BOOL" if t == "bool" else t.upper(),
                       "data": data})
    inputs.append({"name": "input_string", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]})
    try:
        response = await client.infer(url, {"inputs": inputs, "outputs": [{"name": "output_fp32"}]},
                                      model_name="datatypes")
    finally:
        await client.close()
    got = response.outputs[0].as_numpy()
    np.testing.assert_array_equal(got.reshape(-1), np.array([np.nan, np.inf, -np.inf, 2.5], dtype=np.float32))


def test_kserve_rest_reads_non_finite_floats(server):
    asyncio.run(main(f"http://{server.http}"))
