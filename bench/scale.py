"""Scale and memory bench (issue 22, item 5), standard library only:

  start   a repository of N copies of model-repository/iris (default 200): time from spawn to /v2/health/ready,
          VmRSS / VmHWM, threads (total and by name, from /proc/PID/task/*/comm), and the latency of
          POST /v2/repository/index, GET /metrics, one unload and one load.
  tensor  one FP32 tensor of SIZE bytes (default 100 MB) through an Identity model, over REST with the binary
          tensor extension and over gRPC raw_input_contents: the server's peak RSS (VmHWM, reset through
          /proc/PID/clear_refs before each request) against the payload.

  python3 bench/scale.py start [--models N] [--runs R] [--binary PATH]
  python3 bench/scale.py tensor [--mb SIZE] [--runs R] [--binary PATH] [--no-arena]

Needs a release build: cargo build --release --bin oxinfer --example loadgen (the tensor case sends its requests
with bench/loadgen.rs). Prints one JSON object per run and a summary line; the targets are <= 2 s to ready, a
thread count that does not grow with N, and a peak RSS <= 3x the payload."""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "scale"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OXINFER = TARGET / "release" / "oxinfer"
LOADGEN = TARGET / "release" / "examples" / "loadgen"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
    }


def thread_names(pid: int) -> dict:
    """Threads by name, digits folded (model-iris-7-0 -> model-iris-#-#)."""
    names = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[re.sub(r"\d+", "#", (task / "comm").read_text().strip())] += 1
        except OSError:
            pass
    return dict(names.most_common())


class Server:
    def __init__(self, binary: Path, repo: Path, env: dict | None = None):
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        cmd = [str(binary), "start", str(repo), "--host", "127.0.0.1", "--http-port", str(self.http),
               "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics)]
        self.log = open(WORK / "server.log", "w")
        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=dict(os.environ, **(env or {})))
        self.ready_s = self.wait_ready(started)

    def wait_ready(self, started: float) -> float:
        while time.perf_counter() < started + 120:
            if self.process.poll() is not None:
                raise SystemExit(f"oxinfer exited; see {WORK / 'server.log'}")
            try:
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.005)
        raise SystemExit("oxinfer not ready in 120 s")

    def request(self, method: str, path: str, port: int | None = None, body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.http, timeout=30)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def timed(self, method: str, path: str, port: int | None = None, body: bytes | None = None) -> float:
        started = time.perf_counter()
        code, data = self.request(method, path, port, body)
        elapsed = (time.perf_counter() - started) * 1000
        if code != 200:
            raise SystemExit(f"{method} {path}: {code} {data[:200]!r}")
        return elapsed

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def iris_repository(models: int) -> Path:
    repo = WORK / f"repo-iris-{models}"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    source = ROOT / "model-repository" / "iris"
    settings = json.loads((source / "model-settings.json").read_text())
    for i in range(models):
        folder = repo / f"iris-{i}"
        folder.mkdir()
        shutil.copy(source / "model.onnx", folder / "model.onnx")
        (folder / "model-settings.json").write_text(json.dumps(dict(settings, name=f"iris-{i}")))
    return repo


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def start_case(binary: Path, models: int) -> dict:
    repo = iris_repository(models)
    server = Server(binary, repo)
    try:
        pid = server.process.pid
        at_ready = status(pid)
        names_at_ready = thread_names(pid)
        index = [server.timed("POST", "/v2/repository/index", body=b"{}") for _ in range(5)]
        metrics = [server.timed("GET", "/metrics", port=server.metrics) for _ in range(5)]
        unload = server.timed("POST", "/v2/repository/models/iris-0/unload", body=b"{}")
        load = server.timed("POST", "/v2/repository/models/iris-0/load", body=b"{}")
        infer = server.timed("POST", "/v2/models/iris-1/infer",
                             body=json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                                                          "data": [5.1, 3.5, 1.4, 0.2]}]}).encode())
        # Threads once the start-up helpers have gone (tokio's blocking threads linger 10 s after their last task).
        time.sleep(11)
        settled = status(pid)
        return {
            "models": models,
            "ready_s": round(server.ready_s, 3),
            "rss_mb": round(at_ready["rss_mb"], 1),
            "hwm_mb": round(at_ready["hwm_mb"], 1),
            "threads_at_ready": at_ready["threads"],
            "threads_settled": settled["threads"],
            "rss_settled_mb": round(settled["rss_mb"], 1),
            "thread_names_at_ready": names_at_ready,
            "thread_names_settled": thread_names(pid),
            "index_ms": round(median(index), 2),
            "metrics_ms": round(median(metrics), 2),
            "unload_ms": round(unload, 2),
            "load_ms": round(load, 2),
            "first_infer_ms": round(infer, 2),
        }
    finally:
        server.stop()


# --- tensor: an Identity model written by hand (ONNX protobuf), so no onnx package is needed ---

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def value_info(name: str) -> bytes:
    dims = field(1, field(2, "N")) + field(1, field(2, "M"))  # TensorShapeProto.dim { dim_param }
    tensor_type = field(1, 1) + field(2, dims)  # elem_type FLOAT, shape
    return field(1, name) + field(2, field(1, tensor_type))  # name, type { tensor_type }


def identity_model() -> bytes:
    node = field(1, "input") + field(2, "output") + field(4, "Identity")
    graph = field(1, node) + field(2, "identity") + field(11, value_info("input")) + field(12, value_info("output"))
    opset = field(1, "") + field(2, 17)
    return field(1, 8) + field(8, opset) + field(7, graph)  # ir_version, opset_import, graph


def identity_repository(limit: int, arena: bool) -> Path:
    repo = WORK / "repo-identity"
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "identity").mkdir(parents=True)
    (repo / "identity" / "model.onnx").write_bytes(identity_model())
    (repo / "identity" / "model-settings.json").write_text(json.dumps(
        {"name": "identity", "implementation": "oxinfer.OnnxModel",
         "parameters": {"uri": "./model.onnx", "extra": {"enable_cpu_mem_arena": arena}}}))
    (repo / "settings.json").write_text(json.dumps(
        {"max_request_body_size": limit, "grpc_max_message_length": limit, "max_tensor_elements": limit}))
    return repo


def reset_peak(pid: int):
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def loadgen(*args) -> dict:
    out = subprocess.run([str(LOADGEN), *map(str, args), "--concurrency", "1", "--seconds", "0.3",
                          "--warmup", "0"], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("errors") or not result.get("requests"):
        raise SystemExit(f"loadgen: {result}")
    return result


def tensor_case(binary: Path, size: int, arena: bool) -> dict:
    columns = 1024
    rows = size // 4 // columns
    payload = rows * columns * 4
    repo = identity_repository(2 * payload + (1 << 20), arena)
    header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, columns],
                                     "parameters": {"binary_data_size": payload}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    body = WORK / "tensor-body.bin"
    with open(body, "wb") as f:
        f.write(header)
        f.write(struct.pack("<f", 0.5) * (1 << 20))
        left = payload - 4 * (1 << 20)
        chunk = struct.pack("<f", 0.5) * (1 << 18)
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
    server = Server(binary, repo)
    try:
        pid = server.process.pid
        time.sleep(0.5)
        idle = status(pid)["rss_mb"]
        out = {"payload_mb": round(payload / 2**20, 1), "arena": arena, "idle_rss_mb": round(idle, 1)}
        for name, args in [
            ("rest_binary", ["http", "--url", f"http://127.0.0.1:{server.http}/v2/models/identity/infer",
                             "--body", body, "--header-length", len(header)]),
            ("grpc_raw", ["grpc", "--addr", f"http://127.0.0.1:{server.grpc}", "--model", "identity",
                          "--input", "input", "--shape", f"{rows},{columns}"]),
        ]:
            time.sleep(4)  # the server trims its arenas a few seconds after a large request
            before = status(pid)["rss_mb"]
            reset_peak(pid)
            result = loadgen(*args)
            peak = status(pid)["hwm_mb"]
            out[name] = {
                "rss_before_mb": round(before, 1),
                "peak_mb": round(peak, 1),
                "peak_over_payload": round(peak * 2**20 / payload, 2),
                "growth_over_payload": round((peak - before) * 2**20 / payload, 2),
                "latency_ms": result.get("p50_ms"),
            }
        return out
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["start", "tensor"])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", type=Path, default=OXINFER)
    parser.add_argument("--no-arena", action="store_true",
                        help="tensor: the identity model with enable_cpu_mem_arena false")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    for _ in range(args.runs):
        result = start_case(args.binary, args.models) if args.case == "start" else \
            tensor_case(args.binary, args.mb * 10**6, not args.no_arena)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.case == "start":
        keys = ["ready_s", "rss_mb", "threads_at_ready", "threads_settled", "index_ms", "metrics_ms", "unload_ms",
                "load_ms"]
        print("summary: " + ", ".join(f"{k} {min(r[k] for r in results)}-{max(r[k] for r in results)}"
                                      for k in keys))
    else:
        for name in ["rest_binary", "grpc_raw"]:
            print(f"summary {name}: peak/payload " + ", ".join(str(r[name]["peak_over_payload"]) for r in results)
                  + "; growth/payload " + ", ".join(str(r[name]["growth_over_payload"]) for r in results))


if __name__ == "__main__":
    sys.exit(main())
