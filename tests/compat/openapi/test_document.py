"""The OpenAPI documents oxinfer serves are valid OpenAPI 3.1 (openapi-spec-validator)."""

import json
import urllib.request

import pytest
from openapi_spec_validator import validate

from conftest import ROOT

MODELS = ["iris", "iris-labels", "datatypes", "simple", "simple_string", "image_stats", "identity_string"]


def fetch(server, path):
    with urllib.request.urlopen(f"http://{server.http}{path}", timeout=10) as r:
        return json.load(r)


def test_committed_document_is_valid():
    document = json.loads((ROOT / "openapi" / "dataplane.json").read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_served_document_is_the_committed_one(server):
    committed = json.loads((ROOT / "openapi" / "dataplane.json").read_text())
    assert fetch(server, "/v2/docs/dataplane.json") == committed


@pytest.mark.parametrize("model", MODELS)
def test_model_documents_are_valid(server, model):
    document = fetch(server, f"/v2/models/{model}/docs/dataplane.json")
    validate(document)
    assert f"/v2/models/{model}/infer" in document["paths"]
