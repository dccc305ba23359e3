#!/usr/bin/env bash
# Coverage-guided fuzzing of oxinfer's decoders (fuzz/): builds the targets with libFuzzer's coverage
# instrumentation on stable Rust (the flags cargo-fuzz passes, without a sanitizer, so no nightly is needed) and
# runs each target for a fixed time, starting from the committed corpus in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target
#
# New inputs that reach new coverage go to fuzz/work/<target>/ (ignored by git; merge the good ones into
# fuzz/corpus with `-merge=1` by hand). A crash, a timeout (a single input running past 10 s) or an input that
# makes the target use more than 2 GiB writes fuzz/artifacts/<target>/crash-* (or timeout-*, oom-*) and
# this script exits non-zero after running the other targets. Replay one with:
#   fuzz/target/x86_64-unknown-linux-gnu/release/<target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [[ ${#TARGETS[@]} == 0 ]]; then
  TARGETS=(rest_json rest_binary grpc_infer codecs settings)
fi
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# What cargo-fuzz passes (sanitizer none). `--target` keeps the flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "== building fuzz targets ($TRIPLE)"
# Not --locked: fuzz/Cargo.lock follows the main crate's dependencies (cargo adds what they gain, keeping the pins).
cargo build --release --target "$TRIPLE" --bins
BIN="$ROOT/fuzz/target/$TRIPLE/release"
failed=()
for target in "${TARGETS[@]}"; do
  mkdir -p "work/$target" "artifacts/$target" "corpus/$target"
  echo "== fuzzing $target for ${SECONDS_EACH}s"
  # The corpus dirs: new finds go to the first (scratch), the committed corpus is read-only input.
  if ! "$BIN/$target" "work/$target" "corpus/$target" \
      -max_total_time="$SECONDS_EACH" -max_len=262144 -len_control=50 -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=2048 -artifact_prefix="artifacts/$target/" -print_final_stats=1 2>"work/$target.log"; then
    failed+=("$target")
    tail -n 40 "work/$target.log"
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^Done|^INFO: Loaded|cov:" "work/$target.log" | tail -n 4 || true
done
if [[ ${#failed[@]} != 0 ]]; then
  echo "== fuzzing found problems in: ${failed[*]} (see fuzz/artifacts/)" >&2
  exit 1
fi
echo "== fuzzing: every target ran ${SECONDS_EACH}s clean"
