"""test_train_stop.py: graceful stops of `safecl train` with real signals, and `safecl status` on
a train's run.dir.

A tiny SAFE trial (heads only, tiny ViT, synthetic data: 2 sessions of 2 epochs of 8 steps, so
18 step boundaries per session: 8 steps and an epoch end per epoch). Every signal is sent while
the trial is paused at a known step boundary (SAFECL_FAULT_PAUSE_AT_STEP: the process stops
itself with SIGSTOP after the boundary's stop decision), then the trial is resumed with SIGCONT,
so where the signal lands does not depend on how fast the machine is; no check depends on how
long anything takes.
1. One rank, SIGINT while paused at boundary 3 (of 18 in session 1): exit 75 and one line "stopped by SIGINT ... rerun the same command to
   resume: safecl train ..."; the checkpoint is inside a session (position_epoch >= 0); status
   says "running" while it ran and "not running (ended ...)" with the checkpoint after; the rerun
   resumes ("resuming session") and ends with numbers bit-identical to an uninterrupted run;
   status then says "finished".
2. Double SIGINT (paused at boundaries 20 and 21, in session 2: the first SIGINT at 20, the
   second at 21, where the first one's stop has been decided and its checkpoint is still
   unwritten; both go to the main thread, which runs the handler before the paused code goes on):
   the process dies of SIGINT at once (status 130 in a shell), ckpt.h5 is still a whole checkpoint of this
   trial, status shows the job dead (pid gone), and the rerun resumes from it and ends
   bit-identical, removing a killed write's ckpt.h5.tmp.<pid> (and no other file).
3. A group of 2 ranks under mpiexec, both paused at boundary 3: SIGTERM sent to the ranks (as srun/scancel and the batch
   system do) and SIGUSR1 sent to mpiexec (which forwards it) both stop every rank at the same
   step boundary (the collective checkpoint completes), mpiexec exits 75, and each rerun ends
   bit-identical to the group's uninterrupted run. (SIGINT or SIGTERM to mpiexec itself makes
   Open MPI 4 send SIGTERM to the ranks and SIGKILL one second later; README "Stopping and
   resuming".)
4. status on an empty directory and on a missing one: exit 2 with a message naming it; on a
   train whose lock another host holds (the kernel's lock held by this test) "running"; on one
   whose lock nobody holds and whose heartbeat is 12 minutes old "dead (last heartbeat 12 min
   ago".
Exits non-zero on any failure.
"""
import argparse
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "orch"))
from orch_util import bitwise_equal, train_numbers  # noqa: E402

failures = []

TRIAL = ["method.name=safe", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=4", "dataset.synthetic.train_per_class=8",
         "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=2", "train.epochs_later=2",
         "train.batch=2", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
         "eval.batch=8", "threads=1"]


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)



PAUSED = "fault injection: pausing the process (SIGSTOP)"
LIBC = ctypes.CDLL(None, use_errno=True)
SYS_TGKILL = 234  # x86-64


def wait_for(pred, proc, timeout=600):
    """Polls pred until it holds or proc ends; the timeout only ends a hang as a failure."""
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def stopped(pid):
    """The process is stopped (state T in /proc/PID/stat)."""
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def signal_main_thread(pid, sig):
    """sig to the main thread of pid (tgkill): a paused process handles it when SIGCONT wakes it,
    before its main thread runs on (a signal to the process may go to any of its threads)."""
    if LIBC.syscall(SYS_TGKILL, pid, pid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill %d" % pid)


def resume(pids):
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Train:
    """safecl train (or mpiexec -np N safecl train) in its own session, its output in a file."""

    def __init__(self, a, run_dir, log, ranks=0, pause=""):
        cmd = [a.safecl, "train"] + TRIAL + ["run.dir=" + run_dir]
        if ranks:
            cmd = [a.mpiexec, "-np", str(ranks), "--oversubscribe"] + cmd
        env = dict(os.environ)
        if pause:
            env["SAFECL_FAULT_PAUSE_AT_STEP"] = pause
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)

    def paused(self, pids, count):
        """Every pid stopped at its count-th pause (each logs one line per pause)."""
        return wait_for(lambda: read(self.log).count(PAUSED) >= count * len(pids) and
                        all(stopped(p) for p in pids), self.proc)

    def wait(self):
        try:
            return self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def output(self):
        return read(self.log)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def status(a, d):
    p = run([a.safecl, "status", d])
    return p.returncode, p.stdout + p.stderr


def ckpt_position(run_dir):
    with h5py.File(os.path.join(run_dir, "ckpt.h5"), "r") as f:
        tid = f.attrs["trial_id"]  # fixed-length in checkpoints: h5py gives bytes
        tid = tid.decode() if isinstance(tid, bytes) else str(tid)
        return (tid, int(f.attrs["sessions_done"]),
                int(f.attrs["position_epoch"]), int(f.attrs["position_batch"]))


def rerun(a, run_dir, log, ref, what, ranks=0):
    t = Train(a, run_dir, log, ranks)
    rc = t.wait()
    out = t.output()
    check(rc == 0 and "resuming" in out, "%s: the rerun resumes and finishes (rc %s)" % (what, rc))
    if rc == 0:
        check(bitwise_equal(train_numbers(run_dir), ref),
              "%s: the resumed trial is bit-identical to the uninterrupted one" % what)


def test_sigint(a, tmp, ref):
    d = os.path.join(tmp, "sigint")
    t = Train(a, d, os.path.join(tmp, "sigint.log"), pause="3")
    seen = t.paused([t.proc.pid], 1)
    rc_run, st_run = status(a, d)
    check(seen and rc_run == 0 and "state: running (pid %d" % t.proc.pid in st_run,
          "status while it trains (paused at step boundary 3): running, with its pid\n" + st_run)
    # What Ctrl-C sends: to the process, so any thread may run the handler; the trial stops at
    # the next boundary whose decision sees the flag, one of the 15 left in session 1.
    os.kill(t.proc.pid, signal.SIGINT)
    resume([t.proc.pid])
    rc = t.wait()
    out = t.output()
    lines = [x for x in out.splitlines() if "stopped by SIGINT" in x]
    check(rc == 75, "SIGINT: exit 75 (got %s)" % rc)
    check(len(lines) == 1 and "rerun the same command to resume: safecl train " in lines[0] and
          "run.dir=" + d in lines[0], "one line names the stop and the command: %r" % lines)
    tid, done, epoch, batch = ckpt_position(d)
    check(done == 0 and epoch >= 0 and batch >= 0,
          "the checkpoint is at a step boundary inside session 1 (%d, %d, %d)" % (done, epoch,
                                                                                   batch))
    rc_st, st = status(a, d)
    check(rc_st == 0 and "not running (ended" in st and "rerun the same command" in st and
          "in session 1/2 at epoch %d" % (epoch + 1) in st and tid in st,
          "status after the stop: ended, where the checkpoint is\n" + st)
    rerun(a, d, os.path.join(tmp, "sigint_rerun.log"), ref, "SIGINT")
    rc_st, st = status(a, d)
    check(rc_st == 0 and "state: finished" in st, "status after the rerun: finished\n" + st)


def pending(pid, sig):
    """sig pending for the process or its main thread (/proc: SigPnd, ShdPnd masks)."""
    bit = 1 << (sig - 1)
    try:
        text = open("/proc/%d/status" % pid).read()
    except OSError:
        return False
    return any(int(line.split()[1], 16) & bit for line in text.splitlines()
               if line.startswith(("SigPnd:", "ShdPnd:")))


def test_double_sigint(a, tmp, ref):
    d = os.path.join(tmp, "double")
    t = Train(a, d, os.path.join(tmp, "double.log"), pause="20,21")
    first = t.paused([t.proc.pid], 1)
    check(first and os.path.exists(os.path.join(d, "ckpt.h5")),
          "double SIGINT: paused at step boundary 20 (session 2), session 1's checkpoint written")
    signal_main_thread(t.proc.pid, signal.SIGINT)
    resume([t.proc.pid])  # the handler runs now; boundary 21 decides the stop and pauses
    second = t.paused([t.proc.pid], 2)
    check(second and "stopped by" not in t.output(),
          "double SIGINT: paused again at boundary 21, the stop decided, its checkpoint unwritten")
    signal_main_thread(t.proc.pid, signal.SIGINT)
    resume([t.proc.pid])
    rc = t.wait()
    check(rc == -signal.SIGINT, "double SIGINT: the process dies of SIGINT (got %s)" % rc)
    check("stopped by" not in t.output(), "double SIGINT: no graceful-stop line")
    tid, done, epoch, batch = ckpt_position(d)
    check(done >= 1, "ckpt.h5 is still a whole checkpoint (sessions_done %d)" % done)
    rc_st, st = status(a, d)
    check(rc_st == 0 and "dead (last heartbeat" in st and "pid %d gone" % t.proc.pid in st and
          "ETA" not in st, "status: dead, pid gone, no ETA\n" + st)
    # What a kill in the middle of a checkpoint write leaves, and a user's file beside it.
    for name in ("ckpt.h5.tmp.999999", "notes.tmp.txt"):
        open(os.path.join(d, name), "w").write("x")
    rerun(a, d, os.path.join(tmp, "double_rerun.log"), ref, "double SIGINT")
    check(not os.path.exists(os.path.join(d, "ckpt.h5.tmp.999999")) and
          os.path.exists(os.path.join(d, "notes.tmp.txt")),
          "the rerun removes a killed write's ckpt.h5.tmp.<pid>, and nothing else")


def rank_pids(mpiexec_pid, safecl):
    """The safecl processes below mpiexec (its ranks), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [mpiexec_pid]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            try:
                if os.readlink("/proc/%d/exe" % c) == os.path.realpath(safecl):
                    out.append(c)
            except OSError:
                pass
    return out


def test_group(a, tmp):
    ref_dir = os.path.join(tmp, "group_ref")
    t = Train(a, ref_dir, os.path.join(tmp, "group_ref.log"), ranks=2)
    rc = t.wait()
    check(rc == 0, "group of 2, uninterrupted: exit 0 (got %s)" % rc)
    if rc != 0:
        return
    ref = train_numbers(ref_dir)
    for how in ("SIGTERM to the ranks", "SIGUSR1 to mpiexec"):
        d = os.path.join(tmp, "group_" + how.split()[0])
        t = Train(a, d, os.path.join(tmp, "group_%s.log" % how.split()[0]), ranks=2, pause="3")
        pids = []
        wait_for(lambda: len(rank_pids(t.proc.pid, a.safecl)) == 2, t.proc)
        pids = rank_pids(t.proc.pid, a.safecl)
        check(len(pids) == 2 and t.paused(pids, 1),
              "group, %s: found the 2 ranks, both paused at step boundary 3: %s" % (how, pids))
        if how.startswith("SIGTERM"):
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        else:
            # mpiexec forwards it to the ranks; they are resumed once it is pending at both.
            os.kill(t.proc.pid, signal.SIGUSR1)
            check(wait_for(lambda: all(pending(p, signal.SIGUSR1) for p in pids), t.proc),
                  "group, SIGUSR1 to mpiexec: forwarded to both paused ranks")
        resume(pids)
        rc = t.wait()
        out = t.output()
        check(rc == 75 and out.count("rerun the same command to resume") == 1,
              "group, %s: mpiexec exits 75, one stop line (rc %s)\n%s" % (how, rc, out[-600:]))
        where = ckpt_position(d) if os.path.exists(os.path.join(d, "ckpt.h5")) else None
        check(where is not None and where[2] >= 0,
              "group, %s: checkpoint inside a session: %s" % (how, where))
        rerun(a, d, os.path.join(tmp, "group_%s_rerun.log" % how.split()[0]), ref,
              "group, " + how, ranks=2)


def test_status_dirs(a, tmp):
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    rc, out = status(a, empty)
    check(rc == 2 and empty in out and "holds no run" in out,
          "status on an empty directory: exit 2, names it\n" + out)
    missing = os.path.join(tmp, "missing")
    rc, out = status(a, missing)
    check(rc == 2 and missing in out and "no such directory" in out,
          "status on a missing directory: exit 2, names it\n" + out)
    # A train on another host holds its lock (this process holds it: the kernel says held).
    other = os.path.join(tmp, "other_host")
    os.makedirs(other)
    fd = os.open(os.path.join(other, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"train safe on synthetic, host elsewhere-node pid 4242 heartbeat 30 s\n")
    fcntl.lockf(fd, fcntl.LOCK_EX)
    rc, out = status(a, other)
    check(rc == 0 and "state: running (pid 4242 on elsewhere-node" in out and
          "safe on synthetic" in out, "status: a lock held on another host is running\n" + out)
    os.close(fd)  # releases it: the process "died" without recording its end
    old = time.time() - 12 * 60
    os.utime(os.path.join(other, "lock"), (old, old))
    rc, out = status(a, other)
    # The age it reads is 12 minutes plus however long this call took to get there.
    late = (time.time() - old) / 60
    m = re.search(r"dead \(last heartbeat (\d+) min ago", out)
    check(rc == 0 and m is not None and 12 <= int(m.group(1)) <= late + 1,
          "status: a released lock with a 12-minute-old heartbeat is dead\n" + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--skip-group", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="train_stop_") as tmp:
        test_status_dirs(a, tmp)
        ref_dir = os.path.join(tmp, "ref")
        p = run([a.safecl, "train"] + TRIAL + ["run.dir=" + ref_dir])
        check(p.returncode == 0, "uninterrupted run: exit 0\n" + p.stderr[-800:])
        if p.returncode == 0:
            ref = train_numbers(ref_dir)
            test_sigint(a, tmp, ref)
            test_double_sigint(a, tmp, ref)
        if not a.skip_group:
            test_group(a, tmp)
    if failures:
        print("%d failure(s):\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
