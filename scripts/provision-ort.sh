#!/usr/bin/env bash
# Provisions the pinned ONNX Runtime library into .ort/ from the PyPI onnxruntime wheel, checksums verified.
# Idempotent: does nothing when .ort/ already holds the right files. Needs python3 (pip is used when present).
#
# OXINFER_ORT_FLAVOUR=gpu fetches the onnxruntime-gpu wheel instead (~256 MB; the CUDA 13 and cuDNN 9 runtime
# libraries are not in it, see docs/deployment.md "GPU deployment") and places its library, with the CUDA and
# TensorRT provider libraries that ONNX Runtime loads from the same folder, in .ort/gpu/. Serve with
# `ORT_DYLIB_PATH=.ort/gpu/libonnxruntime.so.1.31.1` (or `--onnxruntime-lib`). The CPU build (`cpu`) is the default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="1.31.1"
LIB="libonnxruntime.so.$VERSION"
FLAVOUR="${OXINFER_ORT_FLAVOUR:-cpu}"
# FILES: "name sha256" of each file taken from the wheel's onnxruntime/capi/.
case "$FLAVOUR" in
  cpu)
    DEST="$ROOT/.ort"
    PACKAGE="onnxruntime"
    WHEEL="onnxruntime-$VERSION-cp311-cp311-manylinux_2_28_x86_64.whl"
    WHEEL_SHA256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
    FILES=("$LIB fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3")
    ;;
  gpu)
    DEST="$ROOT/.ort/gpu"
    PACKAGE="onnxruntime-gpu"
    WHEEL="onnxruntime_gpu-$VERSION-cp311-cp311-manylinux_2_28_x86_64.whl"
    WHEEL_SHA256="e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
    FILES=(
      "$LIB 5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303"
      "libonnxruntime_providers_shared.so 086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d"
      "libonnxruntime_providers_cuda.so d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137"
      "libonnxruntime_providers_tensorrt.so 1882ee49fdb0e6fc2d272b00cfaf9a3310bf8580a34385c0eec4d82014ea172e"
    )
    ;;
  *)
    echo "provision-ort: OXINFER_ORT_FLAVOUR must be cpu or gpu, got '$FLAVOUR'" >&2
    exit 1
    ;;
esac
NAMES=()
for entry in "${FILES[@]}"; do
  NAMES+=("${entry%% *}")
done

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Whether every file in $1 has its checksum.
all_match() {
  local entry
  for entry in "${FILES[@]}"; do
    [[ -f "$1/${entry%% *}" && "$(sha "$1/${entry%% *}")" == "${entry##* }" ]] || return 1
  done
}

if all_match "$DEST"; then
  exit 0
fi
if [[ "$(uname -m)" != "x86_64" || "$(uname -s)" != "Linux" ]]; then
  echo "provision-ort: only Linux x86_64 is pinned here; pass --onnxruntime-lib or set ORT_DYLIB_PATH" >&2
  exit 1
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "provision-ort: fetching $PACKAGE $VERSION from PyPI" >&2
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
      -d "$TMP" "$PACKAGE==$VERSION" 2>/dev/null; then
  # No pip (a bare Debian python3): ask PyPI's JSON API for the wheel's address.
  python3 - "$PACKAGE" "$VERSION" "$WHEEL" "$TMP" <<'PY'
import json, sys, urllib.request
package, version, wheel, dest = sys.argv[1:]
meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{package}/{version}/json", timeout=120))
url = next(f["url"] for f in meta["urls"] if f["filename"] == wheel)
urllib.request.urlretrieve(url, f"{dest}/{wheel}")
PY
fi
[[ -f "$TMP/$WHEEL" ]] || { echo "provision-ort: $WHEEL was not downloaded" >&2; exit 1; }
if [[ "$(sha "$TMP/$WHEEL")" != "$WHEEL_SHA256" ]]; then
  echo "provision-ort: checksum mismatch for $WHEEL" >&2
  exit 1
fi
python3 - "$TMP/$WHEEL" "$TMP" "${NAMES[@]}" <<'PY'
import shutil, sys, zipfile
wheel, dest, *libs = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for lib in libs:
        with z.open(f"onnxruntime/capi/{lib}") as src, open(f"{dest}/{lib}", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
PY
if ! all_match "$TMP"; then
  echo "provision-ort: checksum mismatch for a library in $WHEEL" >&2
  exit 1
fi
mkdir -p "$DEST"
for name in "${NAMES[@]}"; do
  mv "$TMP/$name" "$DEST/$name"
done
echo "provision-ort: $DEST/$LIB ready" >&2
if [[ "$FLAVOUR" == gpu ]]; then
  echo "provision-ort: serve with ORT_DYLIB_PATH=$DEST/$LIB; CUDA 13 and cuDNN 9 must be on the library path" >&2
fi
