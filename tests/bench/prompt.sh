#!/usr/bin/env bash
# prompt.sh: a prompt method's training step in safecl against the PyTorch peer, in one go.
#
#   tests/bench/prompt.sh [--safecl PATH] [--method l2p|dualprompt|coda_prompt] [--arch A]
#                         [--batch B] [--iters N] [--threads T] [--repeat R]
#
# Runs `safecl bench train --method M` (with configs/methods/M.cfg when the checkout has it, the
# batch set by --batch) and tests/bench/prompt_peer.py (PyTorch, torch.set_num_threads(T),
# OMP_WAIT_POLICY=PASSIVE) alternately R times on the same arch and batch, prints every summary
# line, then for each side the median over runs of the mean img/s, the best single step, the two
# ratios, and both peak RSS figures (alternate.sh). The machine load is printed before and after:
# on a shared machine compare runs made at low load; the best-step ratio is the least disturbed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"
safecl="${SAFECL:-$here/../../build/safecl}"
method=l2p arch=vit_base_patch16_224 batch=16 iters=3 threads=2 repeat=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --safecl) safecl="$2"; shift 2 ;;
    --method) method="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    *) echo "prompt.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x "$safecl" ]] || { echo "prompt.sh: no binary at $safecl" >&2; exit 2; }
config=()
cfg="$here/../../configs/methods/$method.cfg"
[[ -r "$cfg" ]] && config=(--config "$cfg")

# OpenBLAS 0.3.21 takes a CPU it does not know for Haswell (AVX2 kernels) unless
# OPENBLAS_CORETYPE names one; both sides load the same OpenBLAS and see the same environment.
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $(lscpu | sed -n 's/^Model name: *//p')"
source "$here/alternate.sh"
run_ours() {
  "$safecl" bench train --arch "$arch" --method "$method" "${config[@]}" --batch "$batch" \
    --iters "$iters" --threads "$threads"
}
run_peer() {
  "$python" "$here/prompt_peer.py" --method "$method" --arch "$arch" --batch "$batch" \
    --iters "$iters" --threads "$threads"
}
alternate "$repeat" "arch=$arch method=$method batch=$batch threads=$threads"
