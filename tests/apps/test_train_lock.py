"""test_train_lock.py: `safecl train` takes its run.dir's lock, the one a sweep takes.

1. A first train (SAFE heads only, tiny ViT, synthetic data) holds RUN_DIR/lock; it pauses
   itself with SIGSTOP at its first step boundary (SAFECL_FAULT_PAUSE_AT_STEP=1), so it is
   still running whatever the machine's speed and the check does not depend on timing. A second train
   on the same run.dir exits 1 at once, naming the directory and the holder (host and the first
   train's pid) and writing nothing; the first one, resumed, finishes normally with its trial.h5.
2. A run.dir whose lock another process holds (as a sweep's coordinator does) is refused the
   same way, naming the holder recorded in the lock.
Exits non-zero on any failure.
"""
import argparse
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


TRIAL = ["method.name=safe", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=8", "dataset.synthetic.train_per_class=6",
         "dataset.synthetic.test_per_class=3", "dataset.init_cls=4", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=2", "train.epochs_later=1",
         "train.batch=8", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
         "eval.batch=8", "threads=1"]


def lock_text(run_dir):
    try:
        with open(os.path.join(run_dir, "lock")) as f:
            return f.read()
    except OSError:
        return ""


def stopped(pid):
    """The process is stopped (state T in /proc/PID/stat)."""
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def test_two_trains(safecl, tmp):
    run_dir = os.path.join(tmp, "run")
    log = os.path.join(tmp, "first.log")
    first = subprocess.Popen([safecl, "train"] + TRIAL + ["run.dir=" + run_dir],
                             stdout=open(log, "w"), stderr=subprocess.STDOUT,
                             env=dict(os.environ, SAFECL_FAULT_PAUSE_AT_STEP="1"))
    t0 = time.time()  # the limit only ends a hang as a failure
    while first.poll() is None and not stopped(first.pid) and time.time() - t0 < 600:
        time.sleep(0.02)
    held = stopped(first.pid) and "pid %d" % first.pid in lock_text(run_dir)
    check(held, "the first train, paused at its first step, records itself in %s/lock: %r"
          % (run_dir, lock_text(run_dir)))
    try:
        second = subprocess.run([safecl, "train"] + TRIAL + ["run.dir=" + run_dir],
                                capture_output=True, text=True, timeout=300)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
    check(second.returncode == 1, "the second train exits 1 (got %d)" % second.returncode)
    check("%s is in use" % run_dir in second.stderr and "pid %d" % first.pid in second.stderr,
          "the second train names the directory and the holder: %s" % second.stderr.strip()[-300:])
    check("trial " not in second.stderr.replace("%s is in use" % run_dir, ""),
          "the second train starts no trial")
    first.wait(timeout=600)
    out = open(log).read()
    check(first.returncode == 0, "the first train finishes normally (exit %d)" % first.returncode)
    if first.returncode:
        print(out[-3000:])
    check(os.path.exists(os.path.join(run_dir, "trial.h5")), "the first train publishes trial.h5")


def test_sweep_holds(safecl, tmp):
    run_dir = os.path.join(tmp, "swept")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "lock"), "w") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("sweep job other-job, host testhost pid %d\n" % os.getpid())
        f.flush()
        p = subprocess.run([safecl, "train"] + TRIAL + ["run.dir=" + run_dir],
                           capture_output=True, text=True, timeout=300)
    check(p.returncode == 1 and "%s is in use" % run_dir in p.stderr and
          "sweep job other-job" in p.stderr,
          "a run.dir locked by a sweep is refused naming it: %s" % p.stderr.strip()[-300:])
    check(not os.path.exists(os.path.join(run_dir, "trial.h5")), "and nothing is written")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="train_lock_") as tmp:
        test_two_trains(a.safecl, tmp)
        test_sweep_holds(a.safecl, tmp)
    if failures:
        print("test_train_lock: %d failure(s):\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("test_train_lock: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
