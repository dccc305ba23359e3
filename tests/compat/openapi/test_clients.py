"""Clients made from OpenAPI documents call oxinfer: a client generated here from openapi/dataplane.json
(openapi-python-client), and the Open Inference Protocol's own generated client (open-inference-openapi)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The Python client openapi-python-client generates from the committed document."""
    folder = tmp_path_factory.mktemp("generated")
    config = folder / "config.yml"
    config.write_text("project_name_override: oxinfer_client\npackage_name_override: oxinfer_client\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", str(ROOT / "openapi" / "dataplane.json"),
         "--meta", "none", "--output-path", str(folder / "oxinfer_client"), "--config", str(config)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout, result.stdout
    sys.path.insert(0, str(folder))
    yield importlib.import_module("oxinfer_client")
    sys.path.remove(str(folder))


def test_generated_client_infers(server, generated):
    from oxinfer_client.api.inference import model_infer
    from oxinfer_client.api.model import model_metadata
    from oxinfer_client.models import Datatype, InferenceRequest, InferenceResponse, RequestInput, RequestOutput

    client = generated.Client(base_url=f"http://{server.http}")
    metadata = model_metadata.sync(name="iris", client=client)
    assert [t.name for t in metadata.inputs] == ["input"]
    request = InferenceRequest(
        id="generated-1",
        inputs=[RequestInput(name="input", shape=[2, 4], datatype=Datatype.FP32, data=IRIS_ROWS)],
        outputs=[RequestOutput(name="label")],
    )
    response = model_infer.sync(name="iris", client=client, body=request)
    assert isinstance(response, InferenceResponse), response
    assert response.id == "generated-1"
    assert [o.name for o in response.outputs] == ["label"]
    assert response.outputs[0].data == [0, 2]


def test_generated_client_reads_errors(server, generated):
    from oxinfer_client.api.inference import model_infer
    from oxinfer_client.models import Datatype, ErrorBody, InferenceRequest, RequestInput

    client = generated.Client(base_url=f"http://{server.http}")
    request = InferenceRequest(inputs=[RequestInput(name="nope", shape=[1], datatype=Datatype.FP32, data=[1.0])])
    response = model_infer.sync_detailed(name="iris", client=client, body=request)
    assert response.status_code == 400
    assert isinstance(response.parsed, ErrorBody) and "nope" in response.parsed.error
    missing = model_infer.sync_detailed(name="no-such-model", client=client, body=request)
    assert missing.status_code == 404 and missing.parsed.error == (
        "Request for unknown model: 'no-such-model' is not found (Model no-such-model not found)"
    )


def test_open_inference_client_infers(server):
    from open_inference.openapi.client import OpenInferenceClient, InferenceRequest
    from open_inference.openapi.types import RequestInput

    client = OpenInferenceClient(base_url=f"http://{server.http}")
    client.check_server_readiness()
    assert client.read_model_metadata("simple").name == "simple"
    request = InferenceRequest(
        id="oip-1",
        inputs=[RequestInput(name="input", shape=[2, 4], datatype="FP32", data=IRIS_ROWS)],
    )
    response = client.model_infer("iris", request=request)
    assert response.model_name == "iris" and response.id == "oip-1"
    outputs = {o.name: o for o in response.outputs}
    assert outputs["label"].data.__root__ == [0, 2]
    assert outputs["probabilities"].shape == [2, 3]
