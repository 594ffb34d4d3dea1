#!/usr/bin/env bash
# submit.sh: size a SLURM request from a sweep's plan and submit the chain
#   sweep (one MPI job, or an array of `safecl train` tasks) -> report (afterok).
#
#   jobs/submit.sh SWEEP.cfg RUN_DIR [options] [-- extra sbatch arguments]
#     --groups N         at most N worker groups (default 4); never more than trials to run
#     --cpus-per-task N  cores (= OpenBLAS threads) per rank (default 1)
#     --max-minutes M    cap on the time limit (default 1440); longer sweeps requeue
#     --array            one array task per trial instead of one MPI job
#     --print            print the sbatch commands instead of submitting
#
# The time limit is the plan's expected seconds of what is left, divided over the groups, plus the
# longest trial (an array task: the longest trial), times 1.5, plus 10 minutes, capped by
# --max-minutes (the sweep checkpoints and requeues at the limit). Resources are sized here;
# every experiment parameter stays in the sweep file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/jobs/env.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
sweep=$(realpath "$1") run_dir=$(realpath -m "$2") # the jobs run from the checkout
shift 2
groups=4 cpus=1 max_minutes=1440 array=0 print=0
while [ $# -gt 0 ]; do
  case "$1" in
    --groups) groups=$2; shift 2 ;;
    --cpus-per-task) cpus=$2; shift 2 ;;
    --max-minutes) max_minutes=$2; shift 2 ;;
    --array) array=1; shift ;;
    --print) print=1; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
extra=("$@")

submit() { # prints the job id
  if [ "$print" = 1 ]; then echo "sbatch $*" >&2; echo "JOBID"; return; fi
  sbatch --parsable "$@" | cut -d';' -f1
}

declare -A plan
while IFS='=' read -r key value; do plan[$key]=$value; done \
  < <("$SAFECL_BIN" sweep --summary "$sweep" "run.dir=$run_dir")
to_run=${plan[to_run]} group_size=${plan[group_size]}
echo "submit: ${plan[trials]} trial(s), $to_run to run, about ${plan[expected_seconds]} s of work" \
     "(longest ${plan[longest_seconds]} s)" >&2

if [ "$to_run" -gt 0 ]; then
  [ "$groups" -le "$to_run" ] || groups=$to_run
  if [ "$array" = 1 ]; then work=${plan[longest_seconds]}; else
    work=$(( plan[expected_seconds] / groups + plan[longest_seconds] )); fi
  minutes=$(( work * 3 / 2 / 60 + 10 ))
  [ "$minutes" -le "$max_minutes" ] || minutes=$max_minutes
  common=(--time="$minutes" --cpus-per-task="$cpus" --chdir="$root" "${extra[@]}")
  if [ "$array" = 1 ]; then
    "$SAFECL_BIN" sweep --plan "$sweep" "run.dir=$run_dir" >&2
    last=$(( plan[trials] - 1 ))
    sweep_job=$(submit --array="0-$last%$groups" "${common[@]}" "$root/jobs/array.sbatch" \
                       "$sweep" "run.dir=$run_dir")
  else
    sweep_job=$(submit --ntasks=$(( 1 + groups * group_size )) "${common[@]}" \
                       "$root/jobs/sweep.sbatch" "$sweep" "run.dir=$run_dir")
  fi
  kind=$([ "$array" = 1 ] && echo "array job" || echo "sweep job")
  echo "submit: $kind $sweep_job ($groups group(s), time limit $minutes min)" >&2
  dependency=(--dependency="afterok:$sweep_job")
else
  dependency=()
fi
report_job=$(submit "${dependency[@]}" --chdir="$root" "${extra[@]}" "$root/jobs/report.sbatch" \
                    "$run_dir")
echo "submit: report job $report_job" >&2
echo "${sweep_job:-} $report_job"
