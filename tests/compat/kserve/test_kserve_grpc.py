"""kserve's InferenceGRPCClient and InferenceRESTClient against oxinfer (kserve has its own venv: it cannot share a
process with tritonclient, nor a venv with mlserver)."""

import asyncio

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(url: str) -> None:
    client = InferenceGRPCClient(url=url, timeout=30)
    try:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert await client.is_model_ready("iris")

        iris = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        # Raw (binary) contents, kserve's default for numpy data.
        raw = InferInput(name="input", shape=[2, 4], datatype="FP32")
        raw.set_data_from_numpy(iris, binary_data=True)
        response = await client.infer(InferRequest(model_name="iris", infer_inputs=[raw], request_id="k1"))
        assert response.id == "k1", response.id
        outputs = {o.name: o for o in response.outputs}
        assert outputs["label"].as_numpy().tolist() == [0, 2], outputs["label"]
        assert outputs["probabilities"].as_numpy().shape == (2, 3)

        # Typed contents.
        typed = InferInput(name="input", shape=[2, 4], datatype="FP32", data=iris.flatten().tolist())
        response = await client.infer(InferRequest(model_name="iris", infer_inputs=[typed]))
        outputs = {o.name: o for o in response.outputs}
        assert outputs["label"].as_numpy().tolist() == [0, 2], outputs["label"]

        # INT32, typed.
        input0 = list(range(16))
        simple = [
            InferInput(name="INPUT0", shape=[1, 16], datatype="INT32", data=input0),
            InferInput(name="INPUT1", shape=[1, 16], datatype="INT32", data=[1] * 16),
        ]
        response = await client.infer(InferRequest(model_name="simple", infer_inputs=simple))
        outputs = {o.name: o for o in response.outputs}
        assert outputs["OUTPUT0"].as_numpy().flatten().tolist() == [i + 1 for i in input0]

        # BYTES, typed (bytes_contents).
        strings = [
            InferInput(name="INPUT0", shape=[1, 16], datatype="BYTES", data=[str(i) for i in range(16)]),
            InferInput(name="INPUT1", shape=[1, 16], datatype="BYTES", data=["1"] * 16),
        ]
        response = await client.infer(InferRequest(model_name="simple_string", infer_inputs=strings))
        outputs = {o.name: o for o in response.outputs}
        got = [v.decode() if isinstance(v, bytes) else v for v in outputs["OUTPUT0"].as_numpy().flatten()]
        assert got == [str(i + 1) for i in range(16)], got
    finally:
        await client.close()


def test_kserve_inference_grpc_client(server):
    asyncio.run(main(server.grpc))
