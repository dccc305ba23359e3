"""Schemathesis drives the live server from its own documents: no 5xx, no response outside the documented
statuses, content types, headers and schemas, and invalid requests rejected. `positive_data_acceptance` is
left out: a schema cannot say that the element count must match the shape, so schema-valid requests can be
rightly refused with 400."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Server

ST = Path(sys.executable).with_name("st")
HOOKS = Path(__file__).with_name("st_hooks.py")


def run_schemathesis(location, base_url, max_examples, min_cases, workers=2):
    command = [
        str(ST), "run", location, "--url", base_url,
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(max_examples), "--seed", "20261121",
        "--workers", str(workers), "--generation-database", "none", "--request-timeout", "30",
        "--no-color", "--warnings", "off",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)})
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts and int(counts.group(1)) >= min_cases, result.stdout[-3000:]
    return result.stdout


def test_dataplane_document():
    # A server of its own: the document includes the repository extension, so generated cases may unload
    # the bundled models (the model documents below need them on the shared server).
    # One worker: with two, a generated unload races the other worker's metadata call, which then gets the
    # documented 503 "Model X is unloading" that schemathesis counts as a server error.
    own = Server(ROOT / "model-repository")
    try:
        run_schemathesis(str(ROOT / "openapi" / "dataplane.json"), f"http://{own.http}", 40, 300, workers=1)
    finally:
        own.stop()


@pytest.mark.parametrize("model", ["iris", "simple"])
def test_model_document(server, model):
    base = f"http://{server.http}"
    run_schemathesis(f"{base}/v2/models/{model}/docs/dataplane.json", base, 40, 50)
