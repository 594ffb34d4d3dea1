#!/usr/bin/env bash
# submit.sh: size a SLURM request from a sweep's plan and submit the chain
#   sweep (one MPI job, or an array of `safecl train` tasks) -> report (afterany).
#
#   jobs/submit.sh SWEEP.cfg [RUN_DIR] [options] [-- extra sbatch arguments]
#     RUN_DIR            default: run/<sweep file name> in the current directory
#     --groups N         at most N worker groups (default 4); never more than trials to run
#     --cpus-per-task N  cores (= OpenBLAS threads) per rank (default 1)
#     --max-minutes M    cap on the time limit (default 1440); longer sweeps requeue
#     --time T           the time limit itself (minutes or D-HH:MM:SS) instead of the plan's
#     --partition P      --account A      --mem M (per node, as sbatch --mem)
#     --setup SCRIPT     a shell script every job sources first (module loads, conda, paths)
#     --modules "a b"    modules every job loads (`module load a b`) before the setup script
#     --cluster FILE     cluster settings (default $SAFECL_CLUSTER, else
#                        ~/.config/safecl/cluster.sh when it exists): key=value lines, keys
#                        partition, account, time, mem, setup, modules, groups, cpus_per_task,
#                        max_minutes, sbatch (extra sbatch arguments); options given here win
#     --array            one array task per trial instead of one MPI job
#     --print            print the plan and the sbatch commands instead of submitting
#
# Run it from anywhere (usually your project directory): it finds safecl and the job scripts
# beside itself (SAFECL_BIN overrides the binary) and hands both to the jobs as absolute paths
# (SAFECL_ROOT, SAFECL_BIN; SLURM runs a copy of the batch script from its spool directory). The
# jobs run in the directory you submit from, so relative paths in config files (data/...,
# weights/...) mean what `safecl sweep --list` shows here; paths in the sweep file are relative
# to the sweep file. Job logs go to RUN_DIR/logs/ (slurm-<job>.out, slurm-<job>_<task>.out,
# report-<job>.out).
#
# The time limit is the plan's expected seconds of what is left, divided over the groups, plus the
# longest trial (an array task: the longest trial), times 1.5, plus 10 minutes, capped by
# --max-minutes (the sweep checkpoints and requeues at the limit). The sweep job exits 0 when every
# trial finished, 3 when every trial ended and some failed, 75 to requeue, 1 on an error; the
# report job runs after it whatever its state (afterany) and lists the failed trials. Resources
# are sized here; every experiment parameter stays in the sweep file.
#
# Prints "SWEEP_JOB REPORT_JOB" on stdout (one id when nothing is left to run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
die() { echo "submit: $*" >&2; exit 1; }

# options first, so that the cluster file's values can be overridden
declare -A opt=()
pos=() extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --groups | --cpus-per-task | --max-minutes | --time | --partition | --account | --mem | \
      --setup | --modules | --cluster)
      [ $# -ge 2 ] || die "$1 needs a value"
      key=${1#--}; opt[${key//-/_}]=$2; shift 2 ;;
    --array) opt[array]=1; shift ;;
    --print) opt[print]=1; shift ;;
    -h | --help) usage ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "submit: unknown option $1" >&2; usage ;;
    *) pos+=("$1"); shift ;;
  esac
done
[ ${#pos[@]} -ge 1 ] && [ ${#pos[@]} -le 2 ] || usage

# the cluster file: key=value lines, '#' comments, values optionally quoted; never executed
cluster=${opt[cluster]:-${SAFECL_CLUSTER:-}}
if [ -z "$cluster" ] && [ -f "${HOME:-/nonexistent}/.config/safecl/cluster.sh" ]; then
  cluster=$HOME/.config/safecl/cluster.sh
fi
cluster_sbatch=()
if [ -n "$cluster" ]; then
  [ -f "$cluster" ] && [ -r "$cluster" ] || die "cluster file $cluster: cannot read it"
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    line="${line#"${line%%[![:space:]]*}"}" line="${line%"${line##*[![:space:]]}"}"
    [ -z "$line" ] && continue
    [[ "$line" =~ ^([a-z_]+)=(.*)$ ]] || die "$cluster:$n: '$line' is not key=value"
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]] && value=${BASH_REMATCH[1]}
    case "$key" in
      partition | account | time | mem | setup | modules | groups | cpus_per_task | max_minutes)
        [ -n "${opt[$key]+set}" ] || opt[$key]=$value ;;
      sbatch) read -r -a words <<<"$value"; cluster_sbatch+=("${words[@]}") ;;
      *) die "$cluster:$n: unknown key '$key' (partition, account, time, mem, setup, modules," \
             "groups, cpus_per_task, max_minutes, sbatch)" ;;
    esac
  done <"$cluster"
fi

groups=${opt[groups]:-4} cpus=${opt[cpus_per_task]:-1} max_minutes=${opt[max_minutes]:-1440}
array=${opt[array]:-0} print=${opt[print]:-0}
for v in groups:groups cpus:cpus-per-task max_minutes:max-minutes; do
  name=${v%%:*} && value=${!name}
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "--${v#*:} $value: expected a positive integer"
done
[ -f "${pos[0]}" ] || die "sweep file ${pos[0]}: no such file"
sweep=$(realpath "${pos[0]}")
name=$(basename "$sweep" .cfg)
run_dir=$(realpath -m "${pos[1]:-run/$name}")
setup=""
if [ -n "${opt[setup]:-}" ]; then
  [ -f "${opt[setup]}" ] || die "--setup ${opt[setup]}: no such file"
  setup=$(realpath "${opt[setup]}")
fi
modules=${opt[modules]:-}

# this machine needs the same environment as the jobs to plan the sweep (the modules where it
# has a module command: a workstation preparing a --print may not)
export SAFECL_SETUP="$setup" SAFECL_MODULES="$modules"
if [ -n "$modules" ] && ! type module >/dev/null 2>&1; then
  echo "submit: no 'module' command here: the jobs load '$modules', this script does not" >&2
  SAFECL_MODULES=""
fi
source "$root/jobs/env.sh" >&2 # a setup script's output is not the job ids
[ -x "$SAFECL_BIN" ] || die "no safecl binary at $SAFECL_BIN: build it (cmake -S $root -B" \
  "$root/build && cmake --build $root/build) or set SAFECL_BIN"
SAFECL_BIN=$(realpath "$SAFECL_BIN")
for v in "$root" "$SAFECL_BIN" "$setup" "$modules"; do
  [[ "$v" != *,* ]] || die "'$v' contains a comma, which sbatch --export cannot pass"
done

# what every job gets: where safecl lives, the environment setup, the cluster's settings
export_arg="--export=ALL,SAFECL_ROOT=$root,SAFECL_BIN=$SAFECL_BIN"
[ -n "$setup" ] && export_arg+=",SAFECL_SETUP=$setup"
[ -n "$modules" ] && export_arg+=",SAFECL_MODULES=$modules"
cluster_args=("$export_arg" --chdir="$PWD")
[ -n "${opt[partition]:-}" ] && cluster_args+=(--partition="${opt[partition]}")
[ -n "${opt[account]:-}" ] && cluster_args+=(--account="${opt[account]}")
[ -n "${opt[mem]:-}" ] && cluster_args+=(--mem="${opt[mem]}")
cluster_args+=("${cluster_sbatch[@]}" "${extra[@]}")

quote() { # a word as the shell reads it back: bare when safe, else in single quotes
  if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$1"; else
    printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
submit() { # NAME ARGS...: prints the job id (NAME in --print mode)
  local placeholder=$1
  shift
  if [ "$print" = 1 ]; then
    local w line="sbatch"
    for w in "$@"; do line+=" $(quote "$w")"; done
    echo "$line" >&2
    echo "$placeholder"
    return
  fi
  sbatch --parsable "$@" | cut -d';' -f1
}

declare -A plan
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
summary=$("$SAFECL_BIN" sweep --summary "$sweep" "run.dir=$run_dir" 2>"$errors") \
  || { cat "$errors" >&2; die "safecl sweep --summary $sweep failed"; }
while IFS='=' read -r key value; do plan[$key]=$value; done <<<"$summary"
[ -n "${plan[trials]:-}" ] || die "safecl sweep --summary $sweep printed no plan"
to_run=${plan[to_run]} group_size=${plan[group_size]} failed=${plan[failed]:-0}
echo "submit: $sweep: ${plan[trials]} trial(s), $to_run to run, about" \
     "${plan[expected_seconds]} s of work (longest ${plan[longest_seconds]} s); run dir $run_dir" >&2
if [ "$failed" -gt 0 ]; then
  echo "submit: $failed trial(s) failed (for good, or in planning here: data or weights that" \
       "cannot be read); safecl sweep --list $sweep names each" >&2
fi
if [ "${plan[retried]:-0}" -gt 0 ]; then
  echo "submit: ${plan[retried]} of the trials to run failed on a fault of the machine (disk" \
       "full, I/O error) in an earlier job: this job runs them again" >&2
fi

# In --print mode a sweep whose data is not here yet is shown as it would be submitted.
plannable=$to_run
[ "$print" = 1 ] && [ "$to_run" = 0 ] && plannable=${plan[trials]}
if [ "$plannable" -gt 0 ]; then
  [ "$groups" -le "$plannable" ] || groups=$plannable
  if [ -n "${opt[time]:-}" ]; then
    time_limit=${opt[time]}
  elif [ "$to_run" -gt 0 ]; then
    if [ "$array" = 1 ]; then work=${plan[longest_seconds]}; else
      work=$(( plan[expected_seconds] / groups + plan[longest_seconds] )); fi
    minutes=$(( work * 3 / 2 / 60 + 10 ))
    [ "$minutes" -le "$max_minutes" ] || minutes=$max_minutes
    time_limit=$minutes
  else
    time_limit=$max_minutes # nothing could be priced here
    echo "submit: no trial can be priced here (no data): the time limit is --max-minutes" >&2
  fi
  if [ "$print" = 1 ]; then echo "mkdir -p $(quote "$run_dir/logs")" >&2; else
    mkdir -p "$run_dir/logs"; fi
  common=(--time="$time_limit" --cpus-per-task="$cpus" "${cluster_args[@]}")
  if [ "$array" = 1 ]; then
    if [ "$print" = 1 ]; then
      echo "$(quote "$SAFECL_BIN") sweep --plan $(quote "$sweep") $(quote "run.dir=$run_dir")" >&2
    else
      "$SAFECL_BIN" sweep --plan "$sweep" "run.dir=$run_dir" >&2
    fi
    last=$(( plan[trials] - 1 ))
    sweep_job=$(submit ARRAY_JOB --array="0-$last%$groups" --output="$run_dir/logs/slurm-%A_%a.out" \
                       "${common[@]}" "$root/jobs/array.sbatch" "$sweep" "run.dir=$run_dir")
  else
    sweep_job=$(submit SWEEP_JOB --ntasks=$(( 1 + groups * group_size )) \
                       --output="$run_dir/logs/slurm-%j.out" "${common[@]}" \
                       "$root/jobs/sweep.sbatch" "$sweep" "run.dir=$run_dir")
  fi
  kind=$([ "$array" = 1 ] && echo "array job" || echo "sweep job")
  echo "submit: $kind $sweep_job ($groups group(s), time limit $time_limit min)" >&2
  dependency=(--dependency="afterany:$sweep_job")
else
  echo "submit: nothing to run; the report job only" >&2
  dependency=()
  [ "$print" = 1 ] || mkdir -p "$run_dir/logs"
fi
report_job=$(submit REPORT_JOB "${dependency[@]}" --time=30 --output="$run_dir/logs/report-%j.out" \
                    "${cluster_args[@]}" "$root/jobs/report.sbatch" "$run_dir")
echo "submit: report job $report_job" >&2
echo "${sweep_job:+$sweep_job }$report_job"
