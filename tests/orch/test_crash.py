"""test_crash.py: what a sweep charges to a trial when a job dies, and what it runs again.

1. External kills are never charged: a one-trial sweep whose worker freezes (SIGSTOP, injected
   with SAFECL_FAULT_TRIAL_SIGNAL=stop) right after its trial started, SIGKILLed as a whole job
   from outside, three times (sweep.max_crashes = 3), before the trial's first boundary; the
   rerun finishes the trial (exit 0, trial.h5, no FAILED and no CRASHED record).
2. A real crash is charged: groups of 2 ranks, every rank of the seed-1 trial raising SIGSEGV
   (SAFECL_FAULT_TRIAL_SIGNAL=segv:seed=1); each such job dies and leaves CRASHED records of one
   attempt (one count however many ranks wrote one), the second job runs the trial again
   (sweep.max_crashes = 2), and the third job fails it with a message naming SIGSEGV while the
   seed-2 trial finishes, exit 3 (a trial failed).
3. Faults of the machine are retried by the next job: trials/ on a 256 KiB tmpfs (a RanPAC
   checkpoint's 512 KiB Gram matrix does not fit): the trial fails with "No space left on device" as a resource fault, retryable (FAILED
   count 1); with the tmpfs gone the next job runs it again and it finishes, without
   sweep.retry_failed. Bounded: with an injected resource fault on every attempt
   (SAFECL_FAULT_TRIAL_ERROR=resource) and sweep.max_retries = 1 the second job runs it again and
   the third does not. The tmpfs part is skipped where mounting is not permitted (not root).
Exits non-zero on any failure.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

from orch_util import (Job, all_records, check, descendants, finish, finished_trials, method,
                       run_sweep, synthetic, wait_for, write_sweep)


def sweep(tmp, name, body):
    return write_sweep(os.path.join(tmp, name + ".cfg"), name,
                       '  datasets = ["%s"];\n  methods = ["%s"];\n%s'
                       % (synthetic(), method("simplecil"), body))


def plan_ids(run_dir):
    """{seed: trial id} from the PLAN records."""
    return {r["text"].split("\t")[2]: r["id"] for r in all_records(run_dir) if r["type"] == "PLAN"}


def stopped(pid):
    """The process is stopped by a signal (state T in /proc/PID/stat)."""
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def of_type(run_dir, kind, tid=None):
    return [r for r in all_records(run_dir) if r["type"] == kind and (tid is None or r["id"] == tid)]


def test_external_kills(a, tmp):
    path = sweep(tmp, "kills", "  seeds = [1];\n  max_crashes = 3;\n")
    run_dir = os.path.join(tmp, "kills")
    for k in range(3):
        job = Job([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                  env={"SAFECL_FAULT_TRIAL_SIGNAL": "stop"},
                  log=os.path.join(tmp, "kill%d.log" % k))
        # the worker freezes (SIGSTOP) once its trial started, before the trial's first boundary
        started = wait_for(lambda: os.path.isdir(run_dir) and len(of_type(run_dir, "START")) > k
                           and any(stopped(pid) for pid in descendants(job.proc.pid)), 120)
        job.kill_all()
        check(started, "kill %d: SIGKILL of the whole job while its trial's worker is frozen"
              % (k + 1))
    check(not of_type(run_dir, "PROGRESS"), "no attempt reached a boundary")
    rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "kills_rerun.log"))
    tid = plan_ids(run_dir).get("1")
    check(rc == 0 and finished_trials(run_dir) == [tid],
          "after 3 external kills the rerun finishes the trial (exit %s)" % rc)
    check(not of_type(run_dir, "FAILED") and not of_type(run_dir, "CRASHED"),
          "no FAILED or CRASHED record: %s" % [r["text"] for r in of_type(run_dir, "FAILED")])
    if rc != 0 or not finished_trials(run_dir):
        print(out[-3000:])


def test_real_crash(a, tmp):
    path = sweep(tmp, "segv", "  seeds = [1, 2];\n  max_crashes = 2;\n  group_size = 2;\n")
    run_dir = os.path.join(tmp, "segv")
    for k in range(2):
        rc, out = run_sweep([path, "run.dir=" + run_dir], 3, a.mpiexec, a.safecl,
                            env={"SAFECL_FAULT_TRIAL_SIGNAL": "segv:seed=1"},
                            log=os.path.join(tmp, "segv%d.log" % k))
        ids = plan_ids(run_dir)
        crashed = of_type(run_dir, "CRASHED", ids.get("1"))
        stamps = sorted(set(r["seconds"] for r in crashed))
        check(rc not in (0, None) and len(stamps) == k + 1,
              "job %d dies of the crash and records it (exit %s, %d record(s) of %d attempt(s))"
              % (k + 1, rc, len(crashed), len(stamps)))
        check(crashed and all("SIGSEGV" in r["text"] and r["count"] == 11 for r in crashed),
              "CRASHED records name SIGSEGV: %s" % [r["text"] for r in crashed])
        if k == 0:
            print("  ranks that recorded the first crash: %d" % len(crashed))
    check(len(of_type(run_dir, "START", ids.get("1"))) == 2,
          "the second job ran the crashed trial again (one crash < max_crashes = 2)")
    rc, out = run_sweep([path, "run.dir=" + run_dir], 3, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "segv_rerun.log"))
    failed = of_type(run_dir, "FAILED", ids.get("1"))
    check(rc == 3 and len(failed) == 1 and "crashed 2 times" in failed[0]["text"] and
          "SIGSEGV" in failed[0]["text"],
          "the third job fails it naming the signal (exit %s): %s"
          % (rc, [r["text"][:160] for r in failed]))
    check(ids.get("2") in finished_trials(run_dir) and ids.get("1") not in finished_trials(run_dir),
          "the seed-2 trial finished, the crashing one did not")
    check(len(of_type(run_dir, "START", ids.get("1"))) == 2, "the third job did not run it")


def test_full_disk(a, tmp):
    # RanPAC's 256 x 256 Gram matrix (512 KiB) does not fit; its write fails in H5Dwrite
    path = write_sweep(os.path.join(tmp, "disk.cfg"), "disk",
                       '  datasets = ["%s"];\n  methods = ( { file = "%s"; overrides = '
                       '["method.rp.dim=256"]; } );\n  seeds = [1];\n  max_retries = 1;\n'
                       % (synthetic(), method("ranpac_nophase1")))
    run_dir = os.path.join(tmp, "disk")
    trials = os.path.join(run_dir, "trials")
    os.makedirs(trials)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", trials],
                      capture_output=True).returncode != 0:
        print("skip: cannot mount a tmpfs here (needs root): full-disk part not run")
        return
    try:
        rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                            log=os.path.join(tmp, "disk0.log"))
    finally:
        subprocess.run(["umount", trials])
    failed = of_type(run_dir, "FAILED")
    check(rc == 3 and len(failed) == 1 and failed[0]["count"] == 1 and
          "resource fault" in failed[0]["text"] and "No space left" in failed[0]["text"],
          "a full disk fails the trial as a resource fault, retryable (exit %s): %s"
          % (rc, [(r["count"], r["text"][:200]) for r in failed]))
    check(len(of_type(run_dir, "RETRY")) == 1, "retried once in the job (max_retries = 1)")
    rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "disk1.log"))
    check(rc == 0 and len(finished_trials(run_dir)) == 1,
          "with space again the next job runs it and it finishes (exit %s)" % rc)
    if rc != 0 or not finished_trials(run_dir):
        print(out[-3000:])


def test_bounded(a, tmp):
    path = sweep(tmp, "bound", "  seeds = [1];\n  max_retries = 1;\n")
    run_dir = os.path.join(tmp, "bound")
    env = {"SAFECL_FAULT_TRIAL_ERROR": "resource:99"}
    starts = []
    for k in range(3):
        rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl, env=env,
                            log=os.path.join(tmp, "bound%d.log" % k))
        check(rc == 3, "bounded: job %d exits 3, its trial failed (got %s)" % (k + 1, rc))
        starts.append(len(of_type(run_dir, "START")))
    check(starts == [2, 3, 3], "job 1: 2 attempts, job 2: 1 more, job 3: none (starts %s)"
          % starts)
    failed = of_type(run_dir, "FAILED")
    check(len(failed) == 2 and all(r["count"] == 1 for r in failed),
          "each giving-up job records a retryable FAILED (%d)" % len(failed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_crash_") as tmp:
        test_external_kills(a, tmp)
        test_real_crash(a, tmp)
        test_full_disk(a, tmp)
        test_bounded(a, tmp)
        if failures_seen():
            for p in sorted(glob.glob(os.path.join(tmp, "*.log"))):
                print("==== %s\n%s" % (p, open(p).read()[-1500:]))
    return finish("test_crash")


def failures_seen():
    import orch_util
    return bool(orch_util.failures)


if __name__ == "__main__":
    sys.exit(main())
