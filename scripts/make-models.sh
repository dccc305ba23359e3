#!/usr/bin/env bash
# Regenerate the bundled example models in model-repository/ and the test fixtures in tests/models/
# (see scripts/make_models.py).
# Creates .venv-models/ at the repo root with pinned packages from PyPI (once), then runs
# make_models.py, which checks and runs every model before writing it. Idempotent: the same
# pins give byte-identical model.onnx files.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-models"

# Exact versions of everything installed (direct dependencies and what they pull in).
pins=(
  numpy==2.4.6
  onnx==1.23.2
  onnxruntime==1.31.1
  scikit-learn==1.9.1
  skl2onnx==1.20.0
  scipy==1.17.1
  protobuf==7.36.2
  ml_dtypes==0.6.0
  joblib==1.6.0
  threadpoolctl==3.8.0
  flatbuffers==25.12.19
  packaging==26.3
  typing_extensions==4.16.0
  narwhals==2.29.0
  cloudpickle==3.1.2
)

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi

stamp="$venv/.make-models-pins"
want="$(printf '%s\n' "${pins[@]}")"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${pins[@]}"
  printf '%s\n' "$want" >"$stamp"
fi

exec "$venv/bin/python" "$repo/scripts/make_models.py" --out "$repo/model-repository" \
  --fixtures "$repo/tests/models" "$@"
