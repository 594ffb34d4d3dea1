#!/usr/bin/env bash
# test_slurm.sh: the job scripts on a real one-node SLURM cluster started here from Debian's
# slurm-wlm and munge (installed if missing; needs root). Slow: labelled `slow` in ctest.
#
#   tests/slurm/test_slurm.sh [path/to/safecl]
#
# 1. jobs/sweep.sbatch on a small sweep (a coordinator and one group) whose seed-1 trial waits
#    for a signal before it starts (SAFECL_FAULT_TRIAL_SIGNAL=hold:seed=1, src/orch/worker.c),
#    so that it is certainly still running then on a machine of any speed: once it has started,
#    `scancel --signal=USR1 --batch` reaches the batch script, which forwards it to the ranks;
#    the trial checkpoints, safecl exits 75, the job requeues itself (Restarts=1), resumes from
#    the checkpoint (a trial with one is not held) and completes; the numbers equal an
#    uninterrupted local run.
#    jobs/report.sbatch, submitted with --dependency=afterok on it, runs after the requeue.
# 2. jobs/submit.sh sized from the plan: one MPI job (a coordinator and one group) and, with
#    --array, the plan recorded and one `safecl train` per array task; each followed by its report
#    job (afterany); status follows the array job from the recorded plan and the trial files.
# The report step calls `safecl report`; while that command does not exist yet the report jobs
# are expected to fail after rebuilding index.h5, and the test says so.
# The cluster lives in a temporary directory with its own ports; daemons this script started
# are stopped, and jobs cancelled, on every exit path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SAFECL_BIN="$(realpath "${1:-$root/build/safecl}")"
# the job scripts find jobs/env.sh through SAFECL_ROOT (else the submit directory: ctest runs
# this from the build tree)
export SAFECL_ROOT="$root"
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
[ "$(id -u)" = 0 ] || { echo "test_slurm: needs root (it starts slurmctld, slurmd, munged)"; exit 77; }

source "$root/tests/slurm/cluster.sh"
have_report=0
"$SAFECL_BIN" report --help >/dev/null 2>&1 && have_report=1

# ---- 1. sweep.sbatch: USR1, checkpoint, requeue, resume -------------------------------------
sweep=$tmp/long.cfg
cat >"$sweep" <<CFG
sweep = {
  name = "slurm";
  base = ["$root/configs/backbones/vit_tiny_random.cfg"];
  datasets = ["$root/configs/datasets/synthetic.cfg"];
  methods = ["$root/configs/methods/simplecil.cfg"];
  seeds = [1, 2];
  overrides = ["dataset.synthetic.classes=6", "dataset.synthetic.train_per_class=3",
               "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
               "eval.batch=8", "threads=1"];
};
CFG
run=$tmp/run
export SAFECL_PROGRESS_INTERVAL=0 SAFECL_THREADS=1
jid=$(SAFECL_FAULT_TRIAL_SIGNAL=hold:seed=1 sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=10 --chdir="$root" \
        --output="$tmp/sweep-%j.out" "$root/jobs/sweep.sbatch" "$sweep" "run.dir=$run")
rid=$(sbatch --parsable --dependency="afterok:$jid" --chdir="$root" \
        --output="$tmp/report-%j.out" "$root/jobs/report.sbatch" "$run")
ledger=$run/ledger.$jid.log
for _ in $(seq 240); do grep -q " START " "$ledger" 2>/dev/null && break; sleep 0.5; done
if grep -q " START " "$ledger" 2>/dev/null; then
  scancel --signal=USR1 --batch "$jid"
  ok "job $jid holding its first trial: USR1 sent to its batch script"
else
  fail "job $jid never started a trial"; cat "$tmp"/sweep-*.out 2>/dev/null | tail -20
fi
wait_job "$jid" 300 || fail "sweep job $jid did not end"
out=$(cat "$tmp/sweep-$jid.out" 2>/dev/null || true)
echo "$out" | grep -E "stopping|requeue|resuming|complete|exit" | sed 's/^/     /' | head -20
[ "$(job_field "$jid" JobState)" = COMPLETED ] && ok "sweep job completed" \
  || fail "sweep job state $(job_field "$jid" JobState)"
[ "$(job_field "$jid" Restarts)" = 1 ] && ok "it requeued itself once (Restarts=1)" \
  || fail "Restarts=$(job_field "$jid" Restarts)"
grep -q " STOPPED " "$ledger" && grep -q "END .* stopped$" "$ledger" \
  && ok "the ledger shows the trial checkpointed and stopped" || fail "no STOPPED/END stopped"
grep -Eq "^[0-9a-f]{8} JOB [^ ]+ - 1 1 0 1 " "$ledger" \
  && ok "the requeued run is restart 1 (SLURM_RESTART_COUNT)" || fail "no JOB record of restart 1"
echo "$out" | grep -q "resuming" && ok "a trial resumed from its checkpoint" || fail "no resume"
tail -1 "$ledger" | grep -q "END .* complete$" && ok "the sweep completed" || fail "not complete"

ref=$tmp/ref
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 \
  mpiexec -np 2 --oversubscribe "$SAFECL_BIN" sweep "$sweep" "run.dir=$ref" >"$tmp/ref.log" 2>&1 \
  || fail "reference run"
PYTHONPATH="$root/tests/orch" /usr/bin/python3 - "$run" "$ref" <<'PY' && ok "identical numbers to an uninterrupted run" || fail "numbers differ from an uninterrupted run"
import sys
from orch_util import finished_trials, same_numbers, trial_numbers
run, ref = sys.argv[1:]
a, b = finished_trials(run), finished_trials(ref)
sys.exit(0 if a == b and len(a) == 2 and
         all(same_numbers(trial_numbers(run, t), trial_numbers(ref, t)) for t in a) else 1)
PY

wait_job "$rid" 120 || fail "report job $rid did not end"
[ -f "$run/index.h5" ] && ok "report job rebuilt index.h5 after the requeued sweep" \
  || fail "no index.h5"
if [ "$have_report" = 1 ]; then
  [ "$(job_field "$rid" JobState)" = COMPLETED ] && [ -s "$run/report.md" ] \
    && ok "report job (afterok) completed: $(wc -l <"$run/report.md") lines in report.md" \
    || fail "report job state $(job_field "$rid" JobState)"
else
  echo "note: safecl report does not exist yet; the report job ($(job_field "$rid" JobState)) "\
       "stops after the index"
fi

# ---- 2. submit.sh: one MPI job and its report; an array and its report -----------------------
# This node has 2 cores: one group (2 ranks) fits, the array runs 2 tasks at a time.
run2=$tmp/run_mpi run3=$tmp/run_array
ids=$("$root/jobs/submit.sh" "$root/tests/orch/sweeps/tiny.cfg" "$run2" --groups 1 \
        -- --output="$tmp/mpi-%j.out")
read -r sid2 rid2 <<<"$ids"
ids=$("$root/jobs/submit.sh" "$root/tests/orch/sweeps/tiny.cfg" "$run3" --groups 2 --array \
        -- --output="$tmp/array-%A_%a.out")
read -r aid rid3 <<<"$ids"
ok "submit.sh: MPI job $sid2 + report $rid2; array job $aid + report $rid3"
for j in "$sid2" "$rid2" "$aid" "$rid3"; do wait_job "$j" 300 || fail "job $j did not end"; done
for r in "$run2" "$run3"; do
  n=$(ls "$r"/trials/*/trial.h5 2>/dev/null | wc -l)
  [ "$n" = 4 ] && ok "$(basename "$r"): 4 finished trials" || fail "$(basename "$r"): $n of 4"
done
status=$("$SAFECL_BIN" status "$run3")
echo "$status" | sed 's/^/     /'
echo "$status" | grep -q "4 total: 4 finished" && ok "status follows the array job" \
  || fail "status does not show the array job's 4 finished trials"
if [ "$have_report" = 1 ]; then
  for j in "$rid2" "$rid3"; do
    [ "$(job_field "$j" JobState)" = COMPLETED ] && ok "report job $j completed" \
      || fail "report job $j state $(job_field "$j" JobState)"
  done
fi

if [ "$fails" = 0 ]; then echo "test_slurm: all checks passed"; else echo "test_slurm: $fails failure(s)"; fi
exit $(( fails > 0 ))
