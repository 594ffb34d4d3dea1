#!/usr/bin/env bash
# scaling.sh: data-parallel scaling of the training step on one node: the same global
# batch trained by 1 rank x T threads and by T ranks x 1 thread (`safecl bench train` under
# mpiexec, the trial's own data-parallel step: sharded forward/backward, gathered features for
# the head and loss, one allreduce of the PET gradient). The two configurations alternate
# --repeat times so that a change of machine load hits both; prints every run and the ratio of
# the medians (target >= 0.95 of the one-rank throughput).
#
#   bash tests/bench/scaling.sh --safecl build/safecl [--arch vit_base_patch16_224]
#        [--pet adapter] [--batch 16] [--iters 5] [--cores 2] [--repeat 3]
set -euo pipefail
safecl=build/safecl arch=vit_base_patch16_224 pet=adapter batch=16 iters=5 cores=2 repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --safecl) safecl=$2 ;; --arch) arch=$2 ;; --pet) pet=$2 ;; --batch) batch=$2 ;;
    --iters) iters=$2 ;; --cores) cores=$2 ;; --repeat) repeat=$2 ;;
    *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=1
mpi="mpiexec --bind-to none"
one=() many=()
echo "# $(date -u +%FT%TZ) $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$repeat"); do
  a=$(OPENBLAS_NUM_THREADS=$cores $mpi -np 1 "$safecl" bench train --arch "$arch" --pet "$pet" \
      --batch "$batch" --iters "$iters" --threads "$cores" | grep '^bench=')
  echo "$a"
  b=$(OPENBLAS_NUM_THREADS=1 $mpi -np "$cores" "$safecl" bench train --arch "$arch" --pet "$pet" \
      --batch "$batch" --iters "$iters" --threads 1 | grep '^bench=')
  echo "$b"
  one+=("$(echo "$a" | sed -E 's/.* img_per_s=([0-9.]+).*/\1/')")
  many+=("$(echo "$b" | sed -E 's/.* img_per_s=([0-9.]+).*/\1/')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
m1=$(median "${one[@]}") m2=$(median "${many[@]}")
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "summary: 1 rank x $cores threads ${m1} img/s, $cores ranks x 1 thread ${m2} img/s, ratio $(awk -v a="$m2" -v b="$m1" 'BEGIN {printf "%.3f", a / b}') (medians of $repeat)"
