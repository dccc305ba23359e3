"""The official Open Inference Protocol gRPC definition (kserve/open-inference-protocol, vendored in
tests/compat/official/): stubs generated from it at test time call every RPC of its service against oxinfer, and
every answer decodes and holds the right values. The model's settings set `content_type` at model and input level,
which is what made ModelMetadata's field 6 (`properties` in this proto, `parameters` in MLServer's) decode as
garbage before oxinfer stopped sending it."""

import json
import shutil
import subprocess
import sys

from conftest import ROOT, Server

CLIENT = ROOT / "tests" / "compat" / "official" / "official_grpc_client.py"


def repository(tmp_path):
    folder = tmp_path / "repository" / "simple"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "model-repository" / "simple" / "model.onnx", folder / "model.onnx")
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "simple", "parameters": {"uri": "./model.onnx", "version": "1", "content_type": "pd"},
        "inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16], "parameters": {"content_type": "np"}}],
    }))
    return tmp_path / "repository"


def test_every_rpc_of_the_official_proto(tmp_path):
    server = Server(repository(tmp_path))
    try:
        done = subprocess.run([sys.executable, str(CLIENT), server.grpc, str(tmp_path / "stubs"), "simple", "1"],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    r = json.loads(done.stdout)
    assert r["server_live"] is True and r["server_ready"] is True and r["model_ready"] is True
    assert r["server_metadata"]["name"] == "oxinfer"
    assert "binary_tensor_data" in r["server_metadata"]["extensions"]
    int32 = lambda name: {"name": name, "datatype": "INT32", "shape": [-1, 16]}
    for key in ("model_metadata", "model_version_metadata"):
        assert r[key] == {
            "name": "simple", "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [int32("INPUT0"), int32("INPUT1")], "outputs": [int32("OUTPUT0"), int32("OUTPUT1")],
            "properties": {},
        }, r[key]
    for key, raw in (("infer_typed", False), ("infer_raw", True)):
        answer = r[key]
        assert (answer["model_name"], answer["model_version"], answer["id"], answer["raw"]) == \
            ("simple", "1", "official", raw), answer
        assert answer["outputs"]["OUTPUT0"] == {"datatype": "INT32", "shape": [1, 16], "data": list(range(1, 17))}
        assert answer["outputs"]["OUTPUT1"]["data"] == list(range(-1, 15))
    assert r["unknown_model"] == ["NOT_FOUND", "Request for unknown model: 'nope' is not found (Model nope not found)"]
