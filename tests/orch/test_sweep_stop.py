"""test_sweep_stop.py: Ctrl-C on `mpiexec ... safecl sweep`, and `safecl status` on a sweep whose
job was killed. 3 ranks (a coordinator and two groups of one), a sweep of 3 tiny SimpleCIL trials
of 3 sessions each. Every job runs with SAFECL_FAULT_TRIAL_SIGNAL=hold (src/orch/worker.c): a
group that gets a trial waits before starting it until its rank has caught a stop signal, and
every signal is sent once the ledger shows both groups' START records. So both first trials are
certainly still to run when the signal comes, on a machine of any speed, loaded or not: each is
STOPPED at its first boundary and the third never starts.

1. SIGINT to the ranks (a terminal's Ctrl-C reaches every process of the foreground job; srun
   forwards it to every task), the coordinator first: it stops the sweep as for SIGUSR1: running
   trials checkpoint at their next boundary and are recorded STOPPED, never FAILED, the ledger
   ends "stopped", mpiexec exits 75; the rerun resumes and finishes every trial.
2. SIGINT to mpiexec, as Ctrl-C on an interactive `mpirun` delivers it: Open MPI 4.1 sends the
   ranks SIGCONT, waits odls_base_sigkill_timeout seconds (default 1), sends SIGTERM to every
   rank, waits as long again and sends SIGKILL. With the timeout raised (the README says to raise
   it) the SIGTERM stops the sweep the same way (STOPPED with a checkpoint, END stopped; the
   ranks exit 75, mpiexec itself 1); resuming from such checkpoints is case 1's rerun, not run
   again here. SIGCONT does not end a hold, so the trials are still waiting when the SIGTERM
   comes; from there each runs one tiny session and checkpoints, well inside the timeout's
   second wait (SIGKILL_TIMEOUT), even on a slow, loaded machine.
3. SIGKILL to the whole job while its groups hold their trials: `safecl status` says the job is
   dead (its last heartbeat; its lock released, or its pid gone), shows no group as running and
   no ETA.
Exits non-zero on any failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile

from orch_util import (Job, all_records, check, descendants, finish, finished_trials, held,
                       method, run_sweep, synthetic, tiny_overrides, write_sweep)

ENV = {"SAFECL_PROGRESS_INTERVAL": "0"}
HOLD = dict(ENV, SAFECL_FAULT_TRIAL_SIGNAL="hold")
# Open MPI's wait before SIGTERM and again before SIGKILL: the second bounds the time from the
# SIGTERM to the ranks' exit (a trial's setup, one tiny session, a checkpoint, the ledger): 1.7 s
# on a 2-core machine running 12 processes, so 10 s covers a 3x slower CPU as loaded, twice over.
SIGKILL_TIMEOUT = "10"


def sweep(tmp, name):
    path = write_sweep(os.path.join(tmp, name + ".cfg"), name,
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2, 3];\n'
                       % (synthetic(), method("simplecil")),
                       overrides=tiny_overrides(classes=6, train=3, test=2))
    return path, os.path.join(tmp, name)


def world_rank(pid):
    try:
        env = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
    except OSError:
        return -1
    for kv in env:
        if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
            return int(kv.split(b"=", 1)[1])
    return -1


def safecl_pids(job, safecl):
    """The ranks' pids, rank 0 (the coordinator) first."""
    out = []
    for pid in descendants(job.proc.pid):
        try:
            if os.readlink("/proc/%d/exe" % pid) == os.path.realpath(safecl):
                out.append(pid)
        except OSError:
            pass
    return sorted(out, key=world_rank)


def check_stopped(a, tmp, path, run_dir, what, rc, want_rc, rerun=True):
    recs = all_records(run_dir)
    stopped = [r for r in recs if r["type"] == "STOPPED"]
    failed = [r for r in recs if r["type"] in ("FAILED", "FINISHED")]
    check(rc == want_rc if want_rc is not None else rc not in (0, None),
          "%s: mpiexec exits %s (got %s)" % (what, want_rc or "non-zero", rc))
    check(len(stopped) == 2 and not failed and recs and recs[-1]["type"] == "END" and
          recs[-1]["text"] == "stopped",
          "%s: both held trials STOPPED (%d), none FAILED or FINISHED, END stopped"
          % (what, len(stopped)))
    ckpts = [r["id"] for r in stopped
             if os.path.exists(os.path.join(run_dir, "trials", r["id"], "ckpt.h5"))]
    check(len(ckpts) == len(stopped), "%s: each stopped trial has its ckpt.h5" % what)
    if not rerun:
        return
    rc, out = run_sweep([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=ENV,
                        log=os.path.join(tmp, what.split()[-1] + "_rerun.log"))
    check(rc == 0 and len(finished_trials(run_dir)) == 3 and "resuming" in out,
          "%s: the rerun resumes and finishes all 3 trials (rc %s)" % (what, rc))


def test_sigint_ranks(a, tmp):
    path, run_dir = sweep(tmp, "ranks")
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=HOLD,
              log=os.path.join(tmp, "ranks.log"))
    seen = held(job, run_dir, 2)
    pids = safecl_pids(job, a.safecl)
    check(seen and len(pids) == a.ranks and world_rank(pids[0]) == 0,
          "SIGINT to the ranks: both groups hold a trial, %d ranks found" % len(pids))
    for pid in pids:  # the coordinator's flag is set before a group can ask it
        os.kill(pid, signal.SIGINT)
    rc = job.wait(120)
    check_stopped(a, tmp, path, run_dir, "SIGINT to the ranks", rc, 75)


def test_sigint_mpiexec(a, tmp):
    path, run_dir = sweep(tmp, "mpiexec")
    env = dict(HOLD, OMPI_MCA_odls_base_sigkill_timeout=SIGKILL_TIMEOUT)
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=env,
              log=os.path.join(tmp, "mpiexec.log"))
    check(held(job, run_dir, 2), "SIGINT to mpiexec: both groups hold a trial")
    job.signal(signal.SIGINT)
    rc = job.wait(120)
    check_stopped(a, tmp, path, run_dir, "SIGINT to mpiexec", rc, None, rerun=False)


def test_status_killed(a, tmp):
    path, run_dir = sweep(tmp, "killed")
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=HOLD,
              log=os.path.join(tmp, "killed.log"))
    seen = held(job, run_dir, 2)
    live = subprocess.run([a.safecl, "status", run_dir], capture_output=True, text=True)
    job.kill_all()
    p = subprocess.run([a.safecl, "status", run_dir], capture_output=True, text=True)
    out = p.stdout + p.stderr
    check(seen and "running (pid" in live.stdout,
          "status while the sweep runs: running\n" + live.stdout)
    check(p.returncode == 0 and "dead (last heartbeat" in out and "running for" not in out and
          "ETA" not in out, "status after SIGKILL: dead, no running group, no ETA\n" + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep_stop_") as tmp:
        test_status_killed(a, tmp)
        test_sigint_ranks(a, tmp)
        test_sigint_mpiexec(a, tmp)
    return finish("test_sweep_stop")


if __name__ == "__main__":
    sys.exit(main())
