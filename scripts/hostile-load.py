#!/usr/bin/env python3
"""Hostile load: replays the attacks of issue 18 against a real oxinfer on loopback, then a soak of normal traffic,
and prints per case the answers, the liveness latency (GET /v2/health/live on a fresh connection every 20 ms while
the case runs: p50/p99/max) and the server's RSS (before, peak, and 3 s after). Bounded: every case has a size
and a time limit; only loopback targets are accepted.

    scripts/hostile-load.py                          # starts target/{release,debug}/oxinfer on model-repository
    scripts/hostile-load.py --bin path/to/oxinfer --cases gzip-bomb,image-resize --soak 60
    scripts/hostile-load.py --pid 1234 --http 127.0.0.1:8080 --grpc 127.0.0.1:8081   # a server already running

Python stdlib only; the gRPC cases that send whole messages use grpcio when importable (run it with the triton
venv: `$(bash scripts/python-env.sh triton)/bin/python scripts/hostile-load.py`), else they are skipped. Open
gRPC streams are driven over raw HTTP/2 frames. Exit status 0 even when cases fail: it is a measurement, read
the table (the regression tests are the pass/fail gate).
"""
import argparse
import gzip
import http.client
import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import grpc  # noqa: F401  (optional)
except ImportError:
    grpc = None


# ---------------------------------------------------------------- the server and the probes
def loopback(addr):
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
    if not infos or not all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos):
        sys.exit(f"refusing {addr}: hostile load goes to loopback addresses only")
    return host, int(port)


class Server:
    """A started oxinfer (killed on close) or one given by pid and addresses."""

    def __init__(self, args):
        self.proc = None
        if args.pid:
            if not (args.http and args.grpc):
                sys.exit("--pid needs --http and --grpc")
            self.pid, self.http, self.grpc = args.pid, loopback(args.http), loopback(args.grpc)
            return
        binary = args.bin or next(
            (p for p in (f"{ROOT}/target/release/oxinfer", f"{ROOT}/target/debug/oxinfer") if os.path.exists(p)), None)
        if not binary:
            sys.exit("no oxinfer binary: cargo build --release, or pass --bin")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
        env.update(MLSERVER_HTTP_PORT="0", MLSERVER_GRPC_PORT="0", MLSERVER_METRICS_PORT="0", MLSERVER_HOST="127.0.0.1",
                   RUST_LOG=env.get("RUST_LOG", "warn,oxinfer=info"))
        self.proc = subprocess.Popen([binary, "start", args.repository], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.pid, found = self.proc.pid, {}
        deadline = time.time() + 120
        while len(found) < 2 and time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                sys.exit("oxinfer exited before listening")
            for kind in ("HTTP", "gRPC"):
                m = re.search(kind + r" server listening on (\S+)", line)
                if m:
                    found[kind] = loopback(m.group(1))
        self.http, self.grpc = found["HTTP"], found["gRPC"]
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # drain the log
        while time.time() < deadline:
            try:
                if request(self.http, "GET", "/v2/health/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        print(f"oxinfer {binary} pid {self.pid} http {self.http[1]} grpc {self.grpc[1]}", flush=True)

    def rss(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def close(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def request(addr, method, path, body=None, headers=None, timeout=60):
    """One request on a fresh connection: (status, body bytes)."""
    conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Watch:
    """Liveness probes every 20 ms on fresh connections, and RSS samples, while a case runs."""

    def __init__(self, server):
        self.server, self.stop = server, threading.Event()
        self.latencies, self.failures, self.peak = [], 0, server.rss()

    def __enter__(self):
        self.threads = [threading.Thread(target=self.probe, daemon=True),
                        threading.Thread(target=self.sample, daemon=True)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def probe(self):
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                ok = request(self.server.http, "GET", "/v2/health/live", timeout=5)[0] == 200
            except OSError:
                ok = False
            took = time.perf_counter() - started
            if ok:
                self.latencies.append(took)
            else:
                self.failures += 1
            self.stop.wait(max(0.0, 0.02 - took))

    def sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            self.stop.wait(0.05)


# ---------------------------------------------------------------- helpers for the cases
class Tally:
    """What a case's requests got back: counts per answer ('400', '413', 'reset', 'timeout', ...)."""

    def __init__(self):
        self.answers, self.lock, self.sample = {}, threading.Lock(), ""

    def add(self, answer, text=""):
        with self.lock:
            self.answers[str(answer)] = self.answers.get(str(answer), 0) + 1
            if text and not self.sample:
                self.sample = text[:120]

    def http(self, addr, method, path, body=None, headers=None, timeout=60):
        try:
            status, data = request(addr, method, path, body, headers, timeout)
            self.add(status, data.decode("utf-8", "replace") if status >= 400 else "")
            return status, data
        except socket.timeout:
            self.add("timeout")
        except ConnectionError:
            self.add("reset")
        except OSError as e:
            self.add(type(e).__name__)
        return None, b""

    def total(self):
        return sum(self.answers.values())


def parallel(n, fn, count=None):
    """Calls fn(0..count) on n threads (count defaults to n)."""
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(fn, range(n if count is None else count)))


def grpc_call(server, method, payload, timeout=60):
    """A unary gRPC call with a hand-encoded message: (code name, details)."""
    channel = grpc.insecure_channel(f"{server.grpc[0]}:{server.grpc[1]}", options=[
        ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    try:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        call(payload, timeout=timeout)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, (e.details() or "")
    finally:
        channel.close()


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# ---------------------------------------------------------------- the cases (each returns a Tally)
def case_tiny_inputs(server, scale):
    """2 REST (and 2 gRPC) bodies of 150k one-element inputs: quadratic lookup, parsing on the runtime."""
    n = 150_000 if scale == "full" else 20_000
    inputs = ",".join('{"name":"i%d","shape":[1],"datatype":"FP32","data":[1]}' % i for i in range(n))
    body = ('{"inputs":[%s]}' % inputs).encode()
    t = Tally()
    jobs = [lambda: t.http(server.http, "POST", "/v2/models/iris/infer", body,
                           {"Content-Type": "application/json"}, timeout=120)] * 2
    if grpc:
        one = lambda i: pb(5, pb(1, b"i%d" % i) + pb(2, b"FP32") + pb(3, b"\x01") + pb(5, pb(6, b"\x00\x00\x80\x3f")))
        message = pb(1, b"iris") + b"".join(one(i) for i in range(n))
        jobs += [lambda: t.add(*grpc_call(server, "ModelInfer", message, timeout=120))] * 2
    parallel(len(jobs), lambda i: jobs[i]())
    return t


def case_gzip_bomb(server, scale):
    """24 concurrent 65 KB gzip bodies of whitespace JSON expanding to 64 MiB."""
    expanded = 64 * 1024 * 1024 if scale == "full" else 16 * 1024 * 1024
    body = gzip.compress(b'{"inputs":[' + b" " * expanded + b"]}", 9)
    t = Tally()
    parallel(24, lambda i: t.http(server.http, "POST", "/v2/models/iris/infer", body,
                                  {"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=120))
    t.sample = f"{len(body)} B gzip -> {expanded >> 20} MiB; " + t.sample
    return t


def case_bytes_amplification(server, scale):
    """8 concurrent binary-extension requests of 16M empty BYTES strings in all (64 MB raw, ~62 KB gzipped; just
    under the default 64 MiB body limit), shaped to fit simple_string's inputs."""
    total = 16_000_000 if scale == "full" else 4_000_000
    status, meta = request(server.http, "GET", "/v2/models/simple_string")
    specs = json.loads(meta)["inputs"]
    inputs, raw = [], b""
    for spec in specs:
        inner = [d for d in spec["shape"][1:] if d > 0]  # the shape the model takes: [-1, 16] -> [n / 16, 16]
        row = 1
        for d in inner:
            row *= d
        shape = [total // len(specs) // row] + inner
        count = shape[0] * row
        inputs.append({"name": spec["name"], "datatype": "BYTES", "shape": shape,
                       "parameters": {"binary_data_size": 4 * count}})
        raw += bytes(4 * count)
    header = json.dumps({"inputs": inputs}).encode()
    body = gzip.compress(header + raw, 6)
    t = Tally()
    parallel(8, lambda i: t.http(server.http, "POST", "/v2/models/simple_string/infer", body, {
        "Content-Type": "application/octet-stream", "Content-Encoding": "gzip",
        "Inference-Header-Content-Length": str(len(header))}, timeout=120))
    return t


def png(width, height):
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def case_image_resize(server, scale):
    """An 8x8 PNG with the request's own parameters.resize [20000, 20000] (a 1.2 GB buffer on main)."""
    import base64
    side = 20000 if scale == "full" else 8000
    body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"content_type": "img", "resize": [side, side]},
                                   "data": [base64.b64encode(png(8, 8)).decode()]}]}).encode()
    t = Tally()
    parallel(2, lambda i: t.http(server.http, "POST", "/v2/models/image_stats/infer", body,
                                 {"Content-Type": "application/json"}, timeout=120))
    return t


def case_long_names(server, scale):
    """2,000 REST load/unload calls with distinct 56 KB model names, and 20 gRPC ones with 10 MB names."""
    n, length = (2000, 56 * 1024) if scale == "full" else (400, 56 * 1024)
    t = Tally()

    def one(i):
        name = (str(i) + "n" * length)[:length]
        t.http(server.http, "POST", f"/v2/repository/models/{name}/" + ("load" if i % 2 else "unload"), b"{}",
               {"Content-Type": "application/json"}, timeout=30)
    parallel(8, one, n)
    if grpc:
        for i in range(20 if scale == "full" else 5):
            name = (str(i) + "g" * (10 << 20))[: 10 << 20].encode()
            t.add(*grpc_call(server, "RepositoryModelLoad" if i % 2 else "RepositoryModelUnload", pb(2, name)))
    return t


def case_idle_connections(server, scale, hold=15):
    """300 idle connections (no byte sent) held 15 s; counts how many the server closed meanwhile."""
    n = 300 if scale == "full" else 100
    t = Tally()
    conns = []
    for _ in range(n):
        try:
            conns.append(socket.create_connection(server.http, timeout=5))
        except OSError as e:
            t.add("connect " + type(e).__name__)
    # New clients must still be served while they are held (the probes measure that).
    time.sleep(hold)
    closed = 0
    for s in conns:
        s.setblocking(False)
        try:
            closed += s.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    t.answers.update({"closed by server": closed, "held open": len(conns) - closed})
    return t


def case_slowloris(server, scale, hold=15):
    """50 connections each sending a header byte a second for 15 s; counts how many the server cut."""
    n = 50
    t = Tally()
    conns = [socket.create_connection(server.http, timeout=5) for _ in range(n)]
    for s in conns:
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n")
    cut = set()
    end = time.time() + hold
    while time.time() < end:
        for i, s in enumerate(conns):
            if i in cut:
                continue
            try:
                s.sendall(b"X")
            except OSError:
                cut.add(i)
        time.sleep(1)
    for s in conns:
        s.close()
    t.answers = {"cut by server": len(cut), "still open": n - len(cut)}
    return t


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def case_grpc_streams(server, scale):
    """Raw HTTP/2: opens up to 20k gRPC ModelInfer streams that never send their message; reports the advertised
    MAX_CONCURRENT_STREAMS, how many were refused, and what the connection costs (RSS, in the table)."""
    n = 20000 if scale == "full" else 5000
    t = Tally()
    s = socket.create_connection(server.grpc, timeout=10)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0))
    headers = b"".join(hpack_literal(k, v) for k, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/inference.GRPCInferenceService/ModelInfer"),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    advertised, refused, goaway = None, 0, False
    buf = b""

    def read_frames(wait):
        nonlocal buf, advertised, refused, goaway
        s.settimeout(wait)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    goaway = True
                    return
                buf += data
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
                    buf = buf[9 + length:]
                    if kind == 4 and not flags & 1:
                        for j in range(0, len(payload), 6):
                            ident, value = struct.unpack(">HI", payload[j:j + 6])
                            if ident == 3:
                                advertised = value
                        s.sendall(h2_frame(4, 1, 0))
                    elif kind == 3:
                        refused += 1
                    elif kind == 7:
                        goaway = True
        except (socket.timeout, BlockingIOError):
            return
        except OSError:
            goaway = True
    read_frames(1.0)
    sent = 0
    for i in range(n):
        try:
            s.sendall(h2_frame(1, 4, 1 + 2 * i, headers))  # END_HEADERS, no END_STREAM: the body never comes
            sent += 1
        except OSError:
            goaway = True
            break
        if i % 500 == 499:
            read_frames(0.01)
    read_frames(3.0)
    peak_rss = server.rss()
    s.close()
    t.answers = {"streams opened": sent, "refused (RST_STREAM)": refused, "GOAWAY/closed": int(goaway)}
    t.sample = f"advertised MAX_CONCURRENT_STREAMS={advertised}; RSS with streams open {peak_rss >> 20} MB"
    return t


def case_wide_shape(server, scale):
    """A 1e6-dimension shape on REST and gRPC: the error must be short (3 MB on main; gRPC saw 'Stream removed')."""
    dims = 1_000_000
    body = ('{"inputs":[{"name":"input","shape":[%s],"datatype":"FP32","data":[1]}]}' % ",".join(["1"] * dims)).encode()
    t = Tally()
    status, data = t.http(server.http, "POST", "/v2/models/iris/infer", body, {"Content-Type": "application/json"})
    t.sample = f"REST error body {len(data)} B"
    if grpc:
        tensor = pb(1, b"input") + pb(2, b"FP32") + pb(3, b"\x01" * dims) + pb(5, pb(6, b"\x00\x00\x80\x3f"))
        code, details = grpc_call(server, "ModelInfer", pb(1, b"iris") + pb(5, tensor))
        t.add("grpc " + code)
        t.sample += f"; gRPC {code} details {len(details)} B: {details[:100]!r}"
    return t


def soak(server, seconds, clients=8):
    """Normal traffic: `clients` keep-alive REST clients (and gRPC when available) sending iris requests."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    t = Tally()
    end = time.time() + seconds

    def rest_client(_):
        conn = http.client.HTTPConnection(*server.http, timeout=10)
        while time.time() < end:
            try:
                conn.request("POST", "/v2/models/iris/infer", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                t.add(r.status)
            except (OSError, http.client.HTTPException) as e:
                t.add(type(e).__name__)
                conn.close()
                conn = http.client.HTTPConnection(*server.http, timeout=10)
        conn.close()

    def grpc_client(_):
        channel = grpc.insecure_channel(f"{server.grpc[0]}:{server.grpc[1]}")
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        message = pb(1, b"iris") + pb(5, pb(1, b"input") + pb(2, b"FP32") + pb(3, b"\x01\x04")
                                      + pb(5, pb(6, struct.pack("<4f", 5.1, 3.5, 1.4, 0.2))))
        while time.time() < end:
            try:
                call(message, timeout=10)
                t.add("grpc OK")
            except grpc.RpcError as e:
                t.add("grpc " + e.code().name)
        channel.close()
    jobs = [rest_client] * clients + ([grpc_client] * (clients // 2) if grpc else [])
    parallel(len(jobs), lambda i: jobs[i](i))
    t.sample = f"{t.total() / seconds:.0f} req/s"
    return t


CASES = {
    "tiny-inputs": case_tiny_inputs,
    "gzip-bomb": case_gzip_bomb,
    "bytes-amplification": case_bytes_amplification,
    "image-resize": case_image_resize,
    "long-names": case_long_names,
    "idle-connections": case_idle_connections,
    "slowloris": case_slowloris,
    "grpc-streams": case_grpc_streams,
    "wide-shape": case_wide_shape,
}


def ms(values, q):
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", help="the oxinfer binary to start (default target/release, else target/debug)")
    parser.add_argument("--repository", default=f"{ROOT}/model-repository")
    parser.add_argument("--pid", type=int, help="measure a running server instead (needs --http, --grpc)")
    parser.add_argument("--http", help="host:port of its REST listener (loopback only)")
    parser.add_argument("--grpc", help="host:port of its gRPC listener (loopback only)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument("--scale", choices=["full", "small"], default="full",
                        help="full: the issue's sizes; small: a fraction, for slow machines")
    parser.add_argument("--soak", type=float, default=30, help="seconds of normal traffic at the end (0: none)")
    args = parser.parse_args()
    wanted = [c for c in args.cases.split(",") if c]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        sys.exit(f"unknown cases {unknown}; known: {list(CASES)}")
    server = Server(args)
    rows = []
    try:
        runs = [(name, lambda s, name=name: CASES[name](s, args.scale)) for name in wanted]
        if args.soak > 0:
            runs.append(("soak", lambda s: soak(s, args.soak)))
        for name, run in runs:
            before = server.rss()
            started = time.perf_counter()
            with Watch(server) as watch:
                try:
                    tally = run(server)
                except Exception as e:  # a case that breaks is reported, the others still run
                    tally = Tally()
                    tally.add("case failed: " + type(e).__name__, str(e))
            took = time.perf_counter() - started
            time.sleep(3)
            after = server.rss()
            alive = True
            try:
                alive = request(server.http, "GET", "/v2/health/live", timeout=5)[0] == 200
            except OSError:
                alive = False
            rows.append((name, tally, took, watch, before, after, alive))
            print(f"-- {name}: {took:.1f}s {tally.answers} live max {ms(watch.latencies, 1.0)} ms "
                  f"rss {before >> 20}->{watch.peak >> 20}->{after >> 20} MB {tally.sample}", flush=True)
            if not alive:
                print("the server no longer answers; stopping", flush=True)
                break
    finally:
        server.close()
    print()
    head = f"{'case':<20} {'time s':>7} {'live p50':>8} {'p99':>6} {'max ms':>7} {'fail':>4} " \
           f"{'RSS MB before/peak/after':>25}  answers"
    print(head)
    print("-" * len(head))
    for name, tally, took, watch, before, after, alive in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in tally.answers.items())
        print(f"{name:<20} {took:>7.1f} {ms(watch.latencies, 0.5):>8} {ms(watch.latencies, 0.99):>6} "
              f"{ms(watch.latencies, 1.0):>7} {watch.failures:>4} "
              f"{f'{before >> 20}/{watch.peak >> 20}/{after >> 20}':>25}  {answers}")
        if tally.sample:
            print(f"{'':<20} {tally.sample}")


if __name__ == "__main__":
    main()
