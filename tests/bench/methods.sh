#!/usr/bin/env bash
# methods.sh: EASE's, SLCA's and LAE's training steps in safecl against their PyTorch peers.
#
#   tests/bench/methods.sh [--safecl PATH] [--method ease|slca|lae|all] [--arch A] [--batch B]
#                          [--iters N] [--threads T] [--repeat R] [key=value ...]
#
# For each method (all three by default) runs `safecl bench train --method M` (with
# configs/methods/M.cfg when the checkout has it, then the key=value arguments, the batch set by
# --batch) and tests/bench/methods_peer.py (PyTorch, torch.set_num_threads(T),
# OPENBLAS_NUM_THREADS=T, OMP_WAIT_POLICY=PASSIVE) alternately R times on the same arch and
# batch, and prints every summary line, then per method the median over runs of the mean img/s,
# the best single step, the ratios and both peak RSS figures (alternate.sh), and last one
# Markdown table line per method.
# LAE is benchmarked with method.lae.freeze_first = false and method.lae.ema_init = "pilot": the
# measured session-1 step is then the full step, prefix and head trained and the offline expert
# updated, which is the peer's step (with the authors' defaults session 1 has no EMA update).
# The machine load is printed before and after: on a shared machine compare runs made at low
# load; the best-step and CPU-time ratios are the least disturbed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"
safecl="${SAFECL:-$here/../../build/safecl}"
methods=(ease slca lae) arch=vit_base_patch16_224 batch=16 iters=3 threads=2 repeat=3
overrides=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --safecl) safecl="$2"; shift 2 ;;
    --method) [[ "$2" == all ]] && methods=(ease slca lae) || methods=("$2"); shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "methods.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x "$safecl" ]] || { echo "methods.sh: no binary at $safecl" >&2; exit 2; }
for m in "${methods[@]}"; do
  case "$m" in ease | slca | lae) ;; *) echo "methods.sh: unknown method '$m'" >&2; exit 2 ;; esac
done

# OpenBLAS 0.3.21 takes a CPU it does not know for Haswell (AVX2 kernels) unless
# OPENBLAS_CORETYPE names one; both sides load the same OpenBLAS and see the same environment.
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $(lscpu | sed -n 's/^Model name: *//p')"
source "$here/alternate.sh"
run_ours() {
  local config=() extra=()
  local cfg="$here/../../configs/methods/$method.cfg"
  [[ -r "$cfg" ]] && config=(--config "$cfg")
  [[ "$method" == lae ]] && extra=(method.lae.freeze_first=false method.lae.ema_init=pilot)
  "$safecl" bench train --arch "$arch" --method "$method" "${config[@]}" --batch "$batch" \
    --iters "$iters" --threads "$threads" "${extra[@]}" "${overrides[@]}"
}
run_peer() {
  # Debian's PyTorch runs its GEMMs in OpenBLAS, whose thread count torch.set_num_threads does
  # not set: the variable does (read when the library loads).
  OPENBLAS_NUM_THREADS="$threads" "$python" "$here/methods_peer.py" --method "$method" \
    --arch "$arch" --batch "$batch" --iters "$iters" --threads "$threads"
}
summaries=()
for method in "${methods[@]}"; do
  out=$(alternate "$repeat" "arch=$arch method=$method batch=$batch threads=$threads")
  echo "$out"
  summaries+=("$(grep '^summary ' <<<"$out")")
done
echo "| method | safecl img/s | PyTorch img/s | ratio median / best | CPU-time ratio | safecl RSS | PyTorch RSS | RSS ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for s in "${summaries[@]}"; do
  awk -v m="$(field method "$s")" -v o="$(field ours_img_per_s "$s")" \
      -v p="$(field peer_img_per_s "$s")" -v r="$(field ratio "$s")" \
      -v b="$(field best_ratio "$s")" -v c="$(field cpu_ratio "$s")" \
      -v orss="$(field ours_peak_rss_mb "$s")" -v prss="$(field peer_peak_rss_mb "$s")" 'BEGIN {
    printf "| %s | %s | %s | %.2f / %.2f | %s | %.0f | %.0f | %.2f |\n", m, o, p, r, b,
           c == "" ? "n/a" : sprintf("%.2f", c), orss, prss, orss / prss
  }'
done
