#!/usr/bin/env bash
# test_run_build_dir.sh SOURCE_DIR: tests/run.sh builds in its own directory. A copy of
# tests/run.sh and jobs/setup.sh in a temporary tree, with setup.sh's package and build steps
# replaced by one that prints the build directory and exits, shows where the suite would build:
# build-tests/ by default (never the quickstart's build/), build-asan/ with --sanitize, and
# $SAFECL_BUILD_DIR when the caller sets it. Exits non-zero on any failure.
set -u
src=$1
tmp=$(mktemp -d /tmp/safecl_rundir.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tests" "$tmp/jobs"
cp "$src/tests/run.sh" "$tmp/tests/run.sh"
cp "$src/jobs/setup.sh" "$tmp/jobs/setup.sh"
cat >>"$tmp/jobs/setup.sh" <<'STUB'
safecl_install_packages() { :; }
safecl_build() { echo "build dir: $SAFECL_BUILD_DIR"; exit 0; }
STUB
fail=0
expect() {
  local what=$1 want=$2
  shift 2
  local out
  out=$("$@" 2>&1)
  if [ "$out" = "build dir: $want" ]; then echo "ok   $what"; else
    echo "FAIL $what: expected 'build dir: $want', got: $out"; fail=1; fi
}
expect "tests/run.sh builds in build-tests/" "$tmp/build-tests" \
  env -u SAFECL_BUILD_DIR bash "$tmp/tests/run.sh"
expect "tests/run.sh --sanitize builds in build-asan/" "$tmp/build-asan" \
  env -u SAFECL_BUILD_DIR bash "$tmp/tests/run.sh" --sanitize
expect "SAFECL_BUILD_DIR chooses another" "$tmp/mine" \
  env SAFECL_BUILD_DIR="$tmp/mine" bash "$tmp/tests/run.sh"
exit "$fail"
