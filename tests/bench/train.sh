#!/usr/bin/env bash
# train.sh: safecl's PET training step against the PyTorch peer, in one go.
#
#   tests/bench/train.sh [--safecl PATH | --bench-binary PATH] [--arch A] [--pet P] [--batch B]
#                        [--iters N] [--threads T] [--repeat R]
#
# Runs `safecl bench train` and tests/bench/train_peer.py (PyTorch, torch.set_num_threads(T),
# OMP_WAIT_POLICY=PASSIVE) alternately R times on the same arch, PET and batch, prints every
# summary line, then for each side the median over runs of the mean img/s, the best single step,
# the two ratios, and both peak RSS figures. --bench-binary runs tests/train's bench_train_smoke
# (the same code, without the `safecl bench` dispatcher). The machine load is printed before and
# after: on a shared machine another process's burst slows whichever side it lands on, so compare
# runs made at low load; the best-step ratio is the least disturbed figure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"
ours_cmd=("${SAFECL:-$here/../../build/safecl}" bench train)
arch=vit_base_patch16_224 pet=adapter batch=16 iters=3 threads=2 repeat=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --safecl) ours_cmd=("$2" bench train); shift 2 ;;
    --bench-binary) ours_cmd=("$2" train); shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --pet) pet="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    *) echo "train.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x "${ours_cmd[0]}" ]] || { echo "train.sh: no binary at ${ours_cmd[0]}" >&2; exit 2; }

source "$here/alternate.sh"
run_ours() {
  "${ours_cmd[@]}" --arch "$arch" --pet "$pet" --batch "$batch" --iters "$iters" --threads "$threads"
}
run_peer() {
  "$python" "$here/train_peer.py" --arch "$arch" --pet "$pet" --batch "$batch" --iters "$iters" \
    --threads "$threads"
}
alternate "$repeat" "arch=$arch pet=$pet batch=$batch threads=$threads"
