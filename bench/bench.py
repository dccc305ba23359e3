"""Runs the benchmark: oxinfer and MLServer on the same models, the server pinned to one core and the load
generator to another (taskset), closed-loop load at several concurrencies; writes bench/results.md, results.json
and results.svg. Started by bench/run.sh (which builds oxinfer and the load generator and makes the venv).

Environment: BENCH_SECONDS (measured seconds per cell, default 10), BENCH_WARMUP (default 2),
BENCH_CONCURRENCY (default "1,16,64"), BENCH_SERVER_CPU / BENCH_LOAD_CPU (default 0 / 1),
BENCH_SKIP_MLSERVER=1 (oxinfer only)."""

import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OXINFER = TARGET / "release" / "oxinfer"
LOADGEN = TARGET / "release" / "examples" / "loadgen"
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,16,64").split(",")]
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
SKIP_MLSERVER = os.environ.get("BENCH_SKIP_MLSERVER") == "1"
MOBILENET_SHAPE = [1, 3, 224, 224]
IDENTITY_SHAPE = [1, 16]
BATCHING = {"max_batch_size": 8, "max_batch_time": 0.002}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def prepare_models() -> dict:
    """Model files, then one repository per server (the same files, each server's own settings)."""
    if WORK.exists():
        shutil.rmtree(WORK)
    models_dir = WORK / "models"
    shared = ROOT.parent / "shared" / "models" / "mobilenet_v3_small.onnx"
    out = subprocess.run([sys.executable, BENCH / "make_models.py", models_dir, shared],
                         check=True, capture_output=True, text=True)
    source = out.stdout.strip()
    for server, implementation in [("oxinfer", "oxinfer.OnnxModel"),
                                   ("mlserver", "bench_onnx_runtime.OnnxRuntime")]:
        # Two repositories per server: identity + MobileNet (time to ready and idle RSS are measured on this
        # one), and the batched MobileNet, served by a second start of the server.
        for repo, models in [(WORK / f"repo-{server}", [("identity", "identity.onnx", {}),
                                                        ("mobilenet", "mobilenet.onnx", {})]),
                             (WORK / f"repo-{server}-batched", [("mobilenet_batch", "mobilenet.onnx", BATCHING)])]:
            for name, file, extra in models:
                folder = repo / name
                folder.mkdir(parents=True)
                shutil.copyfile(models_dir / file, folder / "model.onnx")
                write_json(folder / "model-settings.json", {
                    "name": name, "implementation": implementation,
                    "parameters": {"uri": "./model.onnx"}, **extra})
    return {"mobilenet_source": source}


def bodies() -> dict:
    """Request bodies: JSON for both models, and a binary-extension body for MobileNet."""
    out = {}
    for model, shape in [("identity", IDENTITY_SHAPE), ("mobilenet", MOBILENET_SHAPE)]:
        count = 1
        for d in shape:
            count *= d
        # What a Python client sends: float32 values written with full precision (numpy's tolist()).
        values = np.random.default_rng(0).random(count, dtype=np.float32).tolist()
        body = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": values}]}
        path = WORK / f"{model}.json"
        path.write_text(json.dumps(body))
        out[f"{model}-json"] = (path, None)
    import struct
    header = json.dumps({"inputs": [{"name": "input", "shape": MOBILENET_SHAPE, "datatype": "FP32",
                                     "parameters": {"binary_data_size": 4 * 150528}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    path = WORK / "mobilenet.bin"
    path.write_bytes(header + struct.pack("<150528f", *([0.5] * 150528)))
    out["mobilenet-binary"] = (path, len(header))
    return out


def tree_pids(root: int) -> list:
    """The process and its descendants (MLServer may start helper processes)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def memory_mb(root: int, field: str) -> float:
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Server:
    def __init__(self, kind: str, batched: bool = False):
        self.kind = kind
        self.http = free_port()
        self.grpc = free_port()
        repo = WORK / (f"repo-{kind}-batched" if batched else f"repo-{kind}")
        log = open(WORK / f"{kind}{'-batched' if batched else ''}.log", "w")
        if kind == "oxinfer":
            cmd = [str(OXINFER), "start", str(repo), "--host", "127.0.0.1",
                   "--http-port", str(self.http), "--grpc-port", str(self.grpc)]
            env = dict(os.environ)
        else:
            write_json(repo / "settings.json", {
                "host": "127.0.0.1", "http_port": self.http, "grpc_port": self.grpc,
                "metrics_port": free_port(), "parallel_workers": 0, "debug": False})
            cmd = [str(Path(sys.executable).parent / "mlserver"), "start", str(repo)]
            env = dict(os.environ, PYTHONPATH=str(BENCH))
        started = time.perf_counter()
        self.process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *cmd], stdout=log, stderr=log, env=env)
        self.ready_s = self.wait_ready(started)
        time.sleep(0.5)
        self.idle_rss_mb = memory_mb(self.process.pid, "VmRSS")

    def wait_ready(self, started: float) -> float:
        deadline = started + 120
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} exited; see {WORK / (self.kind + '.log')}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=1)
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        raise SystemExit(f"{self.kind} not ready in 120 s")

    def stop(self) -> float:
        peak = memory_mb(self.process.pid, "VmHWM")
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return peak


def loadgen(*args) -> dict:
    cmd = ["taskset", "-c", LOAD_CPU, str(LOADGEN), *map(str, args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def drive(server: Server, scenario: str, concurrency: int, files: dict) -> dict:
    load = ["--concurrency", concurrency, "--seconds", SECONDS, "--warmup", WARMUP]
    model = "mobilenet_batch" if scenario.endswith("batched") else scenario.split()[0]
    if " gRPC" in scenario:
        shape = MOBILENET_SHAPE if model.startswith("mobilenet") else IDENTITY_SHAPE
        return loadgen("grpc", "--addr", f"http://127.0.0.1:{server.grpc}", "--model", model,
                       "--input", "input", "--shape", ",".join(map(str, shape)), *load)
    key = f"{model.replace('_batch', '')}-{'binary' if 'binary' in scenario else 'json'}"
    path, header = files[key]
    extra = ["--header-length", header] if header is not None else []
    return loadgen("http", "--url", f"http://127.0.0.1:{server.http}/v2/models/{model}/infer",
                   "--body", path, *extra, *load)


# Scenario -> the servers that run it (MLServer has no binary extension).
SCENARIOS = {
    "identity REST JSON": ["oxinfer", "mlserver"],
    "mobilenet REST JSON": ["oxinfer", "mlserver"],
    "mobilenet REST binary": ["oxinfer"],
    "mobilenet gRPC raw": ["oxinfer", "mlserver"],
    "mobilenet gRPC raw, batched": ["oxinfer", "mlserver"],
}


def bare_round(results) -> None:
    """One sample of the bare ONNX Runtime loop at batch 1 and 8 (taken before, between and after the servers:
    this machine's speed drifts, so the ceiling is the median of the samples)."""
    for batch in [1, 8]:
        r = loadgen("bare", "--model", WORK / "models" / "mobilenet.onnx", "--batch", batch,
                    "--threads", 1, "--seconds", SECONDS)
        results["bare"].append(r)
        print(f"bare ORT batch {batch}: {r['inferences_per_s']:.1f} inferences/s", flush=True)


def bare_median(results) -> dict:
    out = {}
    for batch in sorted({r["batch"] for r in results["bare"]}):
        values = sorted(r["inferences_per_s"] for r in results["bare"] if r["batch"] == batch)
        out[batch] = values[len(values) // 2]
    return out


def run_scenarios(results, server: Server, files: dict, batched: bool) -> None:
    for scenario, kinds in SCENARIOS.items():
        if server.kind not in kinds or scenario.endswith("batched") != batched:
            continue
        for c in CONCURRENCY:
            if batched and c == 1:
                continue
            r = drive(server, scenario, c, files)
            r.update(server=server.kind, scenario=scenario)
            results["cells"].append(r)
            print(f"  {scenario:30} c={c:<3} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:8.2f} ms  "
                  f"p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}", flush=True)


def main() -> None:
    info = prepare_models()
    files = bodies()
    results = {"cells": [], "servers": {}, "bare": [], "info": {
        **info, "seconds": SECONDS, "warmup": WARMUP, "server_cpu": SERVER_CPU, "load_cpu": LOAD_CPU,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "batching": BATCHING}}
    bare_round(results)
    for kind in ["oxinfer", "mlserver"]:
        if kind == "mlserver" and SKIP_MLSERVER:
            continue
        server = Server(kind)
        print(f"{kind}: ready in {server.ready_s * 1000:.0f} ms, idle RSS {server.idle_rss_mb:.1f} MB", flush=True)
        try:
            run_scenarios(results, server, files, batched=False)
        finally:
            peak = server.stop()
        results["servers"][kind] = {"ready_ms": server.ready_s * 1000, "idle_rss_mb": server.idle_rss_mb,
                                    "peak_rss_mb": peak}
        server = Server(kind, batched=True)
        try:
            run_scenarios(results, server, files, batched=True)
        finally:
            server.stop()
        bare_round(results)
    write_json(BENCH / "results.json", results)
    (BENCH / "results.md").write_text(markdown(results))
    plot(results)
    print((BENCH / "results.md").read_text())


def cell(results, kind, scenario, c):
    for r in results["cells"]:
        if r["server"] == kind and r["scenario"] == scenario and r["concurrency"] == c:
            return r
    return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def markdown(results) -> str:
    bare = bare_median(results)
    samples = {b: ", ".join(f"{r['inferences_per_s']:.0f}" for r in results["bare"] if r["batch"] == b)
               for b in bare}
    info = results["info"]
    lines = [
        "# Benchmark results",
        "",
        f"oxinfer vs MLServer 1.7.1 (onnxruntime runtime, one intra-op thread, parallel_workers 0). Server on CPU "
        f"{info['server_cpu']}, load generator on CPU {info['load_cpu']} (taskset); {info['machine']}; "
        f"{info['seconds']:.0f} s measured per cell after {info['warmup']:.0f} s warm-up; closed loop. "
        f"{info['mobilenet_source']}. Batched = max_batch_size {info['batching']['max_batch_size']}, "
        f"max_batch_time {info['batching']['max_batch_time']} s on both servers.",
        "",
        f"Bare ONNX Runtime (in-process loop, one thread, one core; median of the samples taken before, between "
        f"and after the servers): MobileNet batch 1 **{bare.get(1, 0):.0f}** inferences/s ({samples.get(1)}), "
        f"batch 8 **{bare.get(8, 0):.0f}** inferences/s ({samples.get(8)}).",
        "",
        "Time to ready and idle RSS: the repository with identity + MobileNet (the batched MobileNet is served by "
        "a second start of each server).",
        "",
        "| scenario | c | oxinfer req/s | p50 ms | p99 ms | MLServer req/s | p50 ms | p99 ms | oxinfer/MLServer "
        "| oxinfer/bare b1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        for c in CONCURRENCY:
            o = cell(results, "oxinfer", scenario, c)
            m = cell(results, "mlserver", scenario, c)
            if not o and not m:
                continue
            fmt = lambda r: (f"{r['rps']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}") if r else ("—",) * 3
            vs_bare = ratio(o["rps"], bare.get(1)) if o and scenario.startswith("mobilenet") else ""
            errors = sum(r["errors"] for r in (o, m) if r)
            note = f" ({errors} errors)" if errors else ""
            lines.append(f"| {scenario}{note} | {c} | {' | '.join(fmt(o))} | {' | '.join(fmt(m))} | "
                         f"{ratio(o and o['rps'], m and m['rps'])} | {vs_bare} |")
    lines += ["", "| server | time to ready | idle RSS | peak RSS |", "|---|---|---|---|"]
    for kind, s in results["servers"].items():
        lines.append(f"| {kind} | {s['ready_ms']:.0f} ms | {s['idle_rss_mb']:.1f} MB | {s['peak_rss_mb']:.1f} MB |")
    lines += ["", "Targets (issue 6):", ""]
    def rps(kind, scenario, c):
        r = cell(results, kind, scenario, c)
        return r["rps"] if r else None
    checks = [
        ("identity REST JSON c=16 vs MLServer (>= 20x)",
         rps("oxinfer", "identity REST JSON", 16), rps("mlserver", "identity REST JSON", 16), 20),
        ("MobileNet REST JSON c=16 vs MLServer (>= 3x)",
         rps("oxinfer", "mobilenet REST JSON", 16), rps("mlserver", "mobilenet REST JSON", 16), 3),
        ("MobileNet REST binary c=16 vs bare batch 1 (>= 0.9)",
         rps("oxinfer", "mobilenet REST binary", 16), bare.get(1), 0.9),
        ("MobileNet gRPC raw c=16 vs bare batch 1 (>= 0.9)",
         rps("oxinfer", "mobilenet gRPC raw", 16), bare.get(1), 0.9),
        ("MobileNet gRPC batched c=64 vs bare batch 1 (>= 1.2)",
         rps("oxinfer", "mobilenet gRPC raw, batched", 64), bare.get(1), 1.2),
    ]
    for label, a, b, target in checks:
        if a and b:
            lines.append(f"- {label}: **{a / b:.2f}x** {'met' if a / b >= target else 'not met'}")
        else:
            lines.append(f"- {label}: not measured")
    ox = results["servers"].get("oxinfer")
    if ox:
        lines.append(f"- time to ready <= 100 ms: **{ox['ready_ms']:.0f} ms** "
                     f"{'met' if ox['ready_ms'] <= 100 else 'not met'}")
        lines.append(f"- idle RSS <= 50 MB: **{ox['idle_rss_mb']:.1f} MB** "
                     f"{'met' if ox['idle_rss_mb'] <= 50 else 'not met'}")
    return "\n".join(lines) + "\n"


def plot(results) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scenarios = [s for s in SCENARIOS if cell(results, "oxinfer", s, 16) or cell(results, "mlserver", s, 16)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.38
    for i, kind in enumerate(["oxinfer", "mlserver"]):
        values = [(cell(results, kind, s, 16) or {}).get("rps", 0) for s in scenarios]
        bars = ax.bar([x + (i - 0.5) * width for x in range(len(scenarios))], values, width,
                      label="oxinfer" if kind == "oxinfer" else "MLServer 1.7.1")
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    bare = bare_median(results)
    if bare.get(1):
        ax.axhline(bare[1], color="grey", linestyle="--", linewidth=1, label="bare ORT MobileNet batch 1")
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (c=16, log scale)")
    ax.set_xticks(range(len(scenarios)), [s.replace(", ", "\n") for s in scenarios], fontsize=8)
    ax.set_title("oxinfer vs MLServer, one server core (preliminary, noisy machine)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "results.svg")


if __name__ == "__main__":
    main()
