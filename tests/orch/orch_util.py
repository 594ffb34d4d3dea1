"""orch_util.py: helpers shared by the orchestrator's Python tests: tiny sweep files, running
`safecl sweep` under mpiexec in its own process group (so a test can signal or SIGKILL the whole
job), and reading ledgers (each record's CRC checked with zlib.crc32, as a third-party reader
would) and trial files.
"""
import glob
import os
import re
import signal
import subprocess
import time
import zlib

import h5py
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def finish(name):
    if failures:
        print("%s: %d failure(s):\n  %s" % (name, len(failures), "\n  ".join(failures)))
        return 1
    print("%s: all checks passed" % name)
    return 0


def tiny_overrides(classes=6, train=3, test=2):
    return ['"dataset.synthetic.classes=%d"' % classes,
            '"dataset.synthetic.train_per_class=%d"' % train,
            '"dataset.synthetic.test_per_class=%d"' % test,
            '"dataset.init_cls=2"', '"dataset.increment=2"', '"eval.batch=8"', '"threads=1"']


def write_sweep(path, name, body, overrides=None):
    """A sweep over the tiny ViT and the synthetic benchmark; `body` adds keys."""
    ov = overrides if overrides is not None else tiny_overrides()
    text = ('sweep = {\n  name = "%s";\n  base = ["%s/configs/backbones/vit_tiny_random.cfg"];\n'
            '  overrides = [%s];\n%s};\n' % (name, REPO, ", ".join(ov), body))
    with open(path, "w") as f:
        f.write(text)
    return path


def synthetic():
    return REPO + "/configs/datasets/synthetic.cfg"


def method(name):
    return REPO + "/configs/methods/%s.cfg" % name


class Job:
    """mpiexec -np N safecl sweep ... in its own session (process group)."""

    def __init__(self, args, ranks, mpiexec, safecl, env=None, log=None):
        cmd = [mpiexec, "-np", str(ranks), "--oversubscribe", safecl, "sweep"] + args
        e = dict(os.environ)
        e.update(env or {})
        self.log = log
        out = open(log, "w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=e,
                                     start_new_session=True)

    def signal(self, sig):
        """Signals mpiexec, which forwards SIGUSR1/SIGUSR2 to the ranks (as srun does)."""
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self):
        """SIGKILL mpiexec and every process below it at once. Open MPI puts each rank in its
        own process group, so the tree is walked rather than one group killed."""
        pids = descendants(self.proc.pid) + [self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for pid in pids:  # ranks re-parented to init: wait until they are really gone
            wait_for(lambda: gone(pid), 10)

    def wait(self, timeout=300):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            return None

    def output(self):
        return open(self.log).read() if self.log else ""


def gone(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def descendants(pid):
    """Every process below pid, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def run_sweep(args, ranks, mpiexec, safecl, env=None, log=None, timeout=300):
    job = Job(args, ranks, mpiexec, safecl, env, log)
    rc = job.wait(timeout)
    return rc, job.output()


def read_ledger(path):
    """Records of one ledger file: dicts with type, time, id, group, attempt, sessions, count,
    seconds, final, avg, val, text. Unterminated or CRC-failing lines are skipped."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    for line in data.split(b"\n")[:-1]:
        if len(line) < 10 or line[8:9] != b" ":
            continue
        if int(line[:8], 16) != zlib.crc32(line[9:]):
            continue
        parts = line[9:].decode().split(" ", 11)
        text = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                      parts[11]) if len(parts) > 11 else ""
        out.append(dict(type=parts[0], time=float(parts[1]), id=parts[2], group=int(parts[3]),
                        attempt=int(parts[4]), sessions=int(parts[5]), count=int(parts[6]),
                        seconds=float(parts[7]), final=float(parts[8]), avg=float(parts[9]),
                        val=float(parts[10]), text=text))
    return out


def ledgers(run_dir):
    """{path: records} of every ledger file of the run directory."""
    return {p: read_ledger(p) for p in sorted(glob.glob(os.path.join(run_dir, "ledger.*.log")))}


def all_records(run_dir):
    recs = []
    for r in ledgers(run_dir).values():
        recs += r
    return recs


def finished_trials(run_dir):
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(run_dir, "trials", "*", "trial.h5")))


def trial_numbers(run_dir, tid):
    """What must be identical between an interrupted and an uninterrupted run."""
    with h5py.File(os.path.join(run_dir, "trials", tid, "trial.h5"), "r") as f:
        out = {k: f.attrs[k] for k in ("final_acc", "avg_acc", "forgetting", "trial_id")}
        out["class_order"] = f["class_order"][...]
        for p in f["predictors"]:
            for k in ("acc_matrix", "acc", "correct", "val_acc"):
                out[p + "/" + k] = f["predictors/%s/%s" % (p, k)][...]
    return out


def train_numbers(run_dir):
    """What a `safecl train` run directory's trial.h5 holds that a resume must reproduce bit for
    bit: accuracies, the loss curve, every predictor's accuracy matrix and correct counts."""
    with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
        out = {k: f.attrs[k] for k in ("final_acc", "avg_acc", "trial_id")}
        out["losses"] = f["losses"][...]
        for p in f["predictors"]:
            for k in ("acc_matrix", "correct"):
                out[p + "/" + k] = f["predictors/%s/%s" % (p, k)][...]
    return out


def bitwise_equal(a, b):
    """Same keys and the same bytes: NaN where NaN, every other value equal."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype.kind == "f":
            if x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def same_numbers(a, b):
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype.kind == "f":
            if not np.array_equal(np.isnan(x), np.isnan(y)) or \
                    not np.array_equal(x[~np.isnan(x)], y[~np.isnan(y)]):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def wait_for(pred, timeout, step=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(step)
    return False


def held(job, run_dir, groups):
    """With SAFECL_FAULT_TRIAL_SIGNAL=hold (src/orch/worker.c), each group waits before its trial
    until its ranks catch a stop signal: waits until `groups` groups have got a trial (START
    records); False if the job ended first."""
    def ready():
        return job.proc.poll() is not None or \
            sum(r["type"] == "START" for r in all_records(run_dir)) >= groups
    return wait_for(ready, 120) and job.proc.poll() is None
