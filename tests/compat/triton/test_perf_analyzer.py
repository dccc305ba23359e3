"""Triton's perf_analyzer drives oxinfer over HTTP and gRPC: it reads the model config, sends load, and reads the
statistics. As against Triton's own `simple`, no `--shape` is needed: the config is in Triton's batching form
(`max_batch_size` > 0, dims without the batch dimension), so perf_analyzer sends batch-1 requests of [1, 16]."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_perf_analyzer(*args):
    command = ["bash", str(ROOT / "scripts" / "perf-analyzer.sh"), "-m", "simple",
               "--measurement-interval", "500", "--concurrency-range", "1:2",
               # A smoke test, not a benchmark: accept the first windows even on a busy 2-core machine.
               "--stability-percentage", "1000", "--max-trials", "20", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_perf_analyzer_over_http(server):
    out = run_perf_analyzer("-u", server.http)
    assert "Concurrency: 2, throughput:" in out, out
    assert "Successful request count" in out, out


def test_perf_analyzer_over_grpc(server):
    out = run_perf_analyzer("-i", "grpc", "-u", server.grpc)
    assert "Concurrency: 2, throughput:" in out, out
    assert "Successful request count" in out, out
