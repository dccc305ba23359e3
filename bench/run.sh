#!/usr/bin/env bash
# The benchmark in one command: builds oxinfer, the load generator and the floor server (release), makes the
# bench venv (MLServer 1.7.1 + onnxruntime 1.31.1 + matplotlib), prepares the models and repositories, runs every
# scenario against both servers and the floor server (server pinned to one core, load generator to another) and
# writes bench/results.{md,json,svg}.
# Not part of CI. Tunables: BENCH_SECONDS, BENCH_WARMUP, BENCH_CONCURRENCY, BENCH_SERVER_CPU, BENCH_LOAD_CPU,
# BENCH_SKIP_MLSERVER=1, BENCH_ONLY=group,... (core, floor, mlp512, mlp512-mlserver, unpinned, scale: run only
# those rows and keep the others in bench/results.json), BENCH_OUT (see the top of bench/bench.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed" >&2; exit 1; }
bash scripts/provision-ort.sh
cargo build --release --locked --bin oxinfer --example loadgen --example floor_server
VENV="$(bash scripts/python-env.sh bench bench/requirements.txt)"
exec "$VENV/bin/python" bench/bench.py
