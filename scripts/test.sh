#!/usr/bin/env bash
# Every test in one command: provisions ONNX Runtime, the Python client venvs and the headless browser (Debian's
# chromium, for the Swagger UI test), runs the Rust unit and integration tests, then the compatibility tests that
# drive the real binary with the real Python clients and the browser (one venv and one pytest process per client
# family: their packages cannot share a process or a venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# A fresh CI clone gains nothing from incremental artefacts; they would only take disk.
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi
bash scripts/provision-ort.sh
cargo test --locked --all-targets
cargo build --locked   # the binary the compatibility tests start
export OXINFER_BIN="$ROOT/target/debug/oxinfer"
for suite in triton kserve mlserver openapi zoo browser; do
  if [[ "$suite" == browser ]]; then
    # Swagger UI in headless Chromium: browser-env.sh also installs Debian's chromium and chromium-driver.
    venv="$(bash scripts/browser-env.sh)"
  else
    venv="$(bash scripts/python-env.sh "$suite")"
  fi
  echo "== compatibility: $suite"
  "$venv/bin/python" -m pytest "tests/compat/$suite" -q -p no:cacheprovider
done
echo "== deployment manifests and Dockerfile"
DEPLOY="$(bash scripts/python-env.sh deploy)"
"$DEPLOY/bin/python" -m pytest tests/deploy -q -p no:cacheprovider
# The fuzz corpus replay (tests/api/fuzz_corpus.rs) ran with the Rust tests above. The coverage-guided run builds the
# whole dependency tree instrumented (~630 CPU-seconds from a fresh clone) and runs on demand: OXINFER_FUZZ=1
# (seconds per target in OXINFER_FUZZ_SECONDS, default 10; scripts/fuzz.sh alone for longer runs).
if [[ "${OXINFER_FUZZ:-0}" == 1 ]]; then
  bash scripts/fuzz.sh "${OXINFER_FUZZ_SECONDS:-10}"
fi
# The container build and smoke run (podman, root, 4-18 min cold; asserts size, ready time, user, health check,
# SIGTERM exit, no builder image left) runs on demand: OXINFER_CONTAINER_TEST=1.
if [[ "${OXINFER_CONTAINER_TEST:-0}" == 1 ]]; then
  bash scripts/container.sh all
fi
