"""MLServer's own gRPC stubs (mlserver.grpc.dataplane_pb2, the proto Seldon Core v2 shares) read oxinfer's
ModelMetadata: it decodes, and the per-tensor `parameters` (content types) arrive. The model-level map (field 6)
is not sent, because the official proto declares that field differently (docs/conformance.md); MLServer's
converter then reads an empty parameters map, as it does from Triton or kserve."""

import json
import shutil

import grpc
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc import dataplane_pb2_grpc as rpc
from mlserver.grpc.converters import ModelMetadataResponseConverter

from conftest import ROOT, Server


def test_mlserver_stubs_decode_model_metadata(tmp_path):
    folder = tmp_path / "simple"
    folder.mkdir()
    shutil.copy(ROOT / "model-repository" / "simple" / "model.onnx", folder / "model.onnx")
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "simple", "parameters": {"uri": "./model.onnx", "content_type": "pd"},
        "inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16], "parameters": {"content_type": "np"}}],
    }))
    server = Server(tmp_path)
    try:
        stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
        message = stub.ModelMetadata(pb.ModelMetadataRequest(name="simple"))
    finally:
        server.stop()
    assert [t.name for t in message.inputs] == ["INPUT0", "INPUT1"]
    assert message.inputs[0].parameters["content_type"].string_param == "np"
    assert len(message.parameters) == 0
    # MLServer's own converter turns it into its pydantic type without complaint.
    metadata = ModelMetadataResponseConverter.to_types(message)
    assert metadata.name == "simple" and metadata.platform == "onnxruntime_onnx"
    assert metadata.inputs[0].parameters.content_type == "np"
    assert metadata.outputs[0].shape == [-1, 16]
