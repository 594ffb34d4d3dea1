#!/usr/bin/env bash
# forward.sh: safecl's frozen ViT forward against the PyTorch peer, in one go.
#
#   tests/bench/forward.sh [--safecl PATH] [--arch A] [--batch B] [--iters N] [--threads T]
#                          [--repeat R] [--full-last-block]
#
# Runs `safecl bench forward` and tests/bench/forward_peer.py (PyTorch, torch.set_num_threads(T),
# OMP_WAIT_POLICY=PASSIVE) alternately R times on the same arch and batch, prints every summary
# line, then for each side the median over runs of the mean img/s, the best single forward, the
# two ratios, and both peak RSS figures. The machine load is printed before and after: on a
# shared machine another process's burst slows whichever side it lands on, so compare runs made
# at low load; the best-forward ratio is the least disturbed figure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
safecl="${SAFECL:-$here/../../build/safecl}"
python="${PYTHON:-/usr/bin/python3}"
arch=vit_base_patch16_224 batch=8 iters=10 threads=2 repeat=3 full=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --safecl) safecl="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --full-last-block) full=(--full-last-block); shift ;;
    *) echo "forward.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x "$safecl" ]] || { echo "forward.sh: no safecl binary at $safecl (use --safecl)" >&2; exit 2; }

source "$here/alternate.sh"
run_ours() {
  "$safecl" bench forward --arch "$arch" --batch "$batch" --iters "$iters" --threads "$threads" \
    "${full[@]}"
}
run_peer() {
  "$python" "$here/forward_peer.py" --arch "$arch" --batch "$batch" --iters "$iters" \
    --threads "$threads"
}
alternate "$repeat" "arch=$arch batch=$batch threads=$threads"
