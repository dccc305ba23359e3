"""Triton's model-control flow (its simple_{http,grpc}_model_control.py examples) against oxinfer, over
tritonclient.http and tritonclient.grpc: load with and without a `config` override, unload, repository index,
readiness in between, on a scratch copy of the bundled repository."""

import json
import shutil

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ROOT, Server

BUNDLED = sorted(p.name for p in (ROOT / "model-repository").iterdir() if p.is_dir())


@pytest.fixture
def repository_server(tmp_path):
    """A server of its own on a copy of the whole bundled repository."""
    for name in BUNDLED:
        shutil.copytree(ROOT / "model-repository" / name, tmp_path / name)
    s = Server(tmp_path)
    yield s
    s.stop()


def client_for(kind, server):
    if kind == "http":
        return httpclient, httpclient.InferenceServerClient(url=server.http)
    return grpcclient, grpcclient.InferenceServerClient(url=server.grpc)


def index(kind, client):
    if kind == "http":
        return client.get_model_repository_index()
    return client.get_model_repository_index(as_json=True)["models"]


def config(kind, client, name):
    if kind == "http":
        return client.get_model_config(name)
    return client.get_model_config(name, as_json=True)["config"]


def bad_request_status(kind):
    return "400" if kind == "http" else "StatusCode.INVALID_ARGUMENT"


def infer_simple(module, client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    np.testing.assert_array_equal(client.infer("simple", inputs).as_numpy("OUTPUT0"), a * 2)


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_model_control_with_config_override(kind, repository_server):
    module, client = client_for(kind, repository_server)
    model = "simple"
    assert sorted(m["name"] for m in index(kind, client)) == BUNDLED

    client.load_model(model)
    assert client.is_model_ready(model)
    assert int(config(kind, client, model).get("max_batch_size", 0)) == 4  # the batching form's default

    # A malformed configuration (the examples' "wrong format"): a failed load, 400 / INVALID_ARGUMENT.
    with pytest.raises(InferenceServerException) as error:
        client.load_model(model, config='"parameters": {"config": {{"max_batch_size": "16"}}}')
    assert "failed to load" in error.value.message()
    assert error.value.status() == bad_request_status(kind)
    assert client.is_model_ready(model), "the loaded copy keeps serving"

    # The examples' override: max_batch_size as a string, as protobuf's JSON allows.
    client.load_model(model, config='{"max_batch_size":"16"}')
    assert client.is_model_ready(model)
    updated = config(kind, client, model)
    assert int(updated["max_batch_size"]) == 16
    assert [int(d) for d in updated["input"][0]["dims"]] == [16], "dims leave out the batch dimension"
    infer_simple(module, client)

    # Batching and instances, in the configuration's own shape (what get_model_config gives, edited).
    edited = dict(updated)
    edited["max_batch_size"] = 8
    edited["dynamic_batching"] = {"max_queue_delay_microseconds": 1000}
    edited["instance_group"] = [{"kind": "KIND_CPU", "count": 2}]
    client.load_model(model, config=json.dumps(edited))
    updated = config(kind, client, model)
    assert int(updated["max_batch_size"]) == 8
    assert int(updated["dynamic_batching"]["max_queue_delay_microseconds"]) == 1000
    assert int(updated["instance_group"][0]["count"]) == 2
    infer_simple(module, client)

    # Fields this server has no use for: refused, naming the field; the loaded copy is untouched.
    for override, field in [
        ('{"ensemble_scheduling": {"step": []}}', "ensemble_scheduling"),
        ('{"max_batch_size": 4, "sequence_batching": {}}', "sequence_batching"),
        ('{"instance_group": [{"kind": "KIND_GPU", "count": 1}]}', "instance_group[0].kind"),
        ('{"input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16], "reshape": {"shape": [4, 4]}}]}',
         "input[0].reshape"),
    ]:
        with pytest.raises(InferenceServerException) as error:
            client.load_model(model, config=override)
        assert error.value.status() == bad_request_status(kind), override
        assert f"field '{field}'" in error.value.message(), error.value.message()
    assert int(config(kind, client, model)["max_batch_size"]) == 8

    client.unload_model(model)
    if kind == "http":
        assert not client.is_model_ready(model)
    else:
        with pytest.raises(InferenceServerException, match="Request for unknown model"):
            client.is_model_ready(model)
    states = {m["name"]: m["state"] for m in index(kind, client)}
    assert states[model] == "UNAVAILABLE"
    assert all(state == "READY" for name, state in states.items() if name != model)

    # Loaded without a configuration: back to the repository's files.
    client.load_model(model)
    assert client.is_model_ready(model)
    assert int(config(kind, client, model).get("max_batch_size", 0)) == 4  # the batching form's default
    assert "dynamic_batching" not in config(kind, client, model)

    with pytest.raises(InferenceServerException) as error:
        client.load_model("wrong_model_name")
    assert "failed to load" in error.value.message()
    assert client.is_server_live() and client.is_server_ready()
