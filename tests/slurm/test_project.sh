#!/usr/bin/env bash
# test_project.sh: jobs/submit.sh as a user runs it, from their own project directory (a temporary
# directory outside the checkout), on the one-node SLURM cluster of tests/slurm/cluster.sh.
#
#   tests/slurm/test_project.sh [path/to/safecl]
#
# The project holds a sweep file in sweeps/ naming its configs, a folder dataset (data/shapes)
# and run.dir relatively, plus a cluster file (partition, time, mem, a setup script). Nothing in
# the environment says where the checkout is (SAFECL_ROOT unset). Checks:
# 1. submit.sh --print configs/sweeps/paper.cfg (the checkout's, no data here): the plan (204
#    trials) and the sbatch lines of a sweep and an afterany report job; nothing submitted,
#    nothing written. The README's cluster commands, as printed there, run (--print).
# 2. --list of the sweep file is the same from the project and from another directory.
# 3. submit.sh submits the chain with the cluster file's settings (partition, time limit, the
#    setup script sourced in each job); the logs land in RUN_DIR/logs, none in the project.
# 4. The sweep finishes the planned trials under the ids --list printed (the relative dataset
#    root read from the job), fails the broken ones, and the job exits 3 (FAILED, ExitCode 3:0).
# 5. The report job runs after it anyway (afterany) and its log lists the failed trials.
# Needs root; skipped (77) when slurm-wlm is not installed (tests/slurm/test_slurm.sh, labelled
# slow, installs it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SAFECL_BIN="$(realpath "${1:-$root/build/safecl}")"
unset SAFECL_ROOT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
[ "$(id -u)" = 0 ] || { echo "test_project: needs root (it starts slurmctld, slurmd, munged)"; exit 77; }
SLURM_TEST_INSTALL=0 SLURM_TEST_PORT=16827
source "$root/tests/slurm/cluster.sh"
export SAFECL_PROGRESS_INTERVAL=0 SAFECL_THREADS=1

proj=$tmp/project elsewhere=$tmp/elsewhere/deeper
mkdir -p "$proj/sweeps" "$proj/cfg" "$elsewhere"
cp "$root/configs/backbones/vit_tiny_random.cfg" "$root/configs/datasets/synthetic.cfg" \
   "$root/configs/methods/simplecil.cfg" "$proj/cfg/"
/usr/bin/python3 - "$proj/data/shapes" <<'PY'
import os, sys
from PIL import Image
import numpy as np
rng = np.random.default_rng(3)
for split in ("train", "test"):
    for c in ("a", "b", "c", "d"):
        d = os.path.join(sys.argv[1], split, c)
        os.makedirs(d)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)).save(
                os.path.join(d, "%d.png" % k))
PY
cat >"$proj/sweeps/mine.cfg" <<'CFG'
sweep = {
  name = "mine";
  base = ["../cfg/vit_tiny_random.cfg"];
  datasets = ( { file = "../cfg/synthetic.cfg";
                 overrides = ["dataset.name=shapes", "dataset.format=folder",
                              "dataset.root=../data/shapes"]; },
               { file = "../cfg/synthetic.cfg";
                 overrides = ["dataset.name=broken", "dataset.crop=200"]; } );
  methods = ["../cfg/simplecil.cfg"];
  seeds = [1, 2];
  overrides = ["dataset.synthetic.classes=4", "dataset.synthetic.train_per_class=2",
               "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
               "eval.batch=8", "threads=1"];
};
CFG
cat >"$proj/setup.sh" <<'SH'
echo "setup.sh sourced in job ${SLURM_JOB_ID:-none}"
export SAFECL_TEST_SETUP=1
SH
cat >"$proj/cluster.sh" <<CL
# the cluster's settings, as a user keeps them in ~/.config/safecl/cluster.sh
partition = ignored
CL
cd "$proj"

# a cluster file with a bad line names the file and line
out=$("$root/jobs/submit.sh" sweeps/mine.cfg run --cluster cluster.sh --print 2>&1) && rc=0 || rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q "cluster.sh:2: 'partition = ignored' is not key=value" \
  && ok "a malformed cluster file is refused naming file:line" || fail "bad cluster file: $out"
cat >"$proj/cluster.sh" <<CL
# the cluster's settings, as a user keeps them in ~/.config/safecl/cluster.sh
partition=debug
time=20
mem=200M
setup="$proj/setup.sh"
CL

# ---- 1. --print of the paper sweep --------------------------------------------------------------
jobs_before=$(squeue -h | wc -l)
out=$("$root/jobs/submit.sh" --print "$root/configs/sweeps/paper.cfg" 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/     /' | cut -c1-160
[ "$rc" = 0 ] && echo "$out" | grep -q "204 trial(s)" \
  && echo "$out" | grep -q "^sbatch .*jobs/sweep.sbatch .*paper.cfg run.dir=$proj/run/paper" \
  && echo "$out" | grep -q "^sbatch --dependency=afterany:SWEEP_JOB .*jobs/report.sbatch" \
  && ok "--print paper.cfg: 204 trials and the sbatch lines" || fail "--print paper.cfg (rc $rc)"
[ "$(squeue -h | wc -l)" = "$jobs_before" ] && [ ! -e "$proj/run" ] \
  && ok "--print submits nothing and writes nothing" || fail "--print submitted or wrote"

# the README's cluster commands, as printed there (~/safecl = this checkout); the submission
# itself with --print, as its partition and account do not exist here
readme_file=$root/README
readme=$(sed -n '/^#### On a cluster, from your own project directory/,/^- Paths in a sweep file/p' \
         "$readme_file.md" | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' | grep '^~/safecl/jobs/submit.sh')
[ "$(echo "$readme" | wc -l)" = 2 ] || fail "two submit.sh commands in the README: $readme"
while IFS= read -r line; do
  cmd=${line%%   #*}
  cmd=${cmd//\~\/safecl/$root}
  cmd=${cmd//\~\/site-env.sh/$proj/setup.sh}
  case "$cmd" in *--print*) ;; *) cmd="$cmd --print" ;; esac
  out=$(eval "$cmd" 2>&1) && rc=0 || rc=$?
  case "$line" in
    *paper.cfg*) want="204 trial(s)" ;;
    *) want="--partition=cpu --account=proj42" ;;
  esac
  [ "$rc" = 0 ] && echo "$out" | grep -q -- "$want" && ok "README: ${line:0:70}..." \
    || fail "README command ($rc): $cmd: $out"
done <<<"$readme"
echo "$out" | grep -q -- "--time=2-00:00:00 --cpus-per-task=8 .*SAFECL_MODULES=openmpi hdf5.* --mem=64G" \
  && ok "its time, cores, modules and memory reach the sbatch line" || fail "README options: $out"

# ---- 2. the same plan from anywhere -------------------------------------------------------------
list_here=$("$SAFECL_BIN" sweep --list sweeps/mine.cfg 2>/dev/null | awk '{print $1, $2, $4, $5}')
list_there=$(cd "$elsewhere" && "$SAFECL_BIN" sweep --list "$proj/sweeps/mine.cfg" 2>/dev/null \
             | awk '{print $1, $2, $4, $5}')
[ -n "$list_here" ] && [ "$list_here" = "$list_there" ] \
  && ok "--list is the same from the project and elsewhere" || fail "--list differs"
planned=$(echo "$list_here" | awk '$4 ~ /^shapes/ {print $2}' | sort)
[ "$(echo "$planned" | wc -w)" = 2 ] || fail "2 shapes trials planned: $list_here"

# ---- 3. submit ------------------------------------------------------------------------------------
ids=$("$root/jobs/submit.sh" sweeps/mine.cfg run --groups 1 --cluster cluster.sh) \
  || { fail "submit.sh failed"; ids=""; }
read -r sid rid <<<"${ids:-}"
[ -n "${rid:-}" ] && ok "submitted sweep job $sid and report job $rid from $proj" \
  || fail "submit.sh printed no job ids: '${ids:-}'"
[ "$(job_field "$sid" Partition)" = debug ] && [ "$(job_field "$sid" TimeLimit)" = 00:20:00 ] \
  && ok "the cluster file's partition and time limit" \
  || fail "partition $(job_field "$sid" Partition), time $(job_field "$sid" TimeLimit)"
# read at once, while the sweep job plans or runs (a second at least); (fulfilled) if it has ended
dep=$(job_field "$rid" Dependency)
case "$dep" in "afterany:${sid}(unfulfilled)"|"afterany:${sid}(fulfilled)") true ;; *) false ;; esac \
  && ok "the report job depends on it with afterany" || fail "dependency $dep"
wait_job "$sid" 300 || fail "sweep job $sid did not end"
wait_job "$rid" 120 || fail "report job $rid did not end"

# ---- 4. the sweep job ------------------------------------------------------------------------------
log=$proj/run/logs/slurm-$sid.out rlog=$proj/run/logs/report-$rid.out
[ -s "$log" ] && [ -s "$rlog" ] && ok "logs in RUN_DIR/logs: $(ls "$proj/run/logs" | tr '\n' ' ')" \
  || fail "no logs in $proj/run/logs: $(ls "$proj/run/logs" 2>&1)"
[ -z "$(ls "$proj" | grep -E '^(slurm|safecl)-.*\.out$')" ] && ok "no log in the project directory" \
  || fail "logs in the project directory: $(ls "$proj")"
grep -q "setup.sh sourced in job $sid" "$log" && grep -q "setup.sh sourced in job $rid" "$rlog" \
  && ok "each job sourced the setup script" || fail "the setup script did not run in the jobs"
[ "$(job_field "$sid" JobState)" = FAILED ] && [ "$(job_field "$sid" ExitCode)" = 3:0 ] \
  && ok "the sweep job ended FAILED with exit 3 (some trials failed)" \
  || fail "sweep job $(job_field "$sid" JobState) $(job_field "$sid" ExitCode)"
done_ids=$(ls "$proj/run/trials/"*/trial.h5 2>/dev/null | xargs -n1 dirname | xargs -n1 basename | sort)
[ -n "$planned" ] && [ "$done_ids" = "$planned" ] \
  && ok "the job finished the shapes trials under the ids --list printed (data/shapes read)" \
  || { fail "finished $done_ids, planned $planned"; tail -30 "$log"; }

# ---- 5. the report job ---------------------------------------------------------------------------
[ "$(job_field "$rid" JobState)" != CANCELLED ] && grep -q "2 failed" "$rlog" \
  && [ "$(grep -c "broken/simplecil" "$rlog")" -ge 2 ] \
  && ok "the report job ran after the failed sweep and lists both failed trials" \
  || { fail "report job $(job_field "$rid" JobState)"; cat "$rlog"; }

if [ "$fails" = 0 ]; then echo "test_project: all checks passed"; else echo "test_project: $fails failure(s)"; fi
exit $(( fails > 0 ))
