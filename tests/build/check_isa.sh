#!/usr/bin/env bash
# check_isa.sh BINARY SRC_NN_DIR: the promise of the portable build (README "Build",
# docs/conventions.md "Runtime dispatch"): BINARY holds no AVX-512 instruction outside the
# x86-64-v4 clones of the dispatched kernels, so it runs on any x86-64-v3 (AVX2 + FMA) CPU, and
# every kernel marked NN_KERNEL in SRC_NN_DIR has its x86-64-v4 clone. An AVX-512 instruction
# shows in the disassembly as a zmm register, an opmask register (%k0-%k7), one of xmm16-31 and
# ymm16-31 (which only EVEX encodes), an embedded broadcast, or an EVEX-only mnemonic.
# Prints what it finds and exits 1 on any violation.
set -uo pipefail
bin=$1 nn=$2
command -v objdump >/dev/null || { echo "objdump not found (binutils)"; exit 1; }
asm=$(objdump -d --no-show-raw-insn "$bin") || { echo "objdump failed on $bin"; exit 1; }
fail=0

evex='^(vpternlog|vperm[it]2|v?p?compress|v?p?expand|vrndscale|vgetexp|vgetmant|vscalef|vfixupimm|vrange|vreduce|vcvtu|vcvtt[a-z0-9]*2u|vpmov[a-z]*[dq][bwd]$|vpro[lr]|vpsraq|vpabsq|vp(max|min)[su]q|vpmullq|v?p?blendm|vbroadcast[if](32x|64x)|vextract[if](32x|64x)|vinsert[if](32x|64x)|vshuf[if](32x|64x)|k[a-z]+[bwdq]$)'
bad=$(printf '%s\n' "$asm" | awk -F'\t' -v evex="$evex" '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
  NF >= 2 && fn !~ /\.arch_x86_64_v4$/ {
    split($2, w, " ")
    if ($2 ~ /%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])|\{1to/ || w[1] ~ evex) n[fn]++
  }
  END { for (f in n) printf "  %s: %d AVX-512 instruction(s)\n", f, n[f] }' | sort)
if [ -n "$bad" ]; then
  echo "AVX-512 instructions outside the x86-64-v4 clones (is -march above x86-64-v3?):"
  echo "$bad"
  fail=1
fi

kernels=$(sed -nE 's/^NN_KERNEL (static )?[a-z0-9_]+ ([a-z0-9_]+)\(.*/\2/p' "$nn"/*.c | sort -u)
[ -n "$kernels" ] || { echo "no NN_KERNEL function found in $nn"; exit 1; }
clones=$(grep -oE '<[A-Za-z0-9_]+\.arch_x86_64_v4>:' <<<"$asm" | sed -E 's/^<|\.arch.*//g')
for k in $kernels; do
  grep -qx "$k" <<<"$clones" || { echo "kernel $k has no x86-64-v4 clone in $bin"; fail=1; }
done

[ "$fail" = 0 ] && echo "isa: no AVX-512 outside $(echo "$kernels" | wc -l) dispatched kernels' clones"
exit "$fail"
