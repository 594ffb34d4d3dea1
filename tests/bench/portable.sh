#!/usr/bin/env bash
# portable.sh: the portable build (x86-64-v3 baseline, AVX-512 clones of src/nn's kernels)
# against a -DSAFECL_NATIVE=ON build of the same commit, on `safecl bench forward` and
# `safecl bench train` (adapter, SSF) with ViT-B/16 on one thread.
#   bash tests/bench/portable.sh --native build-native/safecl --portable build/safecl [--repeat R]
# Runs native then portable, R times (default 5), each benchmark in turn, and prints every run
# with its load and the process's CPU time (user + system, which other processes on the
# machine disturb far less than wall time), then per benchmark the medians and ranges of both
# and the ratios portable / native of the median img/s and of the median CPU time.
set -euo pipefail
native="" portable="" repeat=5
while [ $# -gt 0 ]; do
  case "$1" in
    --native) native="$2"; shift 2 ;;
    --portable) portable="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    *) echo "usage: $0 --native BIN --portable BIN [--repeat R]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$native" ] || [ ! -x "$portable" ]; then
  echo "$0: --native and --portable binaries needed" >&2
  exit 2
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
benches=("bench forward --arch vit_base_patch16_224 --batch 4 --iters 3 --warmup 1 --threads 1"
         "bench train --arch vit_base_patch16_224 --pet adapter --batch 2 --iters 3 --warmup 1 --threads 1"
         "bench train --arch vit_base_patch16_224 --pet ssf --batch 2 --iters 3 --warmup 1 --threads 1")
log=$(mktemp)
trap 'rm -f "$log" "$log.t"' EXIT
echo "load before: $(uptime)"
for ((r = 1; r <= repeat; r++)); do
  for side in native portable; do
    bin=${!side}
    for b in "${!benches[@]}"; do
      # shellcheck disable=SC2086
      line=$(/usr/bin/time -o "$log.t" -f "%U %S" "$bin" ${benches[$b]} | grep '^bench=')
      cpu=$(awk '{printf "%.2f", $1 + $2}' "$log.t")
      echo "run=$r side=$side bench=$b load=$(cut -d' ' -f1 /proc/loadavg) cpu_s=$cpu $line" |
        tee -a "$log"
    done
  done
done
echo "load after:  $(uptime)"
for b in "${!benches[@]}"; do
  echo "summary: ${benches[$b]}"
  awk -v b="$b" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $3 == "bench=" b {
      s = $2; sub("side=", "", s); c = $5; sub("cpu_s=", "", c)
      match($0, / img_per_s=[0-9.]+/); v = substr($0, RSTART + 11, RLENGTH - 11)
      n[s]++; ips[s, n[s]] = v; cpu[s, n[s]] = c
    }
    END {
      for (si = 1; si <= 2; si++) {
        s = si == 1 ? "native" : "portable"
        for (i = 1; i <= n[s]; i++) { x[i] = ips[s, i]; y[i] = cpu[s, i] }
        mi[s] = med(x, n[s]); mc[s] = med(y, n[s])
        printf "  %-8s img_per_s median %.3f (%.3f-%.3f)  cpu_s median %.2f (%.2f-%.2f)\n", s, mi[s], x[1], x[n[s]], mc[s], y[1], y[n[s]]
      }
      printf "  portable/native: img_per_s %.3f, cpu_s %.3f\n", mi["portable"] / mi["native"], mc["portable"] / mc["native"]
    }' "$log"
done
