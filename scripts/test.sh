#!/usr/bin/env bash
# Every test in one command: provisions ONNX Runtime and the Python client venvs, runs the Rust unit and
# integration tests, then the compatibility tests that drive the real binary with the real Python clients.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/provision-ort.sh
cargo test --locked --all-targets
cargo build --locked   # the binary the compatibility tests start
TRITON="$(bash scripts/python-env.sh triton)"
OXINFER_BIN="$ROOT/target/debug/oxinfer" "$TRITON/bin/python" -m pytest tests/compat -q -p no:cacheprovider
