"""test_sweep.py: `safecl sweep` end to end under mpiexec at --ranks N (ctest: 2, 3 and 5).

1. Scheduling and failures: a sweep of 4 good trials of two sizes and 2 broken ones (a crop the
   ViT refuses), with an injected transient I/O failure on the first attempt of every seed-2
   trial. Every good trial finishes exactly once; the broken ones are FAILED with the runner's
   message and never retried; the seed-2 trials are retried once; trials start longest expected
   first; the exit status is 3 (trials failed); status and index.h5 agree with the ledger.
2. A rerun of the same command repeats nothing: no trial starts, trial.h5 files are untouched.
   With sweep.retry_failed=true only the failed trials run again.
3. (N = 3 only) A NaN (injected SCL_ERR_NUMERIC) fails its trial at once, without a retry.
4. (N = 3 only) SIGUSR1 to mpiexec (forwarded to the ranks, as srun does) while both groups hold
   a trial (SAFECL_FAULT_TRIAL_SIGNAL=hold): both trials checkpoint at their next boundary, the
   sweep exits 75 with 2 STOPPED records; a rerun resumes and completes.
5. (N = 2 only) refusals: one rank, 2 worker ranks in groups of 3; --count, --list and --trial.
6. (N = 5 only) groups of 2 ranks (sweep.group_size = 2: two data-parallel groups): the sweep of
   1. finishes the same trials with the same numbers as groups of one; SIGUSR1 stops both
   groups at a boundary (collective checkpoints) and the rerun resumes and completes.
Exits non-zero on any failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from orch_util import (Job, all_records, check, finish, finished_trials, held, ledgers, method,
                       run_sweep, same_numbers, synthetic, tiny_overrides, trial_numbers,
                       write_sweep)


def sweep_args(path, run_dir, *more):
    return [path, "run.dir=" + run_dir] + list(more)


def test_schedule(a, tmp):
    path = write_sweep(os.path.join(tmp, "main.cfg"), "main", (
        '  datasets = ( { file = "%s"; grid = ( { key = "dataset.synthetic.classes"; '
        'values = [4, 8]; } ); },\n'
        '               { file = "%s"; overrides = ["dataset.name=broken", "dataset.crop=200"]; } );\n'
        '  methods = ["%s"];\n  seeds = [1, 2];\n  max_retries = 2;\n')
        % (synthetic(), synthetic(), method("simplecil")))
    run_dir = os.path.join(tmp, "run")
    rc, out = run_sweep(sweep_args(path, run_dir), a.ranks, a.mpiexec, a.safecl,
                        env={"SAFECL_FAULT_TRIAL_ERROR": "io:1:seed=2"},
                        log=os.path.join(tmp, "schedule.log"))
    check(rc == 3, "sweep with failing trials exits 3 (got %s)" % rc)
    if rc != 3:
        print(out[-3000:])
    recs = all_records(run_dir)
    plan = {r["id"]: r for r in recs if r["type"] == "PLAN"}
    names = {i: r["text"].split("\t") for i, r in plan.items()}
    good = [i for i, n in names.items() if n[0] == "synthetic"]
    broken = [i for i, n in names.items() if n[0] == "broken"]
    check(len(plan) == 6 and len(good) == 4 and len(broken) == 2,
          "6 trials planned: 4 good, 2 broken")
    fin = [r["id"] for r in recs if r["type"] == "FINISHED"]
    check(sorted(fin) == sorted(good), "each good trial finished exactly once")
    check(finished_trials(run_dir) == sorted(good), "trial.h5 exactly for the good trials")
    failed = {r["id"]: r for r in recs if r["type"] == "FAILED"}
    check(sorted(failed) == sorted(broken), "the broken trials FAILED")
    check(all("dataset.crop = 200" in r["text"] for r in failed.values()),
          "with the runner's message: %s" % [r["text"][:90] for r in failed.values()])
    retried = sorted(r["id"] for r in recs if r["type"] == "RETRY")
    seed2 = sorted(i for i, n in names.items() if n[2] == "2")
    check(retried == seed2, "seed-2 trials retried once after the transient failure")
    starts = [r for r in recs if r["type"] == "START"]
    broken_starts = [r for r in starts if r["id"] in broken]
    check(len(broken_starts) == 3, "broken trials: seed 1 once, seed 2 twice (transient, then "
          "ARG without retry): %d starts" % len(broken_starts))
    check(all(r["group"] < a.ranks - 1 for r in starts), "groups 0..%d used" % (a.ranks - 2))
    first = [r["id"] for r in starts if r["attempt"] == 1]
    cost = sorted(plan, key=lambda i: -plan[i]["seconds"])
    k = a.ranks - 1  # the first k dispatches go to the k groups in any order
    check(set(first[:k]) == set(cost[:k]) and (k > 1 or first == cost),
          "longest expected first: %s" % [round(plan[i]["seconds"], 2) for i in first])
    status = subprocess.run([a.safecl, "status", run_dir, "--reindex"], capture_output=True,
                            text=True)
    print(status.stdout)
    check(status.returncode == 0 and "6 total: 4 finished, 0 running, 0 pending, 2 failed" in
          status.stdout and "broken/simplecil seed=1" in status.stdout, "status agrees")
    with h5py.File(os.path.join(run_dir, "index.h5"), "r") as f:
        ids = [x.decode() for x in f["trial_id"][...]]
        st = dict(zip(ids, [x.decode() for x in f["status"][...]]))
        acc = dict(zip(ids, f["final_acc"][...]))
        seeds = sorted(set(int(x) for x in f["seed"][...]))
    check(sorted(ids) == sorted(plan) and all(st[i] == "finished" for i in good) and
          all(st[i] == "failed" for i in broken) and seeds == [1, 2] and
          all(np.isfinite(acc[i]) for i in good), "index.h5 rows, statuses, seeds, accuracies")
    return path, run_dir, good, broken


def test_rerun(a, tmp, path, run_dir, good, broken):
    before = {t: os.stat(os.path.join(run_dir, "trials", t, "trial.h5")).st_ino for t in good}
    old = set(ledgers(run_dir))
    rc, out = run_sweep(sweep_args(path, run_dir), a.ranks, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "rerun.log"))
    new = sorted(set(ledgers(run_dir)) - old)
    recs = ledgers(run_dir)[new[0]] if new else []
    check(rc == 3 and len(new) == 1, "rerun exits 3 (failed trials) with its own ledger file")
    check(not [r for r in recs if r["type"] in ("START", "FINISHED", "FAILED")],
          "rerun starts nothing: %s" % sorted(set(r["type"] for r in recs)))
    after = {t: os.stat(os.path.join(run_dir, "trials", t, "trial.h5")).st_ino for t in good}
    check(before == after, "finished trial files untouched")
    old = set(ledgers(run_dir))
    rc, out = run_sweep(sweep_args(path, run_dir, "sweep.retry_failed=true"), a.ranks, a.mpiexec,
                        a.safecl, log=os.path.join(tmp, "retry_failed.log"))
    new = sorted(set(ledgers(run_dir)) - old)
    recs = ledgers(run_dir)[new[0]] if new else []
    started = sorted(set(r["id"] for r in recs if r["type"] == "START"))
    check(rc == 3 and started == sorted(broken), "retry_failed runs only the failed trials")


def test_numeric(a, tmp):
    path = write_sweep(os.path.join(tmp, "nan.cfg"), "nan",
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2];\n'
                       % (synthetic(), method("simplecil")))
    run_dir = os.path.join(tmp, "nan")
    rc, out = run_sweep(sweep_args(path, run_dir), a.ranks, a.mpiexec, a.safecl,
                        env={"SAFECL_FAULT_TRIAL_ERROR": "numeric:99:seed=1"},
                        log=os.path.join(tmp, "nan.log"))
    recs = all_records(run_dir)
    failed = [r for r in recs if r["type"] == "FAILED"]
    check(rc == 3 and len(failed) == 1 and "non-finite" in failed[0]["text"] and
          not [r for r in recs if r["type"] == "RETRY"] and
          len([r for r in recs if r["type"] == "START" and r["id"] == failed[0]["id"]]) == 1,
          "NaN fails the trial once, no retry: %s" % [r["text"] for r in failed])
    check(len([r for r in recs if r["type"] == "FINISHED"]) == 1, "the other trial finishes")


def test_signal(a, tmp, extra=()):
    # Each group holds its first trial until its ranks have the signal (SAFECL_FAULT_TRIAL_SIGNAL=
    # hold), so both trials are certainly still running when it comes, on a machine of any speed.
    path = write_sweep(os.path.join(tmp, "long.cfg"), "long",
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2, 3];\n'
                       % (synthetic(), method("simplecil")),
                       overrides=tiny_overrides(classes=6, train=3, test=2))
    run_dir = os.path.join(tmp, "long" + "_".join(extra).replace("=", "-"))
    env = {"SAFECL_PROGRESS_INTERVAL": "0"}
    job = Job(sweep_args(path, run_dir, *extra), a.ranks, a.mpiexec, a.safecl,
              env=dict(env, SAFECL_FAULT_TRIAL_SIGNAL="hold"), log=os.path.join(tmp, "signal.log"))
    seen = held(job, run_dir, 2)
    job.signal(signal.SIGUSR1)
    rc = job.wait(120)
    recs = all_records(run_dir)
    stopped = [r for r in recs if r["type"] == "STOPPED"]
    check(seen and rc == 75, "SIGUSR1: the sweep exits 75 (got %s)" % rc)
    check(len(stopped) == 2 and any(r["type"] == "STOP" for r in recs) and
          not any(r["type"] == "FINISHED" for r in recs) and
          recs[-1]["type"] == "END" and recs[-1]["text"] == "stopped",
          "both groups' trials stopped and checkpointed (%d STOPPED), END stopped" % len(stopped))
    ckpts = [r["id"] for r in stopped
             if os.path.exists(os.path.join(run_dir, "trials", r["id"], "ckpt.h5"))]
    check(len(ckpts) == len(stopped), "each stopped trial has its ckpt.h5")
    rc, out = run_sweep(sweep_args(path, run_dir, *extra), a.ranks, a.mpiexec, a.safecl, env=env,
                        log=os.path.join(tmp, "resume.log"))
    check(rc == 0 and len(finished_trials(run_dir)) == 3 and "resuming" in out,
          "rerun resumes from the checkpoints and completes")
    fin = [r["id"] for r in all_records(run_dir) if r["type"] == "FINISHED"]
    check(sorted(fin) == sorted(set(fin)) and len(fin) == 3, "no trial finished twice")


def test_refusals(a, tmp, path, run_dir):
    p = subprocess.run([a.mpiexec, "-np", "1", a.safecl, "sweep", path, "run.dir=" + run_dir],
                       capture_output=True, text=True)
    check(p.returncode == 1 and "at least 2 ranks" in p.stderr, "one rank is refused")
    p = subprocess.run([a.mpiexec, "-np", "3", "--oversubscribe", a.safecl, "sweep", path,
                        "run.dir=" + run_dir, "sweep.group_size=3"], capture_output=True, text=True)
    check(p.returncode == 1 and "do not split into groups of 3" in p.stderr,
          "2 worker ranks in groups of 3 are refused")
    p = subprocess.run([a.safecl, "sweep", "--count", path], capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.strip() == "6", "--count: %s" % p.stdout.strip())
    p = subprocess.run([a.safecl, "sweep", "--list", path, "run.dir=" + run_dir],
                       capture_output=True, text=True)
    lines = p.stdout.strip().split("\n")
    check(p.returncode == 0 and len(lines) == 6 and sum(" finished " in x for x in lines) == 4,
          "--list shows 6 trials, 4 finished")
    p = subprocess.run([a.safecl, "sweep", "--trial", "5", path, "run.dir=" + run_dir],
                       capture_output=True, text=True)
    args = p.stdout.strip().split("\n")
    check(p.returncode == 0 and args[-1].startswith("run.dir=" + run_dir + "/trials/") and
          args[-2] == "seed=2", "--trial 5: train arguments end with seed and run.dir")
    t = subprocess.run([a.safecl, "train"] + args, capture_output=True, text=True)
    check(t.returncode != 0 and "dataset.crop = 200" in t.stderr,
          "safecl train with those arguments is trial 5 (a broken one)")


def test_groups(a, tmp, path, run_dir, good):
    """Groups of 2 ranks run the sweep of test_schedule: the same trials, the same numbers."""
    g_dir = os.path.join(tmp, "run_groups")
    rc, out = run_sweep(sweep_args(path, g_dir, "sweep.group_size=2"), a.ranks, a.mpiexec,
                        a.safecl, env={"SAFECL_FAULT_TRIAL_ERROR": "io:1:seed=2"},
                        log=os.path.join(tmp, "groups.log"))
    check(rc == 3, "sweep with sweep.group_size = 2 on %d ranks exits 3, its broken trials "
          "failed (got %s)" % (a.ranks, rc))
    if rc != 3:
        print(out[-3000:])
    recs = all_records(g_dir)
    starts = [r for r in recs if r["type"] == "START"]
    check(sorted(finished_trials(g_dir)) == sorted(good) and
          {r["group"] for r in starts} <= {0, 1},
          "groups 0 and 1 (2 ranks each) finish the 4 good trials")
    same = all(same_numbers(trial_numbers(run_dir, t), trial_numbers(g_dir, t)) for t in good)
    check(same, "each trial's numbers on a 2-rank group equal those on one rank")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_sweep_%d_" % a.ranks) as tmp:
        path, run_dir, good, broken = test_schedule(a, tmp)
        test_rerun(a, tmp, path, run_dir, good, broken)
        if a.ranks == 3:
            test_numeric(a, tmp)
            test_signal(a, tmp)
        if a.ranks == 2:
            test_refusals(a, tmp, path, run_dir)
        if a.ranks == 5:
            test_groups(a, tmp, path, run_dir, good)
            test_signal(a, tmp, ("sweep.group_size=2",))
    return finish("test_sweep (%d ranks)" % a.ranks)


if __name__ == "__main__":
    sys.exit(main())
