"""Starts the built oxinfer binary on free ports for the compatibility tests and stops it afterwards."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> Path:
    if os.environ.get("OXINFER_BIN"):
        return Path(os.environ["OXINFER_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "oxinfer"


@pytest.fixture(scope="session")
def server():
    """A running server: yields {"grpc": "127.0.0.1:PORT", "http": ...}; waits until ServerReady says true."""
    import tritonclient.grpc as grpcclient

    path = binary()
    assert path.is_file(), f"{path} missing: run `cargo build` first (or set OXINFER_BIN)"
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        [str(path), "start", str(ROOT / "model-repository"), "--host", "127.0.0.1",
         "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"127.0.0.1:{grpc_port}"
    client = grpcclient.InferenceServerClient(url=url)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, process.stderr.read().decode(errors="replace")
            try:
                if client.is_server_ready():
                    break
            except Exception:  # not listening yet
                pass
            assert time.monotonic() < deadline, "server not ready within 60 s"
            time.sleep(0.05)
        yield {"grpc": url, "http": f"127.0.0.1:{http_port}"}
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
