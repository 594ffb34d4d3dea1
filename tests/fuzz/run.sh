#!/usr/bin/env bash
# run.sh: build the libFuzzer targets of tests/fuzz with clang and run them (docs/conventions.md 23).
#
#   tests/fuzz/run.sh --seconds N [TARGET...]   fuzz each target (default: all) for N seconds
#   tests/fuzz/run.sh --regression [TARGET...]  run every corpus input once through its target
#   tests/fuzz/run.sh --build                   only build them (tests/run.sh, during its tests)
#
# The build lives in build-fuzz/ (SAFECL_FUZZ_BUILD_DIR), configured with clang, ASan, UBSan and
# -DSAFECL_FUZZ=ON. Each target starts from its checked-in seed corpus (tests/fuzz/corpus/T) plus
# what earlier runs found (build-fuzz/corpus/T, where new inputs go; the checked-in corpus is
# never written). Prints the executions per target from libFuzzer's "Done N runs in S second(s)".
# A crash, leak, timeout or out-of-memory input is copied to tests/fuzz/crashes/T/ for a human to
# fix and then move into tests/fuzz/corpus/T/ as a regression input; the script then exits 1.
# Targets run SAFECL_FUZZ_JOBS at a time (default: the number of cores), each on its own core for
# its N seconds, so the phase takes N x targets / jobs seconds of wall time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${SAFECL_FUZZ_BUILD_DIR:-$root/build-fuzz}"
all_targets=(safetensors image config sweep ledger domainnet packed published trial_h5)

seconds=""
regression=0
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --regression) regression=1; shift ;;
    --build) build_only=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ -z "$seconds" ] && [ "$regression" = 0 ] && [ "$build_only" = 0 ]; then
  echo "fuzz/run.sh: give --seconds N, --regression or --build" >&2
  exit 2
fi
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -d "$here/corpus/$t" ] || { echo "fuzz/run.sh: no target $t (no corpus/$t)" >&2; exit 2; }
done

# Longest input per target: a little above its largest seed, so mutations stay fast.
max_len() {
  case "$1" in
    image|ledger|packed|trial_h5) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

cc="${SAFECL_FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}"
[ -n "$cc" ] || { echo "fuzz/run.sh: clang not found (Debian: apt-get install clang)" >&2; exit 2; }
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
  -DSAFECL_FUZZ=ON >"$build/cmake.log" 2>&1 || { cat "$build/cmake.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target fuzz_targets >"$build/build.log" 2>&1 \
  || { tail -50 "$build/build.log" >&2; exit 1; }
[ "$build_only" = 0 ] || exit 0

# Leaks are detected (libFuzzer checks every input that allocates more than it frees); the one
# suppression is libconfig's own scanner leak (lsan.supp). The targets never initialise MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/lsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export FUZZ_TMPDIR="$build/tmp"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
rm -rf "$FUZZ_TMPDIR"
mkdir -p "$FUZZ_TMPDIR"

# One target: its log, its findings copied to tests/fuzz/crashes/T/, one summary line in
# logs/T.result whose first word is ok or FAILED.
fuzz_target() {
  local t="$1"
  local bin="$build/tests/fuzz/fuzz_$t" log="$build/logs/$t.log" art="$build/artifacts/$t/"
  local dict=() args=() status=0 runs crashes c
  [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
  if [ "$regression" = 1 ]; then
    args=(-runs=0 "$here/corpus/$t")
  else
    args=(-max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2560
          -print_final_stats=1 "${dict[@]}" "$build/corpus/$t" "$here/corpus/$t")
  fi
  "$bin" -artifact_prefix="$art" "${args[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
  crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
            -o -name 'oom-*' -o -name 'slow-unit-*' \) 2>/dev/null | grep -v slow-unit || true)
  if [ "$status" != 0 ] || [ -n "$crashes" ]; then
    mkdir -p "$here/crashes/$t"
    for c in $crashes; do cp "$c" "$here/crashes/$t/"; done
    printf '%-12s FAILED (exit %s) %s; log %s\n' "$t" "$status" "${runs:-}" "$log" \
      >"$build/logs/$t.result"
    grep -m1 -E "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error" "$log" >&2 || true
  else
    printf '%-12s ok    %s\n' "$t" "${runs:-?}" >"$build/logs/$t.result"
  fi
}

parallel="${SAFECL_FUZZ_JOBS:-$(nproc)}"
mkdir -p "$build/logs"
for t in "${targets[@]}"; do
  rm -rf "$build/artifacts/$t/" "$build/logs/$t.result" # an earlier run's are not this run's
  mkdir -p "$build/artifacts/$t/" "$build/corpus/$t"
done
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_target "$t" &
done
wait
failed=0
summary=()
for t in "${targets[@]}"; do
  line=$(cat "$build/logs/$t.result" 2>/dev/null || printf '%-12s FAILED (no result)' "$t")
  read -r _ verdict _ <<<"$line"
  [ "$verdict" = ok ] || failed=1
  summary+=("$line")
done
echo "fuzz: executions per target$([ "$regression" = 1 ] && echo ' (regression)' || echo " ($seconds s each)"):"
printf '  %s\n' "${summary[@]}"
if [ "$failed" = 1 ]; then
  echo "fuzz: failing inputs copied to $here/crashes/<target>/: fix the parser, then move each" \
       "into tests/fuzz/corpus/<target>/ as a regression input" >&2
fi
exit "$failed"
