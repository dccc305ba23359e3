#!/usr/bin/env bash
# Every test in one command: provisions ONNX Runtime, then runs the Rust unit and integration tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/provision-ort.sh
cargo test --locked --all-targets
