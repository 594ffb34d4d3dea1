# env.sh: the one environment file every safecl job sources (docs/conventions.md 22).
# Cluster settings come from jobs/submit.sh (its options or a cluster file), never from edits
# here: SAFECL_MODULES ("a b": `module load a b`) and SAFECL_SETUP (a script sourced as is:
# conda, paths, site settings) are applied first, in that order.
if [ -n "${SAFECL_MODULES:-}" ]; then
  type module >/dev/null 2>&1 \
    || { echo "env.sh: SAFECL_MODULES='$SAFECL_MODULES' but this shell has no 'module' command" >&2
         return 1; }
  # shellcheck disable=SC2086
  module load $SAFECL_MODULES
fi
if [ -n "${SAFECL_SETUP:-}" ]; then
  [ -r "$SAFECL_SETUP" ] || { echo "env.sh: cannot read SAFECL_SETUP=$SAFECL_SETUP" >&2; return 1; }
  case $- in *u*) nounset=1 ;; *) nounset=0 ;; esac
  set +u # site scripts often read unset variables
  # shellcheck disable=SC1090
  source "$SAFECL_SETUP"
  [ "$nounset" = 1 ] && set -u
  unset nounset
fi
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
# The safecl binary the job scripts run (override to use another build). This file is read from
# the checkout (SAFECL_ROOT), never from SLURM's copy of a batch script, so its own location
# names the checkout: its build/safecl, or in an installed tree (`cmake --install --prefix P`:
# this file in P/share/safecl/jobs, no CMakeLists.txt beside it) P/bin/safecl.
export SAFECL_ROOT="${SAFECL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
if [ -z "${SAFECL_BIN:-}" ] && [ -z "${SAFECL_BUILD_DIR:-}" ] &&
  [ ! -f "$SAFECL_ROOT/CMakeLists.txt" ] && [ -x "$SAFECL_ROOT/../../bin/safecl" ]; then
  SAFECL_BIN="$(cd "$SAFECL_ROOT/../../bin" && pwd)/safecl"
fi
export SAFECL_BIN="${SAFECL_BIN:-${SAFECL_BUILD_DIR:-$SAFECL_ROOT/build}/safecl}"
