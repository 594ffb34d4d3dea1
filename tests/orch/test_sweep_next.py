"""test_sweep_next.py: `safecl sweep --list/--summary` count a trial the way the next job treats it.

1. A trial failed on a fault of the machine (SAFECL_FAULT_TRIAL_ERROR=resource on every attempt
   of the seed-1 trial, sweep.max_retries = 1): after the first job --summary counts it in to_run
   and retried (not in failed), --list shows it pending with "retried" and its message, and the
   second job does run it (a START); after that job (two machine failures > max_retries) it is
   failed in --summary and --list, and the third job does not start it.
2. A trial whose process crashed sweep.max_crashes = 1 times (SAFECL_FAULT_TRIAL_SIGNAL=segv on
   the seed-1 trial): --summary counts it failed, --list says why, and the next job fails it
   without starting it.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

from orch_util import (all_records, check, finish, method, run_sweep, synthetic, write_sweep)


def sweep(tmp, name, body):
    return write_sweep(os.path.join(tmp, name + ".cfg"), name,
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2];\n%s'
                       % (synthetic(), method("simplecil"), body))


def seed1_id(run_dir):
    return {r["text"].split("\t")[2]: r["id"] for r in all_records(run_dir)
            if r["type"] == "PLAN"}.get("1")


def starts(run_dir, tid):
    return len([r for r in all_records(run_dir) if r["type"] == "START" and r["id"] == tid])


def info(a, path, run_dir):
    """(--summary as a dict, the --list line of the seed-1 trial)."""
    args = [path, "run.dir=" + run_dir]
    p = subprocess.run([a.safecl, "sweep", "--summary"] + args, capture_output=True, text=True)
    summary = dict(l.split("=", 1) for l in p.stdout.split("\n") if "=" in l)
    p2 = subprocess.run([a.safecl, "sweep", "--list"] + args, capture_output=True, text=True)
    tid = seed1_id(run_dir)
    line = [l for l in p2.stdout.split("\n") if tid and (" %s " % tid) in l]
    check(p.returncode == 0 and p2.returncode == 0 and len(line) == 1,
          "--summary and --list run (rc %d, %d): %s%s" % (p.returncode, p2.returncode,
                                                           p.stderr[-800:], p2.stderr[-800:]))
    return summary, line[0] if line else ""


def test_resource(a, tmp):
    path = sweep(tmp, "res", "  max_retries = 1;\n")
    run_dir = os.path.join(tmp, "res")
    env = {"SAFECL_FAULT_TRIAL_ERROR": "resource:99:seed=1"}
    rc, _ = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl, env=env,
                      log=os.path.join(tmp, "res0.log"))
    tid = seed1_id(run_dir)
    check(rc == 3 and starts(run_dir, tid) == 2, "job 1: the seed-1 trial fails twice (exit %s)"
          % rc)
    summary, line = info(a, path, run_dir)
    check(summary.get("to_run") == "1" and summary.get("failed") == "0" and
          summary.get("retried") == "1",
          "after job 1: to_run=1 failed=0 retried=1, the next job runs it: %s" % summary)
    check(" pending " in line and "retried" in line and "fault injection: resource" in line,
          "--list: pending, retried, with its message: %s" % line)
    before = starts(run_dir, tid)
    rc, _ = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl, env=env,
                      log=os.path.join(tmp, "res1.log"))
    check(rc == 3 and starts(run_dir, tid) > before, "job 2 runs it as --summary said (exit %s)"
          % rc)
    summary, line = info(a, path, run_dir)
    check(summary.get("to_run") == "0" and summary.get("failed") == "1" and
          summary.get("retried") == "0",
          "after job 2 (2 faults > max_retries = 1): to_run=0 failed=1: %s" % summary)
    check(" failed " in line and "fault injection: resource" in line and "retried" not in line,
          "--list: failed, with its message: %s" % line)
    before = starts(run_dir, tid)
    rc, _ = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl, env=env,
                      log=os.path.join(tmp, "res2.log"))
    check(rc == 3 and starts(run_dir, tid) == before, "job 3 does not run it (exit %s)" % rc)


def test_crashed(a, tmp):
    path = sweep(tmp, "crash", "  max_crashes = 1;\n")
    run_dir = os.path.join(tmp, "crash")
    rc, _ = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                      env={"SAFECL_FAULT_TRIAL_SIGNAL": "segv:seed=1"},
                      log=os.path.join(tmp, "crash0.log"))
    tid = seed1_id(run_dir)
    crashed = [r for r in all_records(run_dir) if r["type"] == "CRASHED" and r["id"] == tid]
    check(rc not in (0, None) and crashed, "the job dies of the crash and records it (exit %s)"
          % rc)
    summary, line = info(a, path, run_dir)
    check(summary.get("failed") == "1" and summary.get("retried") == "0",
          "after the crash (max_crashes = 1): failed=1: %s" % summary)
    check(" failed " in line and "max_crashes" in line and "SIGSEGV" in line,
          "--list: failed, crashed, naming the signal: %s" % line)
    before = starts(run_dir, tid)
    rc, _ = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                      log=os.path.join(tmp, "crash1.log"))
    check(rc == 3 and starts(run_dir, tid) == before,
          "the next job fails it without starting it, as --summary said (exit %s)" % rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_next_") as tmp:
        test_resource(a, tmp)
        test_crashed(a, tmp)
        import orch_util
        if orch_util.failures:
            for n in sorted(os.listdir(tmp)):
                if n.endswith(".log"):
                    print("==== %s\n%s" % (n, open(os.path.join(tmp, n)).read()[-2000:]))
    return finish("test_sweep_next")


if __name__ == "__main__":
    sys.exit(main())
