"""test_sweep_plan.py: planning a sweep, under mpiexec at --ranks N (ctest: 2).
1. Bad datasets fail only their own trials: a sweep over the synthetic benchmark and two
   unreadable datasets (a missing directory, a damaged packed file) lists the bad trials as
   failed with the dataset's message (--list, --summary's failed=, --count), then runs: the good
   trials finish, each bad one is FAILED once in the ledger with the message naming its root,
   `safecl status` counts them with their messages, and the exit status is 3 (as for any trial
   failed for good).
2. The cap: a grid of 10^8 trials, and one of 10^20 (beyond int64), are refused by --count and by
   the sweep itself with a message naming the sweep file, the size and sweep.max_trials, before
   anything is planned; sweep.max_trials=N raises the cap.
3. A sweep of 10^5 trials (100 seeds x 1000 grid values) plans for --count and --summary.
4. The ids of a sweep's seeds, identified together, are those each seed gets alone.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

from orch_util import all_records, check, finish, method, run_sweep, synthetic, write_sweep


def safecl(a, args, timeout=600):
    try:
        p = subprocess.run([a.safecl, "sweep"] + args, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "no answer in %d s" % timeout
    return p.returncode, p.stdout, p.stderr


def bad_datasets(tmp):
    """A missing folder root and a packed file cut short (its root is a regular file)."""
    missing = os.path.join(tmp, "no_such_dataset")
    packed = os.path.join(tmp, "damaged.h5")
    with open(packed, "wb") as f:  # an HDF5 signature and superblock start, then nothing
        f.write(b"\x89HDF\r\n\x1a\n" + bytes(40))
    entries = []
    for root in (missing, packed):
        entries.append('{ file = "%s"; overrides = ["dataset.format=folder", "dataset.root=%s",'
                       ' "dataset.name=bad"]; }' % (synthetic(), root))
    return (missing, packed), entries


def test_bad_datasets(a, tmp):
    roots, entries = bad_datasets(tmp)
    path = write_sweep(os.path.join(tmp, "bad.cfg"), "bad_datasets",
                       '  datasets = ( "%s", %s );\n  methods = ["%s"];\n  seeds = [1, 2];\n'
                       % (synthetic(), ", ".join(entries), method("simplecil")))
    rc, out, err = safecl(a, ["--list", path])
    lines = out.splitlines()
    bad = [l for l in lines if " bad/" in l]
    check(rc == 0 and len(lines) == 6 and len(bad) == 4, "--list plans 6 trials, 4 of them bad "
          "(rc %d): %s %s" % (rc, out, err[-2000:]))
    check(all(" failed " in l for l in bad) and
          sum(roots[0] in l for l in bad) == 2 and sum(roots[1] in l for l in bad) == 2,
          "--list: each bad trial is failed with its dataset's message")
    check(all(" pending " in l for l in lines if " synthetic/" in l), "--list: good ones pending")
    rc, out, err = safecl(a, ["--summary", path])
    check(rc == 0 and "trials=6\n" in out and "to_run=2\n" in out and "failed=4\n" in out and
          roots[0] in err, "--summary: 2 to run, 4 failed, the messages on stderr: %s" % out)
    rc, out, err = safecl(a, ["--count", path])
    check(rc == 0 and out == "6\n", "--count: 6 (rc %d): %s" % (rc, out))

    run_dir = os.path.join(tmp, "run_bad")
    rc, out = run_sweep([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "bad.log"), timeout=300)
    recs = all_records(run_dir)
    finished = [r for r in recs if r["type"] == "FINISHED"]
    failed = [r for r in recs if r["type"] == "FAILED"]
    check(rc == 3, "the sweep exits 3 with trials failed for good (got %s)" % rc)
    check(len(finished) == 2 and len({r["id"] for r in finished}) == 2,
          "both good trials finish: %d FINISHED" % len(finished))
    check(len(failed) == 4 and len({r["id"] for r in failed}) == 4 and
          sum(roots[0] in r["text"] for r in failed) == 2 and
          sum(roots[1] in r["text"] for r in failed) == 2,
          "each bad trial is FAILED once, with its dataset's message: %s"
          % [r["text"][:120] for r in failed])
    check(not [r for r in recs if r["type"] == "START" and r["id"] in {f["id"] for f in failed}],
          "no bad trial is started")
    status = subprocess.run([a.safecl, "status", run_dir], capture_output=True, text=True)
    check(status.returncode == 0 and "6 total: 2 finished, 0 running, 0 pending, 4 failed" in
          status.stdout and roots[0] in status.stdout and roots[1] in status.stdout,
          "status counts them and shows their messages: %s" % status.stdout[-1500:])
    if rc != 0 or len(finished) != 2:
        print(out[-3000:])


def grid_sweep(tmp, name, axes, values, extra=""):
    """A sweep of `axes` grid axes of `values` values each; the first two axes set different
    keys (beyond two, trials repeat: those sweeps are refused before they are expanded)."""
    keys = ["dataset.order_seed", "backbone.seed"]
    grid = ", ".join('{ key = "%s"; values = [%s]; }'
                     % (keys[min(k, 1)], ", ".join(str(1000 * k + v) for v in range(values)))
                     for k in range(axes))
    return write_sweep(os.path.join(tmp, name + ".cfg"), name,
                       '  datasets = ["%s"];\n  methods = ["%s"];\n  grid = ( %s );\n%s'
                       % (synthetic(), method("simplecil"), grid, extra))


def test_cap(a, tmp):
    path = grid_sweep(tmp, "huge", 4, 100)  # 10^8 trials
    rc, out, err = safecl(a, ["--count", path], timeout=120)
    check(rc == 1 and path in err and "100000000 trials" in err and "sweep.max_trials = 100000"
          in err, "--count refuses 10^8 trials, naming the file, size and key (rc %s): %s"
          % (rc, err[-1500:]))
    rc, out, err = safecl(a, ["--summary", path, "sweep.max_trials=99999999"], timeout=120)
    check(rc == 1 and "sweep.max_trials = 99999999" in err, "the key set on the command line")
    run_dir = os.path.join(tmp, "run_huge")
    rc, out = run_sweep([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "huge.log"), timeout=120)
    check(rc == 1 and "100000000 trials" in out and "sweep.max_trials" in out,
          "the sweep refuses it and exits 1 (got %s): %s" % (rc, out[-1500:]))
    path = grid_sweep(tmp, "overflow", 10, 100)  # 10^20: beyond int64
    rc, out, err = safecl(a, ["--count", path], timeout=120)
    check(rc == 1 and "more than 9.2e18 trials" in err, "10^20 trials: refused, no overflow: %s"
          % err[-800:])
    path = grid_sweep(tmp, "small", 2, 4, "  seeds = [1, 2];\n")  # 32 trials
    rc, out, err = safecl(a, ["--count", path, "sweep.max_trials=31"])
    check(rc == 1 and "32 trials" in err, "32 trials over a cap of 31: refused")
    rc, out, err = safecl(a, ["--count", path, "sweep.max_trials=32"])
    check(rc == 0 and out == "32\n", "32 trials within a cap of 32: %s %s" % (out, err[-800:]))


def test_large(a, tmp):
    seeds = ", ".join(str(s) for s in range(1, 101))
    path = grid_sweep(tmp, "large", 1, 1000, "  seeds = [%s];\n" % seeds)  # 10^5 trials
    rc, out, err = safecl(a, ["--count", path])
    check(rc == 0 and out == "100000\n", "--count of 10^5 trials: %s %s" % (out, err[-800:]))
    rc, out, err = safecl(a, ["--summary", path])
    check(rc == 0 and "trials=100000\n" in out and "to_run=100000\n" in out,
          "--summary of 10^5 trials: %s %s" % (out, err[-800:]))


def test_identities(a, tmp):
    """Seeds identified from one rewritten dump (run_plan_identities) have the ids each seed
    gets alone (a sweep of one seed computes its identity in full)."""
    path = grid_sweep(tmp, "ids", 1, 2, "  seeds = [1, 2, 3, 4, 5];\n")
    rc, out, err = safecl(a, ["--list", path])
    together = sorted(l.split()[1] for l in out.splitlines())
    alone = []
    for seed in range(1, 6):
        rc1, out1, _ = safecl(a, ["--list", path, "sweep.seeds=%d" % seed])
        rc = rc or rc1
        alone += [l.split()[1] for l in out1.splitlines()]
    check(rc == 0 and len(together) == 10 and together == sorted(alone),
          "5 seeds x 2 grid values: the same 10 ids as each seed alone")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_sweep_plan_") as tmp:
        test_bad_datasets(a, tmp)
        test_cap(a, tmp)
        test_large(a, tmp)
        test_identities(a, tmp)
    return finish("test_sweep_plan (%d ranks)" % a.ranks)


if __name__ == "__main__":
    sys.exit(main())
