"""BYTES are bytes: tritonclient (HTTP binary and gRPC) sends elements with NUL and non-UTF-8 bytes through the
identity_string model (an ONNX string Identity) and gets the exact bytes back."""

import base64

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ELEMENTS = [b"a\x00b", b"\xff", b"", b"a\x00b\x80", b"plain"]


def expected():
    return np.array(ELEMENTS, dtype=np.object_)


@pytest.mark.parametrize("binary_output", [True, False])
def test_http_binary(server, binary_output):
    client = httpclient.InferenceServerClient(url=server.http)
    tensor = httpclient.InferInput("INPUT0", [len(ELEMENTS)], "BYTES")
    tensor.set_data_from_numpy(expected(), binary_data=True)
    output = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary_output)
    result = client.infer("identity_string", [tensor], outputs=[output])
    if binary_output:
        got = result.as_numpy("OUTPUT0")
        assert got.dtype == np.object_ and got.shape == (len(ELEMENTS),)
        assert list(got) == ELEMENTS
    else:
        # JSON cannot hold these bytes as text: every element base64, marked as such (MLServer's Base64Codec).
        out = result.get_output("OUTPUT0")
        assert out["parameters"] == {"content_type": "base64"}
        assert [base64.b64decode(e) for e in out["data"]] == ELEMENTS


def test_grpc(server):
    client = grpcclient.InferenceServerClient(url=server.grpc)
    try:
        tensor = grpcclient.InferInput("INPUT0", [len(ELEMENTS)], "BYTES")
        tensor.set_data_from_numpy(expected())
        result = client.infer("identity_string", [tensor], outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
        got = result.as_numpy("OUTPUT0")
        assert got.dtype == np.object_ and got.shape == (len(ELEMENTS),)
        assert list(got) == ELEMENTS
    finally:
        client.close()
