#!/usr/bin/env bash
# Makes (or refreshes) the Python venv .venv-NAME from tests/compat/requirements-NAME.txt (pinned), for the
# compatibility tests. Works on a bare Debian python3 (no pip, no ensurepip): pip is then bootstrapped from its
# PyPI wheel. Prints the venv's path.
# usage: python-env.sh NAME [REQUIREMENTS_FILE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${1:?usage: python-env.sh NAME}"
# An optional second argument names another requirements file (the benchmark keeps its own in bench/).
REQS="${2:-$ROOT/tests/compat/requirements-$NAME.txt}"
VENV="$ROOT/.venv-$NAME"
STAMP="$VENV/.requirements.sha256"
[[ -f "$REQS" ]] || { echo "python-env: no $REQS" >&2; exit 1; }
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$VENV"; exit 0
fi
if [[ ! -x "$VENV/bin/pip" ]]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv --without-pip "$VENV"
    "$VENV/bin/python" - "$VENV" <<'PY'
import json, subprocess, sys, tempfile, urllib.request
venv = sys.argv[1]
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=120))
wheel = next(f for f in meta["urls"] if f["filename"].endswith(".whl"))
path = tempfile.mkdtemp() + "/" + wheel["filename"]
urllib.request.urlretrieve(wheel["url"], path)
subprocess.check_call([f"{venv}/bin/python", f"{path}/pip", "install", "--quiet", path])
PY
  fi
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" >&2
echo "$want" > "$STAMP"
echo "$VENV"
