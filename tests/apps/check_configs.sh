#!/usr/bin/env bash
# check_configs.sh: every shipped trial config parses through `safecl train --print-config`: each
# dataset x method pair with the first backbone file, and each backbone file with every dataset
# (the backbone files set only backbone.* keys, which no dataset or method file sets, so the full
# product would parse the same keys again: 576 runs instead of 208, 190 s instead of 71 s on 2
# cores); and an unknown key is refused by name.
set -uo pipefail
safecl="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail=0 n=0
backbones=("$root"/configs/backbones/*.cfg)
check() {
  n=$((n + 1))
  if ! out=$("$safecl" train --print-config "$@" 2>&1); then
    echo "FAIL: $*"; echo "$out"; fail=1
  fi
}
for d in "$root"/configs/datasets/*.cfg; do
  for m in "$root"/configs/methods/*.cfg; do check "$d" "$m" "${backbones[0]}"; done
  for b in "${backbones[@]:1}"; do check "$d" "$root/configs/methods/simplecil.cfg" "$b"; done
done
# The premise of the reduced product: a backbone file changes no key outside backbone.* (the
# printed config's `backbone = { ... };` group, dropped by without_backbone).
without_backbone() { awk '/^backbone = \{/ { skip = 1 } !skip { print } skip && /^\};/ { skip = 0 }'; }
base=$("$safecl" train --print-config "$root/configs/datasets/cifar100.cfg" \
       "$root/configs/methods/simplecil.cfg" 2>&1 | without_backbone)
for b in "${backbones[@]}"; do
  other=$(diff <(echo "$base") <("$safecl" train --print-config \
          "$root/configs/datasets/cifar100.cfg" "$root/configs/methods/simplecil.cfg" "$b" 2>&1 |
          without_backbone) | grep -E '^[<>]')
  [ -z "$other" ] || { echo "FAIL: $b changes keys outside backbone.*:"; echo "$other"; fail=1; }
done
echo "$n dataset x method and dataset x backbone combinations parsed"
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
