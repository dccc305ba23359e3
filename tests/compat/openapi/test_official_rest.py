"""Schemathesis on the official Open Inference Protocol REST document (kserve/open-inference-protocol, vendored in
tests/compat/official/): every operation it defines, including `GET /v2/` with its trailing slash, answers within
the documented statuses and schemas, with no 5xx, against a server holding a versioned `simple` model."""

import json
import os
import re
import shutil
import subprocess
import urllib.request

from conftest import ROOT, Server
from test_schemathesis import ST

OFFICIAL = ROOT / "tests" / "compat" / "official"
HOOKS = ROOT / "tests" / "compat" / "openapi" / "st_official_hooks.py"


def official_document(tmp_path):
    """The vendored document with its path templates made OpenAPI's: `${MODEL_NAME}` -> `{MODEL_NAME}`."""
    text = (OFFICIAL / "open_inference_rest.yaml").read_text()
    adapted = tmp_path / "open_inference_rest.yaml"
    adapted.write_text(text.replace("${", "{"))
    return adapted


def versioned_repository(tmp_path):
    """The bundled `simple` model served as version 1, as the official document's model routes all carry one."""
    folder = tmp_path / "repository" / "simple"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "model-repository" / "simple" / "model.onnx", folder / "model.onnx")
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "simple", "implementation": "oxinfer.OnnxModel",
         "parameters": {"uri": "./model.onnx", "version": "1"}}))
    return tmp_path / "repository"


def test_official_rest_document(tmp_path):
    document = official_document(tmp_path)
    server = Server(versioned_repository(tmp_path))
    try:
        with urllib.request.urlopen(f"http://{server.http}/v2/models/simple/versions/1/ready") as r:
            assert r.status == 200
        command = [
            str(ST), "run", str(document), "--url", f"http://{server.http}",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--max-examples", "60", "--seed", "20261121",
            "--workers", "2", "--generation-database", "none", "--request-timeout", "30",
            "--no-color", "--warnings", "off",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)})
        assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
        # Every operation of the document ran (6: live, ready, model ready, server metadata, model metadata, infer).
        tested = re.search(r"Operations:\s+(\d+) selected / (\d+) total", result.stdout)
        assert tested and tested.group(1) == tested.group(2) == "6", result.stdout[-3000:]
        counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
        assert counts and int(counts.group(1)) >= 200, result.stdout[-3000:]
    finally:
        server.stop()
