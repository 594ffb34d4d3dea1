# env.sh: the one environment file every safecl job sources (docs/conventions.md 22).
# Threads per rank = cores given to the rank; one threading runtime (OpenBLAS's own threads),
# and any OpenMP runtime that gets loaded waits passively instead of spinning on our cores.
threads="${SLURM_CPUS_PER_TASK:-${SAFECL_THREADS:-$(nproc)}}"
export OPENBLAS_NUM_THREADS="$threads"
export SAFECL_THREADS="$threads"
export OMP_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
unset threads
# Open MPI: a rank waiting in a blocking receive yields its core. The sweep's coordinator spends
# its life waiting for messages; on a node with more ranks than cores a spinning rank would
# starve the workers.
export OMPI_MCA_mpi_yield_when_idle=1
# The safecl binary the job scripts run (override to use another build).
export SAFECL_BIN="${SAFECL_BIN:-${SAFECL_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}/safecl}"
