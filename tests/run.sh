#!/usr/bin/env bash
# run.sh: set up this machine, build safecl with warnings as errors, and run the test suite.
#
#   tests/run.sh              default suite (everything not labelled slow)
#   tests/run.sh --all        include slow tests
#   tests/run.sh --sanitize   ASan/UBSan build in build-asan/, same suite
# Exits non-zero if setup, the build or any test fails.
set -euo pipefail
export SAFECL_WITH_TESTS=1
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/setup.sh"
cd "$SAFECL_ROOT"

ctest_args=(--output-on-failure -LE slow)
for arg in "$@"; do
  case "$arg" in
    --all) ctest_args=(--output-on-failure) ;;
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
ctest "${ctest_args[@]}" -j 1
# Fuzzing (docs/conventions.md 23): each parser's libFuzzer target for 20 s (SAFECL_FUZZ_SECONDS)
# in a clang build of its own (build-fuzz/); a crash fails the run, its input in tests/fuzz/crashes/.
"$SAFECL_ROOT/tests/fuzz/run.sh" --seconds "${SAFECL_FUZZ_SECONDS:-20}"
