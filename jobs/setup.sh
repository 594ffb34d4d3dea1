#!/usr/bin/env bash
# setup.sh: make this machine able to build and run safecl, then build it.
#
# Sourced by jobs/quickstart.sh and tests/run.sh (and usable alone: `bash jobs/setup.sh`).
# Checks the Debian packages safecl needs; as root with apt it installs the missing ones,
# otherwise it prints the exact list and how to get them on a cluster. Then configures and
# builds with CMake into $SAFECL_BUILD_DIR (default: build/ in the checkout). Idempotent: a
# second run with everything present only re-runs the (incremental) build.
#
# Environment: SAFECL_BUILD_DIR, SAFECL_CMAKE_ARGS (extra -D options), SAFECL_WITH_TESTS=1 to
# also require the test-only packages (PyTorch, PIL, NumPy, h5py as the reference peers; clang
# and its libFuzzer runtime for tests/fuzz/run.sh; QEMU user mode for the emulated-Haswell test).
set -euo pipefail

SAFECL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAFECL_BUILD_DIR="${SAFECL_BUILD_DIR:-$SAFECL_ROOT/build}"

safecl_build_packages=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
  libopenblas-dev libscalapack-openmpi-dev libhdf5-openmpi-dev hdf5-tools libconfig-dev
  libjpeg62-turbo-dev libpng-dev libcjson-dev libxxhash-dev)
safecl_test_packages=(python3 python3-torch python3-torchvision python3-pil python3-numpy
  python3-h5py clang libclang-rt-dev qemu-user)

safecl_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || echo "$p"
  done
}

safecl_install_packages() {
  local wanted=("${safecl_build_packages[@]}")
  if [ "${SAFECL_WITH_TESTS:-0}" = 1 ]; then wanted+=("${safecl_test_packages[@]}"); fi
  if ! command -v dpkg-query >/dev/null; then
    echo "setup: not a Debian system; make sure these (or equivalents) are available:" >&2
    echo "  ${wanted[*]}" >&2
    return 0
  fi
  local missing
  missing=$(safecl_missing_packages "${wanted[@]}" | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be stale or absent on a fresh machine.
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    cat >&2 <<MSG
setup: these Debian packages are missing: $missing
  As root:  apt-get install --no-install-recommends $missing
  On a cluster without root: ask your admins for them, or load the equivalent modules
  (Open MPI, OpenBLAS, ScaLAPACK, parallel HDF5, libconfig, libjpeg-turbo, libpng, cJSON,
  xxHash) and point CMake at them with PKG_CONFIG_PATH.
MSG
    return 1
  fi
}

safecl_build() {
  local args=(-DCMAKE_BUILD_TYPE=Release)
  # shellcheck disable=SC2206
  [ -n "${SAFECL_CMAKE_ARGS:-}" ] && args+=(${SAFECL_CMAKE_ARGS})
  cmake -S "$SAFECL_ROOT" -B "$SAFECL_BUILD_DIR" "${args[@]}" >"$SAFECL_BUILD_DIR.cmake.log" 2>&1 \
    || { cat "$SAFECL_BUILD_DIR.cmake.log" >&2; return 1; }
  cmake --build "$SAFECL_BUILD_DIR" -j "$(nproc)"
}

# Run when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  safecl_install_packages
  safecl_build
fi
