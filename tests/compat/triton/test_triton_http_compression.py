"""Every tritonclient.http and tritonclient.http.aio call against oxinfer with gzip on (the default).

The aio client sends `Accept-Encoding: gzip, deflate` on every call (aiohttp's default) but turns decompression
off and decompresses only infer answers: the server must compress nothing else, and infer answers only when
they are worth it (500 bytes or more) and accepted.
"""

import asyncio

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

ROWS = 300  # an iris answer this big (over 500 bytes) is compressed when accepted
IRIS = np.tile(np.array([[6.7, 3.0, 5.2, 2.3]], dtype=np.float32), (ROWS, 1))


def iris_inputs(module, rows, binary):
    data = IRIS[:rows]
    inputs = [module.InferInput("input", list(data.shape), "FP32")]
    inputs[0].set_data_from_numpy(data, binary_data=binary)
    return inputs


def simple_inputs(module):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    return inputs, a


# Calls of APIs this server does not implement (logging, tracing, shared memory): the same 404 JSON error as
# without compression, readable by both clients.
UNIMPLEMENTED = [
    ("get_log_settings", ()),
    ("update_log_settings", ({"log_info": True},)),
    ("get_trace_settings", ()),
    ("update_trace_settings", ("simple", {"trace_rate": "1"})),
    ("get_system_shared_memory_status", ()),
    ("get_cuda_shared_memory_status", ()),
    ("unregister_system_shared_memory", ()),
    ("unregister_cuda_shared_memory", ()),
]


async def aio_calls(client, load_and_unload):
    assert await client.is_server_live()
    assert await client.is_server_ready()
    assert await client.is_model_ready("simple")
    assert not await client.is_model_ready("nope")
    assert "model_repository" in (await client.get_server_metadata())["extensions"]
    assert (await client.get_model_metadata("iris"))["name"] == "iris"
    assert (await client.get_model_config("simple"))["input"][0]["data_type"] == "TYPE_INT32"
    names = {m["name"] for m in await client.get_model_repository_index()}
    assert {"iris", "simple"} <= names
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
        await client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="Model nope not found"):
        await client.get_model_config("nope")

    for binary in (True, False):
        for request_algorithm in (None, "gzip", "deflate"):
            for response_algorithm in (None, "gzip", "deflate"):
                for rows in (1, ROWS):
                    result = await client.infer(
                        "iris",
                        iris_inputs(aioclient, rows, binary),
                        outputs=[aioclient.InferRequestedOutput("label", binary_data=binary)],
                        request_compression_algorithm=request_algorithm,
                        response_compression_algorithm=response_algorithm,
                    )
                    np.testing.assert_array_equal(result.as_numpy("label"), [2] * rows)
    inputs, a = simple_inputs(aioclient)
    result = await client.infer("simple", inputs, model_version="")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
    with pytest.raises(InferenceServerException, match="Model nope not found"):
        await client.infer("nope", iris_inputs(aioclient, 1, True), response_compression_algorithm="gzip")

    stats = await client.get_inference_statistics()
    assert any(m["name"] == "iris" for m in stats["model_stats"])
    stats = await client.get_inference_statistics("iris")
    assert int(stats["model_stats"][0]["inference_stats"]["success"]["count"]) >= 36

    for method, args in UNIMPLEMENTED:
        with pytest.raises(InferenceServerException, match="no route"):
            await getattr(client, method)(*args)

    if load_and_unload:
        await client.unload_model("iris")
        assert not await client.is_model_ready("iris")
        await client.load_model("iris")
        assert await client.is_model_ready("iris")
        await client.load_model("simple", config='{"max_batch_size": 8}')
        assert (await client.get_model_config("simple"))["max_batch_size"] == 8
        with pytest.raises(InferenceServerException, match="field 'ensemble_scheduling' is not supported"):
            await client.load_model("simple", config='{"ensemble_scheduling": {}}')


def run_aio(server, load_and_unload):
    async def run():
        async with aioclient.InferenceServerClient(url=server.http) as client:
            await aio_calls(client, load_and_unload)

    asyncio.run(run())


def test_aio_client_every_call(server):
    run_aio(server, load_and_unload=False)


def test_aio_client_load_and_unload(scratch_server):
    run_aio(scratch_server, load_and_unload=True)


def sync_calls(client, load_and_unload):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.get_model_metadata("iris")["name"] == "iris"
    assert client.get_model_config("simple")["name"] == "simple"
    assert {"iris", "simple"} <= {m["name"] for m in client.get_model_repository_index()}
    for binary in (True, False):
        for request_algorithm in (None, "gzip", "deflate"):
            for response_algorithm in (None, "gzip", "deflate"):
                for rows in (1, ROWS):
                    result = client.infer(
                        "iris",
                        iris_inputs(httpclient, rows, binary),
                        outputs=[httpclient.InferRequestedOutput("label", binary_data=binary)],
                        request_compression_algorithm=request_algorithm,
                        response_compression_algorithm=response_algorithm,
                    )
                    np.testing.assert_array_equal(result.as_numpy("label"), [2] * rows)
    # The async_infer path (a greenlet pool) reads answers the same way.
    inputs, a = simple_inputs(httpclient)
    pending = client.async_infer("simple", inputs, response_compression_algorithm="gzip")
    np.testing.assert_array_equal(pending.get_result().as_numpy("OUTPUT1"), np.zeros_like(a))
    assert client.get_inference_statistics("iris")["model_stats"][0]["name"] == "iris"
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
        client.get_model_metadata("nope")
    for method, args in UNIMPLEMENTED:
        with pytest.raises(InferenceServerException, match="no route"):
            getattr(client, method)(*args)
    if load_and_unload:
        client.unload_model("iris")
        assert not client.is_model_ready("iris")
        client.load_model("iris")
        assert client.is_model_ready("iris")


def test_sync_client_every_call(server):
    client = httpclient.InferenceServerClient(url=server.http, concurrency=2)
    try:
        sync_calls(client, load_and_unload=False)
    finally:
        client.close()


def test_sync_client_load_and_unload(scratch_server):
    client = httpclient.InferenceServerClient(url=scratch_server.http)
    try:
        sync_calls(client, load_and_unload=True)
    finally:
        client.close()


@pytest.mark.parametrize("accept", [None, "gzip, deflate"])
def test_only_large_infer_answers_are_compressed(server, accept):
    import json
    import urllib.request

    def fetch(path, body=None):
        request = urllib.request.Request(f"http://{server.http}{path}", data=body)
        if accept:
            request.add_header("Accept-Encoding", accept)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request) as response:
            return response.headers.get("Content-Encoding"), response.read()

    for path in ("/v2", "/v2/models/iris", "/v2/models/simple/config", "/v2/models/stats"):
        encoding, body = fetch(path)
        assert encoding is None, path
        json.loads(body)
    big = {"inputs": [{"name": "input", "shape": [ROWS, 4], "datatype": "FP32", "data": IRIS.flatten().tolist()}]}
    encoding, _ = fetch("/v2/models/iris/infer", json.dumps(big).encode())
    assert encoding == ("gzip" if accept else None)
    small = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": IRIS[0].tolist()}]}
    encoding, body = fetch("/v2/models/iris/infer", json.dumps(small).encode())
    assert encoding is None and len(body) < 500
