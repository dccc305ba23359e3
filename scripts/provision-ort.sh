#!/usr/bin/env bash
# Provisions the pinned ONNX Runtime library into .ort/ from the PyPI onnxruntime wheel, checksums verified.
# Idempotent: does nothing when .ort/ already holds the right file. Needs python3 (pip is used when present).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.ort"
VERSION="1.31.1"
LIB="libonnxruntime.so.$VERSION"
WHEEL="onnxruntime-$VERSION-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
LIB_SHA256="fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$DEST/$LIB" && "$(sha "$DEST/$LIB")" == "$LIB_SHA256" ]]; then
  exit 0
fi
if [[ "$(uname -m)" != "x86_64" || "$(uname -s)" != "Linux" ]]; then
  echo "provision-ort: only Linux x86_64 is pinned here; pass --onnxruntime-lib or set ORT_DYLIB_PATH" >&2
  exit 1
fi
mkdir -p "$DEST"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "provision-ort: fetching onnxruntime $VERSION from PyPI" >&2
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
      -d "$TMP" "onnxruntime==$VERSION" 2>/dev/null; then
  # No pip (a bare Debian python3): ask PyPI's JSON API for the wheel's address.
  python3 - "$VERSION" "$WHEEL" "$TMP" <<'PY'
import json, sys, urllib.request
version, wheel, dest = sys.argv[1:]
meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/onnxruntime/{version}/json", timeout=120))
url = next(f["url"] for f in meta["urls"] if f["filename"] == wheel)
urllib.request.urlretrieve(url, f"{dest}/{wheel}")
PY
fi
[[ -f "$TMP/$WHEEL" ]] || { echo "provision-ort: $WHEEL was not downloaded" >&2; exit 1; }
if [[ "$(sha "$TMP/$WHEEL")" != "$WHEEL_SHA256" ]]; then
  echo "provision-ort: checksum mismatch for $WHEEL" >&2
  exit 1
fi
python3 - "$TMP/$WHEEL" "$TMP" "$LIB" <<'PY'
import sys, zipfile
wheel, dest, lib = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"onnxruntime/capi/{lib}") as src, open(f"{dest}/{lib}", "wb") as out:
        out.write(src.read())
PY
if [[ "$(sha "$TMP/$LIB")" != "$LIB_SHA256" ]]; then
  echo "provision-ort: checksum mismatch for $LIB" >&2
  exit 1
fi
mv "$TMP/$LIB" "$DEST/$LIB"
echo "provision-ort: $DEST/$LIB ready" >&2
