#!/usr/bin/env bash
# run.sh: set up this machine, build safecl with warnings as errors, and run the test suite.
#
#   tests/run.sh              default suite (everything not labelled slow)
#   tests/run.sh --all        include slow tests
#   tests/run.sh --sanitize   ASan/UBSan build in build-asan/, same suite
# Each runs with the OpenBLAS kernel detected on this CPU, then the tests labelled numeric
# again with a second kernel (below), then every libFuzzer target for 20 s (tests/fuzz/run.sh).
# Exits non-zero if setup, the build or any test fails.
#
# Wall time on 2 cores: the tests that are not `numeric` run one at a time (many start several
# MPI ranks); the `numeric` ones, single-threaded parity tests, two at a time (ctest -j 2); the
# clang build of the fuzz targets runs at nice 19 alongside the tests, on the cycles they leave
# idle; the fuzz targets run one per core (tests/fuzz/run.sh).
set -euo pipefail
export SAFECL_WITH_TESTS=1
# Its own build directory (build-tests/), so the suite never rebuilds the quickstart's build/.
SAFECL_BUILD_DIR="${SAFECL_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build-tests}"
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/setup.sh"
cd "$SAFECL_ROOT"

# ctest takes one -LE regex: the first run leaves out "slow|numeric", the numeric runs "slow".
ctest_args=(--output-on-failure)
suite_args=(-LE "slow|numeric")
numeric_args=(-L numeric -LE slow)
for arg in "$@"; do
  case "$arg" in
    --all) suite_args=(-LE numeric); numeric_args=(-L numeric) ;;
    --sanitize) SAFECL_BUILD_DIR="$SAFECL_ROOT/build-asan"
                SAFECL_CMAKE_ARGS="${SAFECL_CMAKE_ARGS:-} -DSAFECL_SANITIZE=ON" ;;
    *) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
SAFECL_CMAKE_ARGS="${SAFECL_CMAKE_ARGS:-} -DSAFECL_WERROR=ON"

safecl_install_packages
safecl_build
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI refuses to run as root without these; tests start ranks on this machine only.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$SAFECL_BUILD_DIR"

# OpenBLAS picks its kernels by CPU, or by OPENBLAS_CORETYPE; their summation orders differ, so a
# tolerance read off one kernel fails on another (docs/conventions.md 12). The suite runs with
# the kernel OpenBLAS detects (OPENBLAS_CORETYPE unset, whatever the caller exported), then the
# tests labelled `numeric` run again with Haswell's (AVX2), or Sandybridge's (AVX) where the
# detected kernel is Haswell. OPENBLAS_VERBOSE=2 makes OpenBLAS print the kernel it loaded.
openblas_core() {
  local out
  out=$(env "$@" OPENBLAS_VERBOSE=2 ./safecl --help 2>&1 || true)
  awk '/^Core: / { print $2; exit }' <<<"$out"
}
unset OPENBLAS_CORETYPE
detected=$(openblas_core)
second=Haswell
if [ "$detected" = Haswell ]; then second=Sandybridge; fi
status=0
# Fuzzing (docs/conventions.md 23) needs a clang build of its own (build-fuzz/): built meanwhile.
fuzz_log="$SAFECL_BUILD_DIR/fuzz_build.log"
nice -n 19 "$SAFECL_ROOT/tests/fuzz/run.sh" --build >"$fuzz_log" 2>&1 &
fuzz_build=$!
echo "run.sh: OpenBLAS kernel ${detected:-unknown} (detected): the suite"
ctest "${ctest_args[@]}" "${suite_args[@]}" -j 1 || status=1
ctest "${ctest_args[@]}" "${numeric_args[@]}" -j 2 || status=1
echo "run.sh: OpenBLAS kernel $(openblas_core OPENBLAS_CORETYPE=$second)" \
     "(OPENBLAS_CORETYPE=$second): the tests labelled numeric"
OPENBLAS_CORETYPE=$second OPENBLAS_VERBOSE=2 ctest "${ctest_args[@]}" "${numeric_args[@]}" -j 2 \
  || status=1
# Each parser's libFuzzer target for 20 s (SAFECL_FUZZ_SECONDS); a crash fails the run, its input
# in tests/fuzz/crashes/.
if ! wait "$fuzz_build"; then
  echo "run.sh: the fuzz build failed ($fuzz_log):" >&2
  tail -50 "$fuzz_log" >&2
  status=1
fi
"$SAFECL_ROOT/tests/fuzz/run.sh" --seconds "${SAFECL_FUZZ_SECONDS:-20}" || status=1
exit $status
