"""test_setup_fail.py: `safecl sweep` whose coordinator cannot set up its run directory, under
mpiexec at --ranks N (ctest: 3). Each case must print its message and end every rank cleanly with
exit status 1 (the workers are told to exit), never with a signal:
1. the run directory is locked by another process (the holder recorded in RUN_DIR/lock is named);
2. run.dir is a regular file (the run directory cannot be created);
3. a read-only run directory (chattr +i; skipped with a message where chattr is not permitted):
   the lock is taken, then the ledger cannot be created.
Exits non-zero on any failure.
"""
import argparse
import fcntl
import os
import subprocess
import sys
import tempfile

from orch_util import check, finish, method, run_sweep, synthetic, write_sweep


def clean_exit(rc, out, what, message):
    check(rc == 1, "%s: exit status 1 (got %s)" % (what, rc))
    check(message in out, "%s: the message names the cause ('%s')" % (what, message))
    crashed = [w for w in ("signal 11", "Segmentation", "SIGSEGV", "exited on signal")
               if w in out]
    check(not crashed, "%s: no rank dies on a signal %s" % (what, crashed))
    if rc != 1 or crashed or message not in out:
        print(out[-3000:])


def sweep(a, tmp, path, run_dir, name):
    return run_sweep([path, "run.dir=" + run_dir], a.ranks, a.mpiexec, a.safecl,
                     log=os.path.join(tmp, name + ".log"), timeout=120)


def test_locked(a, tmp, path):
    run_dir = os.path.join(tmp, "locked")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "lock"), "w") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("sweep job other-job, host testhost pid %d\n" % os.getpid())
        f.flush()
        rc, out = sweep(a, tmp, path, run_dir, "locked")
    clean_exit(rc, out, "locked run directory", "is in use by another safecl sweep or train")
    check("other-job" in out and "pid %d" % os.getpid() in out,
          "locked run directory: the holder is named")


def test_file(a, tmp, path):
    run_dir = os.path.join(tmp, "a_file")
    with open(run_dir, "w") as f:
        f.write("not a directory\n")
    rc, out = sweep(a, tmp, path, run_dir, "file")
    clean_exit(rc, out, "run.dir is a regular file", run_dir)


def test_read_only(a, tmp, path):
    run_dir = os.path.join(tmp, "read_only")
    os.makedirs(os.path.join(run_dir, "trials"))
    open(os.path.join(run_dir, "lock"), "w").close()
    if subprocess.run(["chattr", "+i", run_dir], capture_output=True).returncode != 0:
        print("skip read-only run directory: chattr +i is not permitted here")
        return
    try:
        try:
            open(os.path.join(run_dir, "probe"), "w").close()
            print("skip read-only run directory: chattr +i did not make it read-only")
            return
        except OSError:
            pass
        rc, out = sweep(a, tmp, path, run_dir, "read_only")
        clean_exit(rc, out, "read-only run directory", run_dir + "/ledger.")
    finally:
        subprocess.run(["chattr", "-i", run_dir])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_setup_fail_") as tmp:
        path = write_sweep(os.path.join(tmp, "s.cfg"), "setup_fail",
                           '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1];\n'
                           % (synthetic(), method("simplecil")))
        test_locked(a, tmp, path)
        test_file(a, tmp, path)
        test_read_only(a, tmp, path)
    return finish("test_setup_fail (%d ranks)" % a.ranks)


if __name__ == "__main__":
    sys.exit(main())
