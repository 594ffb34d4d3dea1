#!/usr/bin/env bash
# on_haswell.sh PROGRAM...: runs each test program under QEMU's user-mode emulation of an Intel
# Haswell (AVX2 + FMA, no AVX-512), where the x86-64-v3 clones of the dispatched kernels
# (docs/conventions.md "Runtime dispatch") are the ones picked: each program must pass there as
# it does on the build machine, with the same tolerances, and a baseline instruction above
# x86-64-v3 stops it with SIGILL. Exits 77 (skipped) when qemu-x86_64 (Debian: qemu-user) is
# not installed, or when its TCG cannot emulate one of x86-64-v3's features (QEMU before 7.2 has
# no AVX2): it warns "TCG doesn't support requested feature" for each, and a run there would say
# nothing of the build. The emulation does not depend on the host CPU.
set -uo pipefail
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not installed: skipped"; exit 77; }
probe=$(qemu-x86_64 -cpu Haswell /bin/true 2>&1) \
  || { echo "qemu-x86_64 -cpu Haswell cannot run /bin/true: skipped"; echo "$probe"; exit 77; }
missing=$(grep -oE "requested feature: [^ ]*\.(avx|avx2|fma|f16c|bmi1|bmi2|movbe|abm|lzcnt|xsave) " \
          <<<"$probe" | sed -E 's/.*\.//; s/ $//' | paste -sd ' ')
if [ -n "$missing" ]; then
  echo "$(qemu-x86_64 --version | head -1) cannot emulate x86-64-v3 (no $missing): skipped"
  exit 77
fi
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
