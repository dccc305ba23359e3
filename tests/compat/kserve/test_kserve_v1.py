"""KServe's V1 protocol through kserve's own client (InferenceRESTClient with RESTConfig(protocol="v1")), the
protocol an InferenceService speaks when it leaves protocolVersion unset: liveness (GET /), model readiness
(GET /v1/models/{name}), :predict with instances -> predictions, and errors as HTTPStatusError."""

import asyncio

import httpx
import pytest
from kserve import InferenceRESTClient, RESTConfig

# The bundled iris model's answers for its two usual rows (the values every other test uses).
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
IRIS_LABELS = [0, 2]
IRIS_PROBABILITIES = [
    [0.9816568493843079, 0.01834314875304699, 1.4395041603165737e-08],
    [5.5262844398384914e-05, 0.08008353412151337, 0.9198611974716187],
]


def run(server, work):
    async def main():
        client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
        try:
            return await work(client, f"http://{server.http}")
        finally:
            await client.close()

    return asyncio.run(main())


def test_v1_liveness_and_model_readiness(server):
    async def work(client, url):
        assert await client.is_server_live(url) is True
        assert await client.is_model_ready(url, "iris") is True
        with pytest.raises(httpx.HTTPStatusError) as error:
            await client.is_model_ready(url, "no-such-model")
        assert error.value.response.status_code == 404

    run(server, work)


def test_v1_predict_iris(server):
    async def work(client, url):
        return await client.infer(url, {"instances": IRIS_ROWS}, model_name="iris")

    response = run(server, work)
    predictions = response["predictions"]
    assert [p["label"] for p in predictions] == IRIS_LABELS
    for got, expected in zip(predictions, IRIS_PROBABILITIES):
        assert got["probabilities"] == pytest.approx(expected, abs=1e-6)


def test_v1_predict_objects_keyed_by_input_name(server):
    a = list(range(16))

    async def work(client, url):
        return await client.infer(url, {"instances": [{"INPUT0": a, "INPUT1": a}]}, model_name="simple")

    response = run(server, work)
    assert response["predictions"] == [{"OUTPUT0": [2 * x for x in a], "OUTPUT1": [0] * 16}]


def test_v1_errors_reach_the_client_with_the_message(server):
    async def work(client, url):
        with pytest.raises(httpx.HTTPStatusError) as bad:
            await client.infer(url, {"instances": [[1.0, 2.0]]}, model_name="iris")
        with pytest.raises(httpx.HTTPStatusError) as explain:
            await client.explain(url, "iris", {"instances": IRIS_ROWS})
        return bad.value, explain.value

    bad, explain = run(server, work)
    assert bad.response.status_code == 400 and "input" in str(bad)
    assert explain.response.status_code == 501 and "explainer" in str(explain)
