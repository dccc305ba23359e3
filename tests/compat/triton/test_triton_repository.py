"""tritonclient's model repository calls (HTTP and gRPC) against oxinfer: index, unload, load."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def client_for(kind, server):
    if kind == "http":
        return httpclient, httpclient.InferenceServerClient(url=server.http)
    return grpcclient, grpcclient.InferenceServerClient(url=server.grpc)


def index_states(kind, client):
    if kind == "http":
        index = client.get_model_repository_index()
    else:
        index = client.get_model_repository_index(as_json=True)["models"]
    return {m["name"]: (m["state"], m.get("reason", "")) for m in index}


def infer_iris(module, client):
    inputs = [module.InferInput("input", list(IRIS.shape), "FP32")]
    inputs[0].set_data_from_numpy(IRIS)
    return client.infer("iris", inputs).as_numpy("label")


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_unload_and_load_while_another_model_serves(kind, scratch_server):
    module, client = client_for(kind, scratch_server)
    assert "model_repository" in client.get_server_metadata(**({"as_json": True} if kind == "grpc" else {}))[
        "extensions"
    ]
    assert index_states(kind, client) == {"iris": ("READY", ""), "simple": ("READY", "")}

    client.unload_model("iris")
    if kind == "http":
        assert not client.is_model_ready("iris")
    else:
        # MLServer's answer for an unknown model (NOT_FOUND); Triton would say ready=false.
        with pytest.raises(InferenceServerException, match="NOT_FOUND"):
            client.is_model_ready("iris")
    assert client.is_model_ready("simple")
    assert client.is_server_ready()
    assert index_states(kind, client)["iris"] == ("UNAVAILABLE", "unloaded")
    with pytest.raises(InferenceServerException, match="Model iris not found"):
        infer_iris(module, client)
    with pytest.raises(InferenceServerException, match="Model nosuch not found"):
        client.unload_model("nosuch")
    with pytest.raises(InferenceServerException, match="Model nosuch not found"):
        client.load_model("nosuch")

    client.load_model("iris")
    assert client.is_model_ready("iris")
    np.testing.assert_array_equal(infer_iris(module, client), [0, 2])
    assert index_states(kind, client)["iris"] == ("READY", "")
