#!/usr/bin/env bash
# on_haswell.sh PROGRAM...: runs each test program under QEMU's user-mode emulation of an Intel
# Haswell (AVX2 + FMA, no AVX-512), where the x86-64-v3 clones of the dispatched kernels
# (docs/conventions.md "Runtime dispatch") are the ones picked: each program must pass there as
# it does on the build machine, with the same tolerances, and a baseline instruction above
# x86-64-v3 stops it with SIGILL. Exits 77 (skipped) when qemu-x86_64 (Debian: qemu-user) is
# not installed.
set -uo pipefail
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not installed: skipped"; exit 77; }
for p in "$@"; do
  out=$(qemu-x86_64 -cpu Haswell "$p" 2>&1)
  rc=$?
  if [ "$rc" != 0 ]; then
    printf '%s\n' "$out" | grep -v '^qemu-x86_64: warning' | tail -20
    echo "FAIL: $p exited with status $rc on an emulated Haswell"
    exit 1
  fi
  echo "ok: $p on an emulated Haswell"
done
