#!/usr/bin/env bash
# orch_overheads.sh: the orchestrator's own costs, with no-op trials (sweep.dry_run=true: groups
# answer every trial at once), printed as key: value lines for the README.
#
#   tests/bench/orch_overheads.sh [SAFECL_BINARY] [RANKS]
#
#   1. dispatch latency per trial: round trip seen by a group (RESULT sent -> next TRIAL
#      received) and the coordinator's handling time per message, over a 10,000-trial sweep
#   2. coordinator memory: peak RSS with 10,000 queued trials, and with 10 for comparison
#   3. planning time of the 10,000 trials (config layering, identities, cost model)
#   4. ledger replay time for 100,000 records (`safecl status`), written by a Python generator
#      that uses zlib.crc32 like any third-party writer would
# Runs on this machine as it is (other load included); default 3 ranks = coordinator + 2 groups.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
safecl="$(realpath "${1:-$root/build/safecl}")"
ranks=${2:-3}
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
tmp=$(mktemp -d /tmp/orch_bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

sweep() { # NAME N_SEEDS: a sweep of N no-op trials (one per seed)
  local seeds
  seeds=$(seq -s ", " 1 "$2")
  cat >"$tmp/$1.cfg" <<CFG
sweep = {
  name = "$1";
  base = ["$root/configs/backbones/vit_tiny_random.cfg", "$root/configs/datasets/synthetic.cfg",
          "$root/configs/methods/simplecil.cfg"];
  seeds = [$seeds];
  dry_run = true;
};
CFG
  echo "$tmp/$1.cfg"
}

run() { # NAME N: runs the dry sweep, prints its log
  mpiexec -np "$ranks" --oversubscribe "$safecl" sweep "$(sweep "$1" "$2")" "run.dir=$tmp/$1" 2>&1
}

field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" | head -1; }

small=$(run small 10)
big=$(run big 10000)
echo "$big" | grep -E "planned in|overheads" | sed 's/^/# /'
echo "ranks: $ranks (1 coordinator + $((ranks - 1)) groups), $(getconf _NPROCESSORS_ONLN) cores"
echo "trials: 10000 no-op"
echo "planning_seconds: $(echo "$big" | field "planned in")"
echo "dispatch_round_trip_mean_us: $(echo "$big" | field "round trip mean")"
echo "dispatch_round_trip_max_us: $(echo "$big" | sed -n 's/.*round trip mean [0-9.]* us max \([0-9.]*\).*/\1/p')"
echo "coordinator_handling_mean_us: $(echo "$big" | field "handling mean")"
echo "coordinator_peak_rss_mib_10000_trials: $(echo "$big" | field "peak memory")"
echo "coordinator_peak_rss_mib_10_trials: $(echo "$small" | field "peak memory")"
echo "sweep_wall_seconds_10000_trials: $(echo "$big" | sed -n 's/.*MiB; \([0-9.]*\) s.*/\1/p')"
echo "coordinator_cpu_seconds_10000_trials: $(echo "$big" | field "coordinator CPU")"

mkdir -p "$tmp/replay"
/usr/bin/python3 - "$tmp/replay/ledger.bench.log" <<'PY'
import sys, zlib
def line(t, time, tid, group, text=""):
    body = "%s %.17g %s %d 1 1 0 1.5 75 80 nan %s" % (t, time, tid, group, text)
    return "%08x %s\n" % (zlib.crc32(body.encode()), body)
out = [line("JOB", 1.0e9, "-", 4, "bench ranks=5 sweep=bench")]
n = 1
while n < 100000:
    tid = "%032x" % (n * 2654435761)
    for t in ("PLAN", "START", "PROGRESS", "FINISHED"):
        out.append(line(t, 1.0e9 + n, tid, n % 4, "synthetic\tsimplecil\t1\t" if t == "PLAN" else ""))
        n += 1
open(sys.argv[1], "w").write("".join(out[:100000]))
PY
status=$("$safecl" status "$tmp/replay")
echo "$status" | head -3 | sed 's/^/# /'
echo "ledger_replay_records: $(echo "$status" | sed -n 's/.* \([0-9]*\) record(s).*/\1/p')"
echo "ledger_replay_seconds_100000_records: $(echo "$status" | field "replayed in")"
