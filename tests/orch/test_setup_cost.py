"""test_setup_cost.py: what a sweep's setup costs per trial, counted rather than timed.

`safecl sweep --plan` of 2000 trials (20 grid values x 100 seeds, nothing run):
1. Under strace (skipped where strace is missing or cannot trace): no stat/access call names a
   path under trials/ (trials/ is listed with one readdir; there is nothing in it), and the
   2000 PLAN records reach the ledger in a few write() calls, not one each.
2. index.h5 holds the 2000 trial ids the PLAN records name, in under 200 bytes per trial
   (variable-length strings took about 340: the short columns are stored fixed-length).
3. A rerun of --plan replays those records and plans nothing new; --summary counts 2000 to run.
Exits non-zero on any failure.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py

from orch_util import all_records, check, finish, method, synthetic, write_sweep


def strace_works():
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-f", "-o", os.devnull, "true"],
                          capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_setup_") as tmp:
        seeds = ", ".join(str(s) for s in range(1, 101))
        values = ", ".join(str(v) for v in range(20))
        path = write_sweep(os.path.join(tmp, "cost.cfg"), "cost",
                           '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [%s];\n'
                           '  grid = ( { key = "dataset.order_seed"; values = [%s]; } );\n'
                           % (synthetic(), method("simplecil"), seeds, values))
        run_dir = os.path.join(tmp, "run")
        cmd = [a.safecl, "sweep", "--plan", path, "run.dir=" + run_dir]
        log = os.path.join(tmp, "strace.log")
        traced = strace_works()
        if traced:
            cmd = ["strace", "-f", "-s", "16", "-o", log, "-e",
                   "trace=stat,lstat,newfstatat,statx,access,faccessat,faccessat2,write"] + cmd
        else:
            print("skip the system call counts: strace is missing or cannot trace here")
        p = subprocess.run(cmd, capture_output=True, text=True)
        check(p.returncode == 0 and "planned 2000 trial(s)" in p.stdout,
              "--plan of 2000 trials: %s %s" % (p.stdout[-300:], p.stderr[-800:]))
        if traced:
            calls = open(log).read().splitlines()
            trial_stats = [l for l in calls if "/trials/" in l and "write(" not in l]
            plan_writes = [l for l in calls if re.search(r'write\(\d+, "[0-9a-f]{8} PLAN ', l)]
            check(len(trial_stats) == 0, "no stat/access of a trials/<id> path (%d): %s"
                  % (len(trial_stats), trial_stats[:3]))
            check(0 < len(plan_writes) <= 5,
                  "the PLAN records in %d write() call(s), not one per trial" % len(plan_writes))
        plans = [r["id"] for r in all_records(run_dir) if r["type"] == "PLAN"]
        check(len(plans) == 2000 and len(set(plans)) == 2000, "2000 PLAN records (%d)" % len(plans))
        index = os.path.join(run_dir, "index.h5")
        with h5py.File(index, "r") as f:
            ids = [x.decode() for x in f["trial_id"][...]]
            status = {x.decode() for x in f["status"][...]}
        check(sorted(ids) == sorted(plans) and status == {"pending"},
              "index.h5: the 2000 planned ids, all pending")
        size = os.path.getsize(index)
        check(size < 200 * 2000, "index.h5: %.0f bytes per trial (< 200)" % (size / 2000.0))
        p = subprocess.run([a.safecl, "sweep", "--plan", path, "run.dir=" + run_dir],
                           capture_output=True, text=True)
        again = [r for r in all_records(run_dir) if r["type"] == "PLAN"]
        check(p.returncode == 0 and len(again) == 2000,
              "a second --plan writes no PLAN record again (%d)" % len(again))
        p = subprocess.run([a.safecl, "sweep", "--summary", path, "run.dir=" + run_dir],
                           capture_output=True, text=True)
        check(p.returncode == 0 and "to_run=2000\n" in p.stdout, "--summary: %s" % p.stdout)
    return finish("test_setup_cost")


if __name__ == "__main__":
    sys.exit(main())
