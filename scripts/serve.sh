#!/usr/bin/env bash
# Set-up and run in one command: provisions ONNX Runtime, builds oxinfer (release), serves ./model-repository.
# Extra arguments go to `oxinfer start` (e.g. --http-port 9000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/provision-ort.sh
cargo build --release --locked
exec ./target/release/oxinfer start model-repository "$@"
