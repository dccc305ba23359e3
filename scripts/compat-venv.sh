#!/usr/bin/env bash
# Builds .venv-compat/ with the pinned Python clients the compatibility tests drive (tritonclient's gRPC client,
# kserve's InferenceGRPCClient, pytest, numpy). Idempotent: re-running only installs what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-compat"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "tritonclient[grpc]==2.73.0" \
    "kserve==0.21.0" \
    "pytest==9.2.0" \
    "numpy>=1.26,<3"
echo "$VENV ready"
