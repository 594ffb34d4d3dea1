"""test_sweep_stop.py: Ctrl-C on `mpiexec ... safecl sweep`, and `safecl status` on a sweep whose
job was killed. 3 ranks (a coordinator and two groups of one), a sweep of 3 tiny SimpleCIL trials
of 7 sessions each; every signal is sent once the ledger shows a trial running (a PROGRESS
record), so no check depends on timing.

1. SIGINT to the ranks (a terminal's Ctrl-C reaches every process of the foreground job; srun
   forwards it to every task): the coordinator stops the sweep as for SIGUSR1: running trials
   checkpoint at their next boundary and are recorded STOPPED, never FAILED, the ledger ends
   "stopped", mpiexec exits 75; the rerun resumes and finishes every trial.
2. SIGINT to mpiexec, as Ctrl-C on an interactive `mpirun` delivers it: Open MPI 4.1 waits
   odls_base_sigkill_timeout seconds (default 1), sends SIGTERM to every rank, waits as long
   again and sends SIGKILL. With the timeout at 3 s (OMPI_MCA_odls_base_sigkill_timeout, as the
   README says to raise it) the SIGTERM stops the sweep the same way (STOPPED, END stopped; the
   ranks exit 75, mpiexec itself 1), and the rerun finishes every trial. The trials here have
   15 sessions of 60 training images, so they are still running when the SIGTERM comes.
3. SIGKILL to the whole job while a trial runs: `safecl status` says the job is dead (its last
   heartbeat; its lock released, or its pid gone), shows no group as running and no ETA.
Exits non-zero on any failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile

from orch_util import (Job, all_records, check, descendants, finish, finished_trials, method,
                       run_sweep, synthetic, tiny_overrides, wait_for, write_sweep)

ENV = {"SAFECL_PROGRESS_INTERVAL": "0"}


def sweep(tmp, name, classes=14, train=3):
    path = write_sweep(os.path.join(tmp, name + ".cfg"), name,
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2, 3];\n'
                       % (synthetic(), method("simplecil")),
                       overrides=tiny_overrides(classes=classes, train=train, test=2))
    return path, os.path.join(tmp, name)


def started(run_dir):
    return any(r["type"] == "PROGRESS" for r in all_records(run_dir))


def safecl_pids(job, safecl):
    out = []
    for pid in descendants(job.proc.pid):
        try:
            if os.readlink("/proc/%d/exe" % pid) == os.path.realpath(safecl):
                out.append(pid)
        except OSError:
            pass
    return out


def check_stopped(a, tmp, path, run_dir, what, rc, want_rc):
    recs = all_records(run_dir)
    stopped = [r for r in recs if r["type"] == "STOPPED"]
    failed = [r for r in recs if r["type"] == "FAILED"]
    check(rc == want_rc if want_rc is not None else rc not in (0, None),
          "%s: mpiexec exits %s (got %s)" % (what, want_rc or "non-zero", rc))
    check(len(stopped) >= 1 and not failed and recs and recs[-1]["type"] == "END" and
          recs[-1]["text"] == "stopped",
          "%s: running trials STOPPED (%d), none FAILED, END stopped" % (what, len(stopped)))
    ckpts = [r["id"] for r in stopped
             if os.path.exists(os.path.join(run_dir, "trials", r["id"], "ckpt.h5"))]
    check(len(ckpts) == len(stopped), "%s: each stopped trial has its ckpt.h5" % what)
    rc, out = run_sweep([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=ENV,
                        log=os.path.join(tmp, what.split()[0] + "_rerun.log"))
    check(rc == 0 and len(finished_trials(run_dir)) == 3 and "resuming" in out,
          "%s: the rerun resumes and finishes all 3 trials (rc %s)" % (what, rc))


def test_sigint_ranks(a, tmp):
    path, run_dir = sweep(tmp, "ranks")
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=ENV,
              log=os.path.join(tmp, "ranks.log"))
    seen = wait_for(lambda: started(run_dir), 120)
    pids = safecl_pids(job, a.safecl)
    check(seen and len(pids) == a.ranks, "SIGINT to the ranks: %d ranks found" % len(pids))
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    rc = job.wait(120)
    check_stopped(a, tmp, path, run_dir, "SIGINT to the ranks", rc, 75)


def test_sigint_mpiexec(a, tmp):
    # Each trial must outlast the signal's way to the ranks (SIGINT, the timeout, SIGTERM) on an
    # idle machine too: 15 sessions of 2 x 30 training images take several seconds, the timeout 3.
    path, run_dir = sweep(tmp, "mpiexec", classes=30, train=30)
    env = dict(ENV, OMPI_MCA_odls_base_sigkill_timeout="3")
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=env,
              log=os.path.join(tmp, "mpiexec.log"))
    seen = wait_for(lambda: started(run_dir), 120)
    check(seen, "SIGINT to mpiexec: a trial runs")
    job.signal(signal.SIGINT)
    rc = job.wait(120)
    check_stopped(a, tmp, path, run_dir, "SIGINT to mpiexec", rc, None)


def test_status_killed(a, tmp):
    path, run_dir = sweep(tmp, "killed")
    job = Job([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl, env=ENV,
              log=os.path.join(tmp, "killed.log"))
    seen = wait_for(lambda: started(run_dir), 120)
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
