#!/usr/bin/env bash
# check_configs.sh: every shipped trial config parses: each dataset x method x backbone
# combination through `safecl train --print-config`; and an unknown key is refused by name.
set -uo pipefail
safecl="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail=0 n=0
for d in "$root"/configs/datasets/*.cfg; do
  for m in "$root"/configs/methods/*.cfg; do
    for b in "$root"/configs/backbones/*.cfg; do
      n=$((n + 1))
      if ! out=$("$safecl" train --print-config "$d" "$m" "$b" 2>&1); then
        echo "FAIL: $d $m $b"; echo "$out"; fail=1
      fi
    done
  done
done
echo "$n dataset x method x backbone combinations parsed"
out=$("$safecl" train --print-config "$root/configs/datasets/cifar100.cfg" dataset.bogus=1 2>&1) \
  && { echo "FAIL: an unknown key was accepted"; fail=1; }
echo "$out" | grep -q "unknown key 'dataset.bogus'" || { echo "FAIL: unknown key message: $out"; fail=1; }
# safecl plan prices a trial from the same configs (rates measured here, so only the shape of the
# output is checked: one row per session and a total).
out=$("$safecl" plan "$root/configs/datasets/synthetic.cfg" "$root/configs/methods/ranpac_nophase1.cfg" \
      "$root/configs/backbones/vit_tiny_random.cfg" method.rp.dim=256 2>&1) || { echo "FAIL: plan: $out"; fail=1; }
rows=$(echo "$out" | grep -cE '^ +[0-9]+ +80 +')
[ "$rows" = 4 ] || { echo "FAIL: plan printed $rows session rows, expected 4:"; echo "$out"; fail=1; }
echo "$out" | grep -q '^total: ' || { echo "FAIL: plan has no total line"; fail=1; }
echo "$out" | tail -1
[ "$fail" = 0 ] && echo "check_configs: all checks passed"
exit "$fail"
