"""Starts the real oxinfer binary on free ports for the Python-client compatibility tests."""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, repository):
        binary = os.environ.get("OXINFER_BIN", str(ROOT / "target" / "debug" / "oxinfer"))
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.http = f"127.0.0.1:{self.http_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.process = subprocess.Popen(
            [binary, "start", str(repository), "--host", "127.0.0.1",
             "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
             "--metrics-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"oxinfer exited: {self.process.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"http://{self.http}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("oxinfer did not become ready in 60 s")
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def server():
    s = Server(ROOT / "model-repository")
    yield s
    s.stop()


@pytest.fixture
def scratch_server(tmp_path):
    """A server of its own on a copy of the bundled iris and simple models, for tests that unload and load."""
    import shutil

    for name in ("iris", "simple"):
        shutil.copytree(ROOT / "model-repository" / name, tmp_path / name)
    s = Server(tmp_path)
    yield s
    s.stop()
