#!/usr/bin/env bash
# Runs Triton's perf_analyzer (PyPI wheel perf-analyzer 2.60.0) with the given arguments, e.g.
#   scripts/perf-analyzer.sh -m simple -u 127.0.0.1:8080   (no --shape: the config is in Triton's batching form)
# The binary needs glibc 2.38; Debian 12 has 2.36, so Debian 13's libc6, libstdc++6, libgcc-s1, libssl3t64 and
# zlib1g are unpacked into .perf/ (private apt lists, nothing installed system-wide) and the binary is started
# through that loader. Provisioned once; `--print-path` prints the command prefix instead of running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.perf"
LIB="$DEST/root/usr/lib/x86_64-linux-gnu"
BIN="$DEST/perf_analyzer/bin/perf_analyzer"

if [[ ! -x "$BIN" || ! -e "$LIB/ld-linux-x86-64.so.2" ]]; then
  rm -rf "$DEST" && mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$DEST/apt/sources.list"
  APT=(-o "Dir::Etc::SourceList=$DEST/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o "Dir::State::Lists=$DEST/apt/lists" -o "Dir::Cache=$DEST/apt/cache" -o Dir::State::status=/dev/null
       -o APT::Sandbox::User=root)
  apt-get "${APT[@]}" -qq update >&2
  (cd "$DEST" && apt-get "${APT[@]}" -qq download libc6 libstdc++6 libgcc-s1 libssl3t64 zlib1g >&2)
  for deb in "$DEST"/*.deb; do dpkg -x "$deb" "$DEST/root"; done
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 \
    --python-version 3.11 -d "$DEST" "perf-analyzer==2.60.0" >&2
  python3 - "$DEST" <<'PY'
import glob, sys, zipfile
dest = sys.argv[1]
wheel = glob.glob(f"{dest}/perf_analyzer-2.60.0-*.whl")[0]
zipfile.ZipFile(wheel).extract("perf_analyzer/bin/perf_analyzer", dest)
PY
  chmod +x "$BIN"
fi
if [[ "${1:-}" == "--print-path" ]]; then
  echo "$LIB/ld-linux-x86-64.so.2 --library-path $LIB $BIN"
  exit 0
fi
exec "$LIB/ld-linux-x86-64.so.2" --library-path "$LIB" "$BIN" "$@"
