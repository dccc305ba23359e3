"""Runs the benchmark: oxinfer and MLServer on the same models, the server pinned to one core and the load
generator to another (taskset), closed-loop load at several concurrencies; writes bench/results.md, results.json
and results.svg. Started by bench/run.sh (which builds oxinfer, the load generator and the floor server, and makes
the venv).

The rows come in groups; BENCH_ONLY=group1,group2 runs only those (each group takes its own references, so any one
runs alone) and merges them into the existing results.json (the other groups' rows stay as they were):

    core             identity + MobileNet, REST JSON / binary / gRPC raw, c=1,16,64, oxinfer and MLServer, with
                     bare ONNX Runtime MobileNet batch 1 and 8 (issue 6's table)
    floor            identity REST JSON and gRPC raw at c=16: oxinfer vs the floor server (bench/floor_server.rs,
                     a bare axum/tonic server answering a fixed body), both pinned to the server core; target >= 0.5
    mlp512           mlp512 unbatched / max_batch_size 8 / 32 (max_batch_time 2 ms), gRPC raw and REST binary,
                     c=1 and 64, oxinfer, with bare ONNX Runtime mlp512 batch 1, 8 and 32 (rows/s)
    mlp512-mlserver  the same mlp512 models on MLServer with its adaptive batching (gRPC raw), c=1 and 64
    unpinned         MobileNet and mlp512 gRPC raw c=64: pinned (one core, one instance) vs unpinned (both
                     cores, two instances: parallel_workers 2); target >= 1.7x
    scale            the 200-model start and the 100 MB tensor: runs bench/scale.py when present (see run_scale)

The commands (after one `bash bench/run.sh`, or its cargo build + venv; `.venv-bench/bin/python` is the venv's):

    bash bench/run.sh                                                    # everything
    BENCH_ONLY=floor bash bench/run.sh                                   # oxinfer/floor ratio
    BENCH_ONLY=mlp512 bash bench/run.sh                                  # mlp512 batching rows, oxinfer + bare
    BENCH_ONLY=mlp512-mlserver bash bench/run.sh                         # MLServer's adaptive batching, mlp512
    BENCH_ONLY=unpinned bash bench/run.sh                                # two cores, two instances
    BENCH_ONLY=scale bash bench/run.sh                                   # bench/scale.py's rows
    BENCH_ONLY=floor,unpinned BENCH_SECONDS=5 .venv-bench/bin/python bench/bench.py   # no rebuild

Environment: BENCH_SECONDS (measured seconds per cell, default 10), BENCH_WARMUP (default 2),
BENCH_CONCURRENCY (core group, default "1,16,64"), BENCH_MLP_CONCURRENCY (mlp512 groups, default "1,64"),
BENCH_FLOOR_CONCURRENCY (default "16"), BENCH_UNPINNED_CONCURRENCY (default "64"), BENCH_SERVER_CPU /
BENCH_LOAD_CPU (default 0 / 1), BENCH_UNPINNED_CPUS (server and load of the unpinned rows, default "0,1"),
BENCH_SKIP_MLSERVER=1 (oxinfer only: MLServer cells of every group are skipped), BENCH_ONLY (above),
BENCH_OUT (the folder results.{md,json,svg} go to, default bench/), BENCH_SCALE_RUNS (scale group, default 3)."""

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
OUT = Path(os.environ.get("BENCH_OUT", BENCH))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OXINFER = TARGET / "release" / "oxinfer"
LOADGEN = TARGET / "release" / "examples" / "loadgen"
FLOOR = TARGET / "release" / "examples" / "floor_server"
SCALE = BENCH / "scale.py"
SHARED = ROOT.parent / "shared" / "models"


def ints(name: str, default: str) -> list:
    return [int(c) for c in os.environ.get(name, default).split(",")]


SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
CONCURRENCY = ints("BENCH_CONCURRENCY", "1,16,64")
MLP_CONCURRENCY = ints("BENCH_MLP_CONCURRENCY", "1,64")
FLOOR_CONCURRENCY = ints("BENCH_FLOOR_CONCURRENCY", "16")
UNPINNED_CONCURRENCY = ints("BENCH_UNPINNED_CONCURRENCY", "64")
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
UNPINNED_CPUS = os.environ.get("BENCH_UNPINNED_CPUS", f"{SERVER_CPU},{LOAD_CPU}")
SKIP_MLSERVER = os.environ.get("BENCH_SKIP_MLSERVER") == "1"
GROUPS = ["core", "floor", "mlp512", "mlp512-mlserver", "unpinned", "scale"]
ONLY = [g for g in os.environ.get("BENCH_ONLY", "").split(",") if g]
BATCHING = {"max_batch_size": 8, "max_batch_time": 0.002}
MLP_BATCHING = {"batch 8": {"max_batch_size": 8, "max_batch_time": 0.002},
                "batch 32": {"max_batch_size": 32, "max_batch_time": 0.002}}
# Each model's input name and the shape a request sends.
MODELS = {"identity": ("input", [1, 16]), "mobilenet": ("input", [1, 3, 224, 224]), "mlp512": ("x", [1, 512])}
OUTPUT_NAMES = {"identity": "output", "mobilenet": "output", "mlp512": "y"}
# Repositories: name -> [(served name, model file, extra model settings)]; every server gets its own copy.
REPOS = {
    "main": [("identity", "identity", {}), ("mobilenet", "mobilenet", {})],
    "batched": [("mobilenet_batch", "mobilenet", BATCHING)],
    "mlp512": [("mlp512", "mlp512", {}), ("mlp512_b8", "mlp512", MLP_BATCHING["batch 8"]),
               ("mlp512_b32", "mlp512", MLP_BATCHING["batch 32"])],
    # The unpinned rows: one instance per model (its pinned figure), then two (both cores).
    "pair": [("mobilenet", "mobilenet", {}), ("mlp512", "mlp512", {})],
    "pair2": [("mobilenet", "mobilenet", {"parallel_workers": 2}), ("mlp512", "mlp512", {"parallel_workers": 2})],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def prepare_models() -> dict:
    """Model files, then one copy of each repository per server (the same files, each server's own settings)."""
    if WORK.exists():
        shutil.rmtree(WORK)
    models_dir = WORK / "models"
    out = subprocess.run([sys.executable, BENCH / "make_models.py", models_dir,
                          SHARED / "mobilenet_v3_small.onnx", SHARED / "mlp512.onnx"],
                         check=True, capture_output=True, text=True)
    sources = out.stdout.strip().splitlines()
    for server, implementation in [("oxinfer", "oxinfer.OnnxModel"),
                                   ("mlserver", "bench_onnx_runtime.OnnxRuntime")]:
        for repo, models in REPOS.items():
            for name, file, extra in models:
                folder = WORK / f"repo-{server}-{repo}" / name
                folder.mkdir(parents=True)
                shutil.copyfile(models_dir / f"{file}.onnx", folder / "model.onnx")
                write_json(folder / "model-settings.json", {
                    "name": name, "implementation": implementation,
                    "parameters": {"uri": "./model.onnx"}, **extra})
    return {"mobilenet_source": sources[0], "mlp512_source": sources[1]}


def bodies() -> dict:
    """Request bodies: JSON for identity and MobileNet, binary-extension bodies for MobileNet and mlp512."""
    import struct
    out = {}
    for model in ["identity", "mobilenet"]:
        name, shape = MODELS[model]
        count = int(np.prod(shape))
        # What a Python client sends: float32 values written with full precision (numpy's tolist()).
        values = np.random.default_rng(0).random(count, dtype=np.float32).tolist()
        body = {"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": values}]}
        path = WORK / f"{model}.json"
        path.write_text(json.dumps(body))
        out[f"{model}-json"] = (path, None)
    for model in ["mobilenet", "mlp512"]:
        name, shape = MODELS[model]
        count = int(np.prod(shape))
        header = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                         "parameters": {"binary_data_size": 4 * count}}],
                             "outputs": [{"name": OUTPUT_NAMES[model],
                                          "parameters": {"binary_data": True}}]}).encode()
        path = WORK / f"{model}.bin"
        path.write_bytes(header + struct.pack(f"<{count}f", *([0.5] * count)))
        out[f"{model}-binary"] = (path, len(header))
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
    """oxinfer, MLServer or the floor server on `cpus` (taskset), serving repository `repo` (not the floor)."""

    def __init__(self, kind: str, repo: str = "main", cpus: str = SERVER_CPU, response: Path = None):
        self.kind = kind
        self.http = free_port()
        self.grpc = free_port()
        self.log = WORK / f"{kind}-{repo}.log"
        log = open(self.log, "w")
        folder = WORK / f"repo-{kind}-{repo}"
        env = dict(os.environ)
        if kind == "oxinfer":
            cmd = [str(OXINFER), "start", str(folder), "--host", "127.0.0.1",
                   "--http-port", str(self.http), "--grpc-port", str(self.grpc)]
        elif kind == "floor":
            cmd = [str(FLOOR), "--host", "127.0.0.1", "--http-port", str(self.http),
                   "--grpc-port", str(self.grpc)] + (["--response", str(response)] if response else [])
        else:
            write_json(folder / "settings.json", {
                "host": "127.0.0.1", "http_port": self.http, "grpc_port": self.grpc,
                "metrics_port": free_port(), "parallel_workers": 0, "debug": False})
            cmd = [str(Path(sys.executable).parent / "mlserver"), "start", str(folder)]
            env["PYTHONPATH"] = str(BENCH)
        started = time.perf_counter()
        self.process = subprocess.Popen(["taskset", "-c", cpus, *cmd], stdout=log, stderr=log, env=env)
        self.ready_s = self.wait_ready(started)
        time.sleep(0.5)
        self.idle_rss_mb = memory_mb(self.process.pid, "VmRSS")

    def wait_ready(self, started: float) -> float:
        deadline = started + 120
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} exited; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=1)
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        raise SystemExit(f"{self.kind} not ready in 120 s")

    def post(self, path: str, body: bytes) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        conn.request("POST", path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"{self.kind} answered {response.status} to {path}: {data[:200]!r}")
        return data

    def stop(self) -> float:
        peak = memory_mb(self.process.pid, "VmHWM")
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return peak


def loadgen(*args, cpus: str = LOAD_CPU) -> dict:
    cmd = ["taskset", "-c", cpus, str(LOADGEN), *map(str, args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def drive(server: Server, served: str, model: str, protocol: str, concurrency: int, files: dict,
          cpus: str = LOAD_CPU) -> dict:
    """Closed-loop load on model `served` (whose file is `model`) over `protocol`: REST JSON, REST binary or
    gRPC raw."""
    load = ["--concurrency", concurrency, "--seconds", SECONDS, "--warmup", WARMUP]
    if protocol == "gRPC raw":
        name, shape = MODELS[model]
        return loadgen("grpc", "--addr", f"http://127.0.0.1:{server.grpc}", "--model", served,
                       "--input", name, "--shape", ",".join(map(str, shape)), *load, cpus=cpus)
    path, header = files[f"{model}-{'binary' if protocol == 'REST binary' else 'json'}"]
    extra = ["--header-length", header] if header is not None else []
    return loadgen("http", "--url", f"http://127.0.0.1:{server.http}/v2/models/{served}/infer",
                   "--body", path, *extra, *load, cpus=cpus)


def record(results, group: str, server: str, scenario: str, r: dict) -> None:
    r.update(group=group, server=server, scenario=scenario)
    results["cells"].append(r)
    print(f"  {server:8} {scenario:42} c={r['concurrency']:<3} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:8.2f} ms  "
          f"p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}", flush=True)


def bare_round(results, group: str, model: str, batches: list) -> None:
    """One sample of the bare ONNX Runtime loop per batch size (taken before, between and after the servers:
    this machine's speed drifts, so the ceiling is the median of the samples)."""
    for batch in batches:
        r = loadgen("bare", "--model", WORK / "models" / f"{model}.onnx", "--batch", batch,
                    "--threads", 1, "--seconds", SECONDS)
        r.update(group=group, model=model)
        results["bare"].append(r)
        print(f"bare ORT {model} batch {batch}: {r['inferences_per_s']:.1f} inferences/s", flush=True)


def bare_median(results, model: str = "mobilenet", group: str = None) -> dict:
    out = {}
    samples = [r for r in results["bare"] if r.get("model", "mobilenet") == model
               and (group is None or r.get("group", "core") == group)]
    for batch in sorted({r["batch"] for r in samples}):
        values = sorted(r["inferences_per_s"] for r in samples if r["batch"] == batch)
        out[batch] = values[len(values) // 2]
    return out


# The core group: scenario -> (served model, model file, protocol, servers that run it). MLServer has no binary
# extension.
SCENARIOS = {
    "identity REST JSON": ("identity", "identity", "REST JSON", ["oxinfer", "mlserver"]),
    "mobilenet REST JSON": ("mobilenet", "mobilenet", "REST JSON", ["oxinfer", "mlserver"]),
    "mobilenet REST binary": ("mobilenet", "mobilenet", "REST binary", ["oxinfer"]),
    "mobilenet gRPC raw": ("mobilenet", "mobilenet", "gRPC raw", ["oxinfer", "mlserver"]),
    "mobilenet gRPC raw, batched": ("mobilenet_batch", "mobilenet", "gRPC raw", ["oxinfer", "mlserver"]),
}


def group_core(results, files) -> None:
    bare_round(results, "core", "mobilenet", [1, 8])
    for kind in ["oxinfer", "mlserver"]:
        if kind == "mlserver" and SKIP_MLSERVER:
            continue
        for batched in [False, True]:
            server = Server(kind, "batched" if batched else "main")
            if not batched:
                print(f"{kind}: ready in {server.ready_s * 1000:.0f} ms, idle RSS {server.idle_rss_mb:.1f} MB",
                      flush=True)
            try:
                for scenario, (served, model, protocol, kinds) in SCENARIOS.items():
                    if kind not in kinds or scenario.endswith("batched") != batched:
                        continue
                    for c in CONCURRENCY:
                        if batched and c == 1:
                            continue
                        record(results, "core", kind, scenario, drive(server, served, model, protocol, c, files))
            finally:
                peak = server.stop()
            if not batched:
                results["servers"][kind] = {"ready_ms": server.ready_s * 1000,
                                            "idle_rss_mb": server.idle_rss_mb, "peak_rss_mb": peak}
        bare_round(results, "core", "mobilenet", [1, 8])


FLOOR_SCENARIOS = {"identity REST JSON": "REST JSON", "identity gRPC raw": "gRPC raw"}


def group_floor(results, files) -> None:
    """oxinfer then the floor server, each alone on the server core, the same load on the load core. The floor
    answers the very bytes oxinfer answered to the identity request."""
    server = Server("oxinfer", "main")
    answer = WORK / "identity-answer.json"
    try:
        answer.write_bytes(server.post("/v2/models/identity/infer", files["identity-json"][0].read_bytes()))
        for scenario, protocol in FLOOR_SCENARIOS.items():
            for c in FLOOR_CONCURRENCY:
                record(results, "floor", "oxinfer", scenario,
                       drive(server, "identity", "identity", protocol, c, files))
    finally:
        server.stop()
    server = Server("floor", response=answer)
    try:
        floor_answer = server.post("/v2/models/identity/infer", files["identity-json"][0].read_bytes())
        print(f"floor: answers {len(floor_answer)} bytes (oxinfer {answer.stat().st_size})", flush=True)
        for scenario, protocol in FLOOR_SCENARIOS.items():
            for c in FLOOR_CONCURRENCY:
                record(results, "floor", "floor", scenario, drive(server, "identity", "identity", protocol, c, files))
    finally:
        server.stop()


MLP_VARIANTS = {"unbatched": "mlp512", "batch 8": "mlp512_b8", "batch 32": "mlp512_b32"}


def group_mlp512(results, files, kind: str) -> None:
    """mlp512 unbatched and batched (max 8 and 32) on one server start; bare mlp512 before and after."""
    group = "mlp512" if kind == "oxinfer" else "mlp512-mlserver"
    bare_round(results, group, "mlp512", [1, 8, 32])
    protocols = ["gRPC raw", "REST binary"] if kind == "oxinfer" else ["gRPC raw"]
    server = Server(kind, "mlp512")
    try:
        for protocol in protocols:
            for variant, served in MLP_VARIANTS.items():
                for c in MLP_CONCURRENCY:
                    record(results, group, kind, f"mlp512 {protocol}, {variant}",
                           drive(server, served, "mlp512", protocol, c, files))
    finally:
        server.stop()
    bare_round(results, group, "mlp512", [1, 8, 32])


def group_unpinned(results, files) -> None:
    """MobileNet and mlp512 gRPC raw: one instance on the server core (load on the load core), then two instances
    (parallel_workers 2, intra-op threads cores / instances = 1) with server and load on both cores."""
    for label, repo, server_cpus, load_cpus in [("pinned", "pair", SERVER_CPU, LOAD_CPU),
                                                ("unpinned", "pair2", UNPINNED_CPUS, UNPINNED_CPUS)]:
        server = Server("oxinfer", repo, cpus=server_cpus)
        try:
            for model in ["mobilenet", "mlp512"]:
                for c in UNPINNED_CONCURRENCY:
                    record(results, "unpinned", "oxinfer", f"{model} gRPC raw, {label}",
                           drive(server, model, model, "gRPC raw", c, files, cpus=load_cpus))
        finally:
            server.stop()


SCALE_RUNS = os.environ.get("BENCH_SCALE_RUNS", "3")


def median_of(runs: list):
    """Key by key, the median of the runs' numbers (nested objects key by key too; other values: the first)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs if k in r]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return sorted(runs)[len(runs) // 2]
    return first


def scale_runs(*args) -> list:
    """Runs `bench/scale.py ARGS --runs N --binary OXINFER` and returns the JSON objects it prints, one a run."""
    cmd = [sys.executable, SCALE, *map(str, args), "--runs", SCALE_RUNS, "--binary", OXINFER]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, CARGO_TARGET_DIR=str(TARGET)))
    print(out.stdout, end="", flush=True)
    if out.returncode != 0:
        # One failed case leaves its rows "to be measured"; the others still count.
        print(f"scale: {' '.join(map(str, args))} failed ({out.returncode}): {out.stderr.strip()[-500:]}", flush=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run_scale(results) -> None:
    """The 200-model start and the 100 MB tensor come from bench/scale.py (issue 22, item 5), when present:

        python bench/scale.py start  [--models N] --runs R --binary OXINFER
        python bench/scale.py tensor [--mb SIZE]  --runs R --binary OXINFER

    each printing one JSON object a line per run (other lines are ignored). The keys read here (the median of
    the runs; a missing key shows as "to be measured"):

        start:  ready_s (spawn to /v2/health/ready 200), rss_mb (RSS at ready), threads_at_ready,
                threads_settled (once start-up helpers have gone; `threads` is read as that too)
        tensor: payload_mb, rest_binary.peak_mb and grpc_raw.peak_mb (the server's VmHWM during one request)

    `start` runs twice, with 200 models and with 2, so the thread counts show whether they grow with the
    models. scale.py runs the server unpinned. BENCH_SCALE_RUNS sets R (default 3)."""
    if not SCALE.is_file():
        print(f"scale: {SCALE.relative_to(ROOT)} not present; its rows stay 'to be measured'", flush=True)
        return
    scale = {"group": "scale"}
    for key, args in [("models_200", ["start", "--models", 200]), ("models_2", ["start", "--models", 2]),
                      ("tensor_100mb", ["tensor", "--mb", 100])]:
        runs = scale_runs(*args)
        if runs:
            scale[key] = median_of(runs)
    results["scale"] = scale


def load_previous(groups: list) -> dict:
    """With BENCH_ONLY: the previous results, less the groups about to be measured again. Rows written before
    the groups existed (no `group`) are the core group's."""
    empty = {"cells": [], "servers": {}, "bare": [], "scale": None, "info": {}, "groups": {}}
    path = OUT / "results.json"
    if not ONLY or not path.is_file():
        return empty
    old = json.loads(path.read_text())
    old.setdefault("groups", {})
    keep = lambda r: r.get("group", "core") not in groups
    return {"cells": [r for r in old.get("cells", []) if keep(r)],
            "bare": [r for r in old.get("bare", []) if keep(r)],
            "servers": {} if "core" in groups else old.get("servers", {}),
            "scale": None if "scale" in groups else old.get("scale"),
            "info": old.get("info", {}),
            "groups": {g: v for g, v in old["groups"].items() if g not in groups}}


def main() -> None:
    unknown = [g for g in ONLY if g not in GROUPS]
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown group(s) {', '.join(unknown)}; the groups: {', '.join(GROUPS)}")
    groups = [g for g in GROUPS if not ONLY or g in ONLY]
    if SKIP_MLSERVER and "mlp512-mlserver" in groups:
        groups.remove("mlp512-mlserver")
    info = prepare_models()
    files = bodies()
    results = load_previous(groups)
    results["info"].update({
        **info, "seconds": SECONDS, "warmup": WARMUP, "server_cpu": SERVER_CPU, "load_cpu": LOAD_CPU,
        "unpinned_cpus": UNPINNED_CPUS, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "batching": BATCHING})
    for group in groups:
        print(f"== {group}", flush=True)
        if group == "core":
            group_core(results, files)
        elif group == "floor":
            group_floor(results, files)
        elif group == "mlp512":
            group_mlp512(results, files, "oxinfer")
        elif group == "mlp512-mlserver":
            group_mlp512(results, files, "mlserver")
        elif group == "unpinned":
            group_unpinned(results, files)
        elif group == "scale":
            run_scale(results)
        results["groups"][group] = {"seconds": SECONDS, "warmup": WARMUP,
                                    "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    write_json(OUT / "results.json", results)
    (OUT / "results.md").write_text(markdown(results))
    if any(r.get("group", "core") == "core" for r in results["cells"]):
        plot(results)
    print((OUT / "results.md").read_text())


def cell(results, kind, scenario, c, group="core"):
    for r in results["cells"]:
        if (r.get("group", "core") == group and r["server"] == kind and r["scenario"] == scenario
                and r["concurrency"] == c):
            return r
    return None


def rps(results, kind, scenario, c, group="core"):
    r = cell(results, kind, scenario, c, group)
    return r["rps"] if r else None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def fmt(r):
    return (f"{r['rps']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}") if r else ("—",) * 3


def check(label, a, b, target, at_most=False):
    if not (a and b):
        return f"- {label}: to be measured"
    met = a / b <= target if at_most else a / b >= target
    return f"- {label}: **{a / b:.2f}x** {'met' if met else 'not met'}"


def when(results, group):
    g = results.get("groups", {}).get(group)
    if not g:
        return ""
    return f" ({g['when']})" if group == "scale" else f" ({g['when']}, {g['seconds']:.0f} s a cell)"


def markdown(results) -> str:
    bare = bare_median(results, "mobilenet")
    samples = {b: ", ".join(f"{r['inferences_per_s']:.0f}" for r in results["bare"]
                            if r["batch"] == b and r.get("model", "mobilenet") == "mobilenet") for b in bare}
    info = results["info"]
    lines = [
        "# Benchmark results",
        "",
        f"oxinfer vs MLServer 1.7.1 (onnxruntime runtime, one intra-op thread, parallel_workers 0). Server on CPU "
        f"{info['server_cpu']}, load generator on CPU {info['load_cpu']} (taskset); {info['machine']}; "
        f"{info['seconds']:.0f} s measured per cell after {info['warmup']:.0f} s warm-up; closed loop. "
        f"{info['mobilenet_source']}. Batched = max_batch_size {info['batching']['max_batch_size']}, "
        f"max_batch_time {info['batching']['max_batch_time']} s on both servers. Each group below was measured "
        f"at the time it names (`BENCH_ONLY` reruns one group and keeps the others).",
        "",
        f"## Core{when(results, 'core')}",
        "",
        (f"Bare ONNX Runtime (in-process loop, one thread, one core; median of the samples taken before, between "
         f"and after the servers): MobileNet batch 1 **{bare.get(1, 0):.0f}** inferences/s ({samples.get(1)}), "
         f"batch 8 **{bare.get(8, 0):.0f}** inferences/s ({samples.get(8)})." if bare
         else "Bare ONNX Runtime MobileNet: to be measured (`BENCH_ONLY=core`)."),
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
            vs_bare = ratio(o["rps"], bare.get(1)) if o and scenario.startswith("mobilenet") else ""
            errors = sum(r["errors"] for r in (o, m) if r)
            note = f" ({errors} errors)" if errors else ""
            lines.append(f"| {scenario}{note} | {c} | {' | '.join(fmt(o))} | {' | '.join(fmt(m))} | "
                         f"{ratio(o and o['rps'], m and m['rps'])} | {vs_bare} |")
    lines += ["", "| server | time to ready | idle RSS | peak RSS |", "|---|---|---|---|"]
    for kind, s in results["servers"].items():
        lines.append(f"| {kind} | {s['ready_ms']:.0f} ms | {s['idle_rss_mb']:.1f} MB | {s['peak_rss_mb']:.1f} MB |")
    lines += ["", "Targets (issue 6):", ""]
    for label, a, b, target in [
        ("identity REST JSON c=16 vs MLServer (>= 20x)",
         rps(results, "oxinfer", "identity REST JSON", 16), rps(results, "mlserver", "identity REST JSON", 16), 20),
        ("MobileNet REST JSON c=16 vs MLServer (>= 3x)",
         rps(results, "oxinfer", "mobilenet REST JSON", 16), rps(results, "mlserver", "mobilenet REST JSON", 16), 3),
        ("MobileNet REST binary c=16 vs bare batch 1 (>= 0.9)",
         rps(results, "oxinfer", "mobilenet REST binary", 16), bare.get(1), 0.9),
        ("MobileNet gRPC raw c=16 vs bare batch 1 (>= 0.9)",
         rps(results, "oxinfer", "mobilenet gRPC raw", 16), bare.get(1), 0.9),
        ("MobileNet gRPC batched c=64 vs bare batch 1 (>= 1.2)",
         rps(results, "oxinfer", "mobilenet gRPC raw, batched", 64), bare.get(1), 1.2),
    ]:
        lines.append(check(label, a, b, target))
    ox = results["servers"].get("oxinfer")
    if ox:
        lines.append(f"- time to ready <= 100 ms: **{ox['ready_ms']:.0f} ms** "
                     f"{'met' if ox['ready_ms'] <= 100 else 'not met'}")
        lines.append(f"- idle RSS <= 50 MB: **{ox['idle_rss_mb']:.1f} MB** "
                     f"{'met' if ox['idle_rss_mb'] <= 50 else 'not met'}")
    lines += markdown_floor(results) + markdown_mlp512(results) + markdown_unpinned(results)
    lines += markdown_scale(results)
    return "\n".join(lines) + "\n"


def markdown_floor(results) -> list:
    lines = ["", f"## Protocol floor{when(results, 'floor')}", "",
             "The same identity load against oxinfer and against bench/floor_server.rs (a bare axum / tonic server "
             "with oxinfer's runtime settings that reads the body and answers oxinfer's identity answer, fixed), "
             "each alone on the server core.", "",
             "| scenario | c | oxinfer req/s | p50 ms | p99 ms | floor req/s | p50 ms | p99 ms | oxinfer/floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for scenario in FLOOR_SCENARIOS:
        for c in FLOOR_CONCURRENCY:
            o, f = cell(results, "oxinfer", scenario, c, "floor"), cell(results, "floor", scenario, c, "floor")
            lines.append(f"| {scenario} | {c} | {' | '.join(fmt(o))} | {' | '.join(fmt(f))} | "
                         f"{ratio(o and o['rps'], f and f['rps'])} |")
    lines += ["", "Targets (issue 22):", ""]
    for scenario in FLOOR_SCENARIOS:
        lines.append(check(f"{scenario} c=16 vs the floor (>= 0.5)", rps(results, "oxinfer", scenario, 16, "floor"),
                           rps(results, "floor", scenario, 16, "floor"), 0.5))
    return lines


def markdown_mlp512(results) -> list:
    # The oxinfer rows' ceiling: the samples of their own run (the MLServer group takes its own, shown apart).
    bare = bare_median(results, "mlp512", "mlp512")
    samples = {b: ", ".join(f"{r['inferences_per_s']:.0f}" for r in results["bare"]
                            if r["batch"] == b and r.get("group") == "mlp512") for b in bare}
    other = bare_median(results, "mlp512", "mlp512-mlserver")
    ceiling = {"unbatched": 1, "batch 8": 8, "batch 32": 32}
    lines = ["", f"## mlp512 batching{when(results, 'mlp512')}", "",
             "mlp512 (x FP32 [N,512], three MatMuls; GEMM-bound: batching pays on a CPU) served unbatched and with "
             "max_batch_size 8 and 32 (max_batch_time 2 ms), one instance, one intra-op thread, server pinned to "
             f"one core. MLServer: the same models with its adaptive batching, gRPC raw"
             f"{when(results, 'mlp512-mlserver')}. Bare ONNX Runtime mlp512 rows/s (median of the oxinfer run's "
             "samples): " + (", ".join(f"batch {b} **{v:.0f}** ({samples[b]})" for b, v in bare.items())
                             or "to be measured")
             + (" (during the MLServer run: " + ", ".join(f"batch {b} {v:.0f}" for b, v in other.items()) + ")"
                if other else "") + ".", "",
             "vs bare = req/s over bare rows/s at the largest batch the row can form, min(max_batch_size, c) "
             "(batch 1 unbatched or at c=1); vs unbatched = over the unbatched row of the same protocol and c.", "",
             "| scenario | c | oxinfer req/s | p50 ms | p99 ms | MLServer req/s | p50 ms | p99 ms | oxinfer/MLServer "
             "| vs bare | vs unbatched |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for protocol in ["gRPC raw", "REST binary"]:
        for variant in MLP_VARIANTS:
            for c in MLP_CONCURRENCY:
                scenario = f"mlp512 {protocol}, {variant}"
                o = cell(results, "oxinfer", scenario, c, "mlp512")
                m = cell(results, "mlserver", scenario, c, "mlp512-mlserver")
                if not o and not m:
                    continue
                unbatched = rps(results, "oxinfer", f"mlp512 {protocol}, unbatched", c, "mlp512")
                # The largest batch this row can form: min(max_batch_size, c); its bare ceiling, else a smaller one.
                reach = [b for b in bare if b <= min(ceiling[variant], c)]
                errors = sum(r["errors"] for r in (o, m) if r)
                note = f" ({errors} errors)" if errors else ""
                lines.append(f"| {scenario}{note} | {c} | {' | '.join(fmt(o))} | {' | '.join(fmt(m))} | "
                             f"{ratio(o and o['rps'], m and m['rps'])} | "
                             f"{ratio(o and o['rps'], bare.get(max(reach)) if reach else None)} | "
                             f"{ratio(o and o['rps'], unbatched) if variant != 'unbatched' else ''} |")
    lines += ["", "Targets (issue 22):", ""]
    for protocol in ["gRPC raw", "REST binary"]:
        lines.append(check(f"mlp512 {protocol} batch 8 c=1 vs unbatched c=1 (>= 0.9)",
                           rps(results, "oxinfer", f"mlp512 {protocol}, batch 8", 1, "mlp512"),
                           rps(results, "oxinfer", f"mlp512 {protocol}, unbatched", 1, "mlp512"), 0.9))
        lines.append(check(f"mlp512 {protocol} batch 8 c=64 vs bare batch 8 (>= 0.6)",
                           rps(results, "oxinfer", f"mlp512 {protocol}, batch 8", 64, "mlp512"), bare.get(8), 0.6))
        a, b = rps(results, "oxinfer", f"mlp512 {protocol}, batch 32", 64, "mlp512"), bare.get(32)
        lines.append(f"- mlp512 {protocol} batch 32 c=64 vs bare batch 32 (reported): "
                     + (f"**{a / b:.2f}x**" if a and b else "to be measured"))
    return lines


def markdown_unpinned(results) -> list:
    lines = ["", f"## Both cores{when(results, 'unpinned')}", "",
             "gRPC raw at c=64: pinned = one instance, server on one core and load on the other; unpinned = two "
             "instances (parallel_workers 2, one intra-op thread each), server and load both on cores "
             f"{results['info'].get('unpinned_cpus', '0,1')}.", "",
             "| model | c | pinned req/s | p50 ms | p99 ms | unpinned req/s | p50 ms | p99 ms | unpinned/pinned |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model in ["mobilenet", "mlp512"]:
        for c in UNPINNED_CONCURRENCY:
            p = cell(results, "oxinfer", f"{model} gRPC raw, pinned", c, "unpinned")
            u = cell(results, "oxinfer", f"{model} gRPC raw, unpinned", c, "unpinned")
            lines.append(f"| {model} | {c} | {' | '.join(fmt(p))} | {' | '.join(fmt(u))} | "
                         f"{ratio(u and u['rps'], p and p['rps'])} |")
    lines += ["", "Targets (issue 22):", ""]
    for model in ["mobilenet", "mlp512"]:
        lines.append(check(f"{model} c=64 unpinned vs pinned (>= 1.7x)",
                           rps(results, "oxinfer", f"{model} gRPC raw, unpinned", 64, "unpinned"),
                           rps(results, "oxinfer", f"{model} gRPC raw, pinned", 64, "unpinned"), 1.7))
    return lines


def markdown_scale(results) -> list:
    scale = results.get("scale") or {}
    many, one = scale.get("models_200") or {}, scale.get("models_2") or {}
    tensor = scale.get("tensor_100mb") or {}

    def value(d, key, form):
        v = d.get(key)
        if v is None and key == "threads_settled":
            v = d.get("threads")
        return form.format(v) if v is not None else "to be measured"

    n = many.get("models", 200)
    lines = ["", f"## Scale (bench/scale.py, server unpinned){when(results, 'scale')}", "",
             "| case | value | reference | target |", "|---|---|---|---|",
             f"| {n} models: time to ready | {value(many, 'ready_s', '{:.2f} s')} | | <= 2 s |",
             f"| {n} models: RSS at ready | {value(many, 'rss_mb', '{:.1f} MB')} | two models: "
             f"{value(one, 'rss_mb', '{:.1f} MB')} | |",
             f"| {n} models: threads at ready | {value(many, 'threads_at_ready', '{}')} | two models: "
             f"{value(one, 'threads_at_ready', '{}')} | |",
             f"| {n} models: threads settled | {value(many, 'threads_settled', '{}')} | two models: "
             f"{value(one, 'threads_settled', '{}')} | not growing with the models |"]
    payload = tensor.get("payload_mb")
    for key, label in [("rest_binary", "REST binary"), ("grpc_raw", "gRPC raw")]:
        peak = (tensor.get(key) or {}).get("peak_mb")
        share = f"{peak / payload:.2f}x the payload" if peak and payload else ""
        size = f"{payload:.1f} MiB" if payload else "100 MB"
        lines.append(f"| one {size} tensor, {label}: peak RSS | "
                     f"{f'{peak:.1f} MB' if peak else 'to be measured'} | {share} | <= 3x the payload |")
    return lines


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
    fig.savefig(OUT / "results.svg")


if __name__ == "__main__":
    main()
