"""Calls every RPC of the official Open Inference Protocol gRPC service (stubs generated here, with grpcio-tools,
from the vendored `open_inference_grpc.proto`) against a server, and prints what came back as JSON.

Usage: python official_grpc_client.py ADDRESS OUT_DIR MODEL VERSION
Runs in its own process: the generated `inference.*` messages would clash with tritonclient's, kserve's or
MLServer's copies in one protobuf descriptor pool."""

import json
import struct
import sys
from pathlib import Path

import grpc
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent


def generate(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", str(HERE / "open_inference_grpc.proto")])
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, str(out))


def main(address, out, model, version):
    generate(Path(out))
    import open_inference_grpc_pb2 as pb
    import open_inference_grpc_pb2_grpc as rpc

    stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
    result = {}
    result["server_live"] = stub.ServerLive(pb.ServerLiveRequest()).live
    result["server_ready"] = stub.ServerReady(pb.ServerReadyRequest()).ready
    result["model_ready"] = stub.ModelReady(pb.ModelReadyRequest(name=model, version=version)).ready
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    result["server_metadata"] = {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
    # ModelMetadata must decode without error, and hold no garbage in the official `properties` (field 6).
    for key, request in [("model_metadata", pb.ModelMetadataRequest(name=model)),
                         ("model_version_metadata", pb.ModelMetadataRequest(name=model, version=version))]:
        m = stub.ModelMetadata(request)
        result[key] = {
            "name": m.name, "versions": list(m.versions), "platform": m.platform,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in m.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in m.outputs],
            "properties": dict(m.properties),
        }

    def request(raw):
        inputs = []
        for name, values in [("INPUT0", list(range(16))), ("INPUT1", [1] * 16)]:
            tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="INT32", shape=[1, 16])
            if not raw:
                tensor.contents.int_contents.extend(values)
            inputs.append(tensor)
        message = pb.ModelInferRequest(model_name=model, model_version=version, id="official", inputs=inputs)
        message.outputs.add(name="OUTPUT0")
        message.outputs.add(name="OUTPUT1")
        if raw:
            message.raw_input_contents.extend([struct.pack("<16i", *range(16)), struct.pack("<16i", *[1] * 16)])
        return message

    for key, raw in [("infer_typed", False), ("infer_raw", True)]:
        response = stub.ModelInfer(request(raw))
        outputs = {}
        for i, o in enumerate(response.outputs):
            if response.raw_output_contents:
                values = list(struct.unpack(f"<{len(response.raw_output_contents[i]) // 4}i",
                                            response.raw_output_contents[i]))
            else:
                values = list(o.contents.int_contents)
            outputs[o.name] = {"datatype": o.datatype, "shape": list(o.shape), "data": values}
        result[key] = {"model_name": response.model_name, "model_version": response.model_version,
                       "id": response.id, "raw": bool(response.raw_output_contents), "outputs": outputs}
    try:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))
        result["unknown_model"] = "OK"
    except grpc.RpcError as e:
        result["unknown_model"] = [e.code().name, e.details()]
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:5])
