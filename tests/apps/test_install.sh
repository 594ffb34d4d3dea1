#!/usr/bin/env bash
# test_install.sh BUILD_DIR SOURCE_DIR [PYTHON]: `cmake --install BUILD_DIR --prefix P` into a temporary
# prefix, then the installed binary from an unrelated directory: --help, `plan` on the installed
# configs, and `report` showing the installed analysis/published.csv (an edited copy, so the
# test tells it from the source tree's). Exits non-zero on any failure.
set -u
build=$1 src=$2 python=${3:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/safecl_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
cmake --install "$build" --prefix "$tmp/p" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
P=$tmp/p
check "safecl in P/bin" '[ -x "$P/bin/safecl" ]'
check "published.csv in P/share/safecl/analysis" '[ -f "$P/share/safecl/analysis/published.csv" ]'
check "configs in P/share/safecl/configs" '[ -f "$P/share/safecl/configs/datasets/synthetic.cfg" ]'
mkdir -p "$tmp/elsewhere" && cd "$tmp/elsewhere" || exit 1
out=$(env -u SAFECL_PUBLISHED "$P/bin/safecl" --help 2>&1)
check "P/bin/safecl --help from another directory" 'echo "$out" | grep -q "report"'
c=$P/share/safecl/configs
out=$("$P/bin/safecl" plan "$c/datasets/synthetic.cfg" "$c/methods/simplecil.cfg" \
      "$c/backbones/vit_tiny_random.cfg" --gflops 10 2>&1)
check "P/bin/safecl plan on the installed configs" 'echo "$out" | grep -q "^total: "'
# the installed copy, edited: RanPAC's CIFAR-100 final 92.2 becomes 92.25
sed -i 's/,RanPAC,representation,cifar100,final_acc,92.2,/,RanPAC,representation,cifar100,final_acc,92.25,/' \
  "$P/share/safecl/analysis/published.csv"
PYTHONPATH=$src/tests/report "$python" -c "
import report_fixtures
report_fixtures.write_trial('$tmp/run/trials/r1', 'cifar100', 'ranpac', 'representation', 1,
                            [('ranpac', 90.0, 93.0, 1.0)])" || fail=1
out=$(env -u SAFECL_PUBLISHED "$P/bin/safecl" report "$tmp/run" 2>&1)
check "P/bin/safecl report shows the installed published.csv" \
  'echo "$out" | grep -q "| RanPAC (reported \[[0-9]*\]) | 92.25 |"'
[ "$fail" = 0 ] || echo "$out"
exit "$fail"
