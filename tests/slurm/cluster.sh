# cluster.sh: a one-node SLURM cluster for the tests, from Debian's slurm-wlm and munge (installed
# if missing unless SLURM_TEST_INSTALL=0, which skips with 77 instead; needs root). Sourced by
# tests/slurm/test_*.sh after they define ok, fail and fails: it makes $tmp (the cluster's
# temporary directory, removed at exit), exports SLURM_CONF, starts slurmctld and slurmd on
# SLURM_TEST_PORT and the next port (default 16817), waits for the node to be idle and defines
# job_field JOBID FIELD and wait_job JOBID SECONDS. Daemons it started are stopped, and jobs
# cancelled, on every exit path.
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "${SLURM_TEST_INSTALL:-1}" != 1 ]; then
    echo "$(basename "$0"): slurm-wlm and munge are not installed (tests/slurm/test_slurm.sh" \
         "installs them): skipped"
    exit 77
  fi
  echo "$(basename "$0"): installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null
fi

tmp=$(mktemp -d /tmp/safecl_slurm.XXXXXX)
export SLURM_CONF=$tmp/slurm.conf
started_munge=0

cleanup() {
  set +e
  if [ -f "$tmp/slurmctld.pid" ]; then
    scancel --user=root >/dev/null 2>&1
    for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
  fi
  for d in slurmd slurmctld; do
    [ -f "$tmp/$d.pid" ] && kill "$(cat "$tmp/$d.pid")" 2>/dev/null
  done
  for d in slurmd slurmctld; do
    for _ in $(seq 30); do [ -f "$tmp/$d.pid" ] && kill -0 "$(cat "$tmp/$d.pid" 2>/dev/null)" 2>/dev/null \
      || break; sleep 0.5; done
  done
  if [ "$started_munge" = 1 ]; then # gone before the next test looks for a running one
    munge_pid=$(cat "$tmp/munged.pid")
    kill "$munge_pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$munge_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  if [ "$fails" != 0 ]; then
    echo "--- slurmctld.log (tail)"; tail -n 30 "$tmp/slurmctld.log" 2>/dev/null
    echo "--- slurmd.log (tail)"; tail -n 30 "$tmp/slurmd.log" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# munge: one daemon per machine; reuse a running one that answers (one that another test is
# stopping may still be listed), else start it as user munge
for _ in $(seq 20); do
  ! pgrep -x munged >/dev/null || munge -n </dev/null >/dev/null 2>&1 && break
  sleep 0.5
done
if ! munge -n </dev/null >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge \
    /var/log/munge /var/lib/munge && chmod 0755 /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  pgrep -x -n munged >"$tmp/munged.pid"
  started_munge=1
fi

host=$(hostname -s)
mkdir -p "$tmp/state" "$tmp/spool"
cat >"$SLURM_CONF" <<CONF
ClusterName=safecltest
SlurmctldHost=$host
SlurmctldPort=${SLURM_TEST_PORT:-16817}
SlurmdPort=$(( ${SLURM_TEST_PORT:-16817} + 1 ))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
ReturnToService=2
KillWait=10
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$(slurmd -C | head -1) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || { fail "the one-node cluster is up (node state '$state')"; exit 1; }
ok "one-node cluster up: $(sinfo -h -o '%P %D %c %T')"

job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -1 | cut -d= -f2; }
wait_job() { # JOBID TIMEOUT: waits until the job (every array task) has ended
  for _ in $(seq "$2"); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 1
  done
  return 1
}
