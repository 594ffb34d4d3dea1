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

field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "load before: $(uptime)"
ours_ips=() peer_ips=() ours_best=() peer_best=() ours_rss=() peer_rss=()
for ((r = 1; r <= repeat; r++)); do
  ours=$("${ours_cmd[@]}" --arch "$arch" --pet "$pet" --batch "$batch" --iters "$iters" \
         --threads "$threads")
  echo "ours: $ours"
  peer=$(OMP_WAIT_POLICY=PASSIVE "$python" "$here/train_peer.py" --arch "$arch" --pet "$pet" \
         --batch "$batch" --iters "$iters" --threads "$threads")
  echo "peer: $peer"
  ours_ips+=("$(field img_per_s "$ours")") ours_rss+=("$(field peak_rss_mb "$ours")")
  peer_ips+=("$(field img_per_s "$peer")") peer_rss+=("$(field peak_rss_mb "$peer")")
  ours_best+=("$(field best_img_per_s "$ours")") peer_best+=("$(field best_img_per_s "$peer")")
done
echo "load after:  $(uptime)"
o=$(printf '%s\n' "${ours_ips[@]}" | median) p=$(printf '%s\n' "${peer_ips[@]}" | median)
ob=$(printf '%s\n' "${ours_best[@]}" | sort -g | tail -1)
pb=$(printf '%s\n' "${peer_best[@]}" | sort -g | tail -1)
orss=$(printf '%s\n' "${ours_rss[@]}" | sort -g | tail -1)
prss=$(printf '%s\n' "${peer_rss[@]}" | sort -g | tail -1)
awk -v o="$o" -v p="$p" -v ob="$ob" -v pb="$pb" -v orss="$orss" -v prss="$prss" -v a="$arch" \
    -v e="$pet" -v b="$batch" -v t="$threads" -v r="$repeat" 'BEGIN {
  printf "summary arch=%s pet=%s batch=%s threads=%s repeats=%s ours_img_per_s=%.3f " \
         "peer_img_per_s=%.3f ratio=%.3f ours_best_img_per_s=%.3f peer_best_img_per_s=%.3f " \
         "best_ratio=%.3f ours_peak_rss_mb=%.1f peer_peak_rss_mb=%.1f\n", a, e, b, t, r, o, p, \
         o / p, ob, pb, ob / pb, orss, prss
}'
