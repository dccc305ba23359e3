"""tritonclient's repository calls (HTTP, HTTP aio, gRPC) against a server whose repository API needs a token
(docs/security.md): refused without it, working with `Authorization: Bearer ...`; the aio client's
`application/octet-stream` bodies are not mistaken for cross-site requests."""

import asyncio
import json
import shutil

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from conftest import ROOT, Server

TOKEN = "compat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# gRPC metadata keys are lower-case.
GRPC_AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def guarded_server(tmp_path):
    shutil.copytree(ROOT / "model-repository" / "iris", tmp_path / "iris")
    (tmp_path / "settings.json").write_text(json.dumps({"repository_api_token": TOKEN}))
    s = Server(tmp_path)
    yield s
    s.stop()


def test_http_needs_the_token(guarded_server):
    client = httpclient.InferenceServerClient(url=guarded_server.http)
    with pytest.raises(InferenceServerException, match="needs a token"):
        client.unload_model("iris")
    with pytest.raises(InferenceServerException, match="token is wrong"):
        client.unload_model("iris", headers={"Authorization": "Bearer nope"})
    assert client.is_model_ready("iris")
    client.unload_model("iris", headers=AUTH)
    assert not client.is_model_ready("iris")
    client.load_model("iris", headers=AUTH)
    assert client.is_model_ready("iris")
    index = client.get_model_repository_index(headers=AUTH)
    assert [(m["name"], m["state"]) for m in index] == [("iris", "READY")]


def test_http_aio_needs_the_token(guarded_server):
    async def run():
        client = aioclient.InferenceServerClient(url=guarded_server.http)
        try:
            # Error bodies are never compressed, so the aio client (aiohttp with auto_decompress off) reads them.
            with pytest.raises(InferenceServerException, match=r"\[401\].*needs a token"):
                await client.load_model("iris")
            await client.unload_model("iris", headers=AUTH)
            assert not await client.is_model_ready("iris")
            await client.load_model("iris", headers=AUTH)
            assert await client.is_model_ready("iris")
        finally:
            await client.close()

    asyncio.run(run())


def test_grpc_needs_the_token(guarded_server):
    client = grpcclient.InferenceServerClient(url=guarded_server.grpc)
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        client.unload_model("iris")
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        client.get_model_repository_index()
    client.unload_model("iris", headers=GRPC_AUTH)
    client.load_model("iris", headers=GRPC_AUTH)
    assert client.is_model_ready("iris")
