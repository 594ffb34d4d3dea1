# env.sh: the one environment file every safecl job sources (STYLE.md 22).
# Threads per rank = cores given to the rank; one threading runtime (OpenBLAS's own threads),
# and any OpenMP runtime that gets loaded waits passively instead of spinning on our cores.
threads="${SLURM_CPUS_PER_TASK:-${SAFECL_THREADS:-$(nproc)}}"
export OPENBLAS_NUM_THREADS="$threads"
export SAFECL_THREADS="$threads"
export OMP_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
unset threads
