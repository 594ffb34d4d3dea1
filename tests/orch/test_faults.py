"""test_faults.py: crash-proof sweeps. A small sweep (SimpleCIL and RanPAC, two seeds, four
sessions each) is run once without interruption as the reference. The same sweep is then run
again and again in another run directory, each run SIGKILLed as a whole (mpiexec and every rank
at once) at a random moment, some runs with a torn record appended to the ledger afterwards (a
writer killed mid-append), one run with a rank killing itself right after a checkpoint
(SAFECL_FAULT_KILL_AFTER_SESSION: Open MPI then aborts the job), until a run completes. All runs
share one job id, so they append to one ledger file like a requeued SLURM job.

Checks: the interrupted directory ends with the same trials as the reference and identical
numbers (accuracy matrices, per-session accuracies, class orders, final/average/forgetting); each
trial has exactly one FINISHED record and its trial.h5 was never replaced once it appeared; torn
tails were cut; no temporary files are left. Exits non-zero on any failure.
With --group-size G both sweeps run every trial data-parallel on groups of G ranks, so kills also
land inside collective checkpoints and group-wide steps.
"""
import argparse
import glob
import os
import random
import sys
import tempfile
import time

from orch_util import (Job, all_records, check, failures, finish, finished_trials, method,
                       run_sweep, same_numbers, synthetic, tiny_overrides, trial_numbers,
                       write_sweep)


def make_sweep(tmp):
    body = ('  datasets = ["%s"];\n'
            '  methods = ( "%s", { file = "%s"; overrides = ["method.rp.dim=256"]; } );\n'
            '  seeds = [1, 2];\n  max_crashes = 1000;\n'
            % (synthetic(), method("simplecil"), method("ranpac_nophase1")))
    return write_sweep(os.path.join(tmp, "faults.cfg"), "faults", body,
                       overrides=tiny_overrides(classes=8, train=3, test=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--group-size", type=int, default=1)
    a = ap.parse_args()
    groups = ["sweep.group_size=%d" % a.group_size]
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory(prefix="orch_faults_") as tmp:
        path = make_sweep(tmp)
        ref_dir = os.path.join(tmp, "reference")
        t0 = time.time()
        rc, out = run_sweep([path, "run.dir=" + ref_dir] + groups, a.ranks, a.mpiexec, a.safecl,
                            log=os.path.join(tmp, "reference.log"))
        span = time.time() - t0
        ref = finished_trials(ref_dir)
        check(rc == 0 and len(ref) == 4, "reference run: 4 trials in %.1f s" % span)
        run_dir = os.path.join(tmp, "faulty")
        env = {"SLURM_JOB_ID": "faults", "SAFECL_PROGRESS_INTERVAL": "0"}
        inodes, torn = {}, 0
        for k in range(a.kills + 1):
            last = k == a.kills
            e = dict(env)
            if k == 2:
                e["SAFECL_FAULT_KILL_AFTER_SESSION"] = "2"
            job = Job([path, "run.dir=" + run_dir] + groups, a.ranks, a.mpiexec, a.safecl, env=e,
                      log=os.path.join(tmp, "run%d.log" % k))
            if last or k == 2:
                rc = job.wait(300)
                print("run %d: %s, exit %s" % (k, "self-kill after session 2" if k == 2 else
                                               "to completion", rc))
            else:
                delay = rng.uniform(0.2, span * 0.8)
                time.sleep(delay)
                job.kill_all()
                print("run %d: SIGKILL after %.2f s" % (k, delay))
            for t in finished_trials(run_dir):
                ino = os.stat(os.path.join(run_dir, "trials", t, "trial.h5")).st_ino
                check(inodes.setdefault(t, ino) == ino, "trial %s never republished" % t[:12])
            if not last and k % 2 == 1:
                with open(os.path.join(run_dir, "ledger.faults.log"), "ab") as f:
                    f.write(b"0badc0de FINISHED 1 " + b"f" * 32)  # torn: no newline
                torn += 1
        check(rc == 0, "the last run completes")
        got = finished_trials(run_dir)
        check(got == ref, "same trials as the uninterrupted run")
        same = [t for t in ref if t in got and
                same_numbers(trial_numbers(ref_dir, t), trial_numbers(run_dir, t))]
        check(len(same) == len(ref), "identical numbers for %d/%d trials" % (len(same), len(ref)))
        recs = all_records(run_dir)
        fin = [r["id"] for r in recs if r["type"] == "FINISHED"]
        check(sorted(fin) == ref, "exactly one FINISHED record per trial (%d records)" % len(fin))
        jobs = [r for r in recs if r["type"] == "JOB"]
        check(2 <= len(jobs) <= a.kills + 1, "%d job starts in one ledger file (a kill during "
              "planning comes before the JOB record)" % len(jobs))
        raw = open(os.path.join(run_dir, "ledger.faults.log"), "rb").read()
        check(raw.endswith(b"\n") and raw.count(b"0badc0de") == 0 and torn > 0,
              "%d torn tails were cut" % torn)
        left = glob.glob(os.path.join(run_dir, "trials", "*", "*.tmp.*"))
        check(not left, "no temporary files left: %s" % left)
        resumed = sum(open(p).read().count("resuming") for p in
                      glob.glob(os.path.join(tmp, "run*.log")))
        print("trials resumed from a checkpoint: %d times" % resumed)
        if failures:  # the runs' own words, before the temporary directory goes
            for log in sorted(glob.glob(os.path.join(tmp, "*.log"))):
                lines = open(log, errors="replace").read().splitlines()
                print("---- %s (last 25 of %d lines)" % (os.path.basename(log), len(lines)))
                print("\n".join(lines[-25:]))
    return finish("test_faults")


if __name__ == "__main__":
    sys.exit(main())
