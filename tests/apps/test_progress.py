"""test_progress.py: what a person watching `safecl train` and `safecl sweep` sees.

1. Timestamps: every line `safecl train` writes to stderr starts with an ISO 8601 UTC time
   ("2026-12-01T20:06:44.123Z [safecl ...] level: ..."), also the lines of a refused config.
2. Progress lines: train.progress_seconds=0.001 (shorter than any training step on any CPU: a
   step is at least a ViT-Tiny forward of 2 images, 2.5 GFLOP, over 4 ms at the 512 GFLOP/s
   float32 peak of 2 cores of 4 GHz with two AVX-512 FMA units; so every step but an epoch's
   last logs one, and the count of lines does not depend on the machine) on a tiny trial of 2 sessions (2 + 1 epochs of 4 steps): one
   periodic line per step that does not end an epoch, one "done" line per epoch, each with
   session s/T, epoch e/E, batch b/N, img/s, three elapsed and three ETA times and the ETA's
   source; train.progress_seconds=0 logs the epoch-end lines only; the key is not part of the
   trial id.
3. Terminal vs pipe: under a pseudo-terminal (stderr a TTY) the periodic lines become one
   status line redrawn with "\\r" and erase-to-end-of-line, and go to trial.log only; with
   stderr a pipe neither stdout nor stderr holds a control character.
4. trial.log beside trial.h5 for `safecl train` holds the trial's lines (every one timestamped
   and tagged with its id) and never the status line; a trial killed after its first session's
   checkpoint and rerun appends: the first run's file is a prefix of the final one, which holds
   the "resuming" line; a trial that fails after its log is open has its error message there.
5. A sweep of two trials on two workers (mpiexec -np 3): each trials/<id>/trial.log holds lines
   of that trial only (its own id in every line), while the job output interleaves both.
Exits non-zero on any failure.
"""
import argparse
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "orch"))
from orch_util import REPO, all_records, run_sweep, synthetic  # noqa: E402

failures = []

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[safecl"
DUR = r"(?:\d+d )?\d+:\d\d:\d\d|\?"
PROGRESS = re.compile(
    r"progress: session (\d+)/(\d+), epoch (\d+)/(\d+)( done)?, batch (\d+)/(\d+), "
    r"([0-9.]+) img/s; elapsed (%s) epoch, (%s) session, (%s) trial; "
    r"ETA (%s) epoch, (%s) session, (%s) trial \((plan|measured)\)$" % ((DUR,) * 6))

TRIAL = ["train", "method.name=safe", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=4", "dataset.synthetic.train_per_class=4",
         "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=2", "train.epochs_later=1",
         "train.batch=2", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
         "eval.batch=8", "threads=1"]
STEPS = 4            # 8 training images per session in batches of 2
EPOCHS = [2, 1]      # per session


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def run(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=600)


def run_pty(cmd):
    """cmd with stderr on a pseudo-terminal (stdout a pipe): (exit code, stderr bytes)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 600)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=600), out


def progress_lines(text):
    return [m for m in (PROGRESS.search(l) for l in text.splitlines()) if m]


def check_progress(lines, label):
    periodic = [m for m in lines if not m.group(5)]
    done = [m for m in lines if m.group(5)]
    check(len(done) == sum(EPOCHS), "%s: one 'done' line per epoch (%d, want %d)"
          % (label, len(done), sum(EPOCHS)))
    want = [(t + 1, e + 1) for t, n in enumerate(EPOCHS) for e in range(n)]
    check([(int(m.group(1)), int(m.group(3))) for m in done] == want,
          "%s: the 'done' lines name sessions and epochs in order" % label)
    check(all(m.group(2) == "2" and m.group(7) == str(STEPS) and m.group(6) == str(STEPS)
              for m in done), "%s: 'done' lines show session s/2 and batch %d/%d"
          % (label, STEPS, STEPS))
    check(all(int(m.group(4)) == EPOCHS[int(m.group(1)) - 1] for m in lines),
          "%s: epoch e/E with E the session's epochs" % label)
    check(all(float(m.group(8)) > 0 for m in done), "%s: img/s measured at epoch ends" % label)
    check(all(m.group(15) == "plan" for m in lines), "%s: the trial's ETA comes from the plan" % label)
    return periodic


def test_train(a, tmp):
    # 1 + 2: plain output, progress every step
    d = os.path.join(tmp, "train")
    p = run([a.safecl] + TRIAL + ["train.progress_seconds=0.001", "run.dir=" + d])
    check(p.returncode == 0, "train with train.progress_seconds=0.001 exits 0")
    lines = p.stderr.splitlines()
    check(lines and all(re.match(STAMP, l) for l in lines),
          "every stderr line starts with an ISO 8601 UTC timestamp (%d lines)" % len(lines))
    check(not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", p.stderr + p.stdout),
          "stderr a pipe: no control characters in stdout or stderr")
    periodic = check_progress(progress_lines(p.stderr), "pipe")
    want = sum(EPOCHS) * (STEPS - 1)
    check(len(periodic) == want, "pipe: a periodic line after every step but an epoch's last "
          "(%d, want %d)" % (len(periodic), want))
    check(all(int(m.group(6)) < STEPS for m in periodic), "periodic lines show batch b < N")
    # 4: trial.log beside trial.h5
    log = os.path.join(d, "trial.log")
    check(os.path.isfile(os.path.join(d, "trial.h5")) and os.path.isfile(log),
          "trial.log beside trial.h5")
    text = open(log).read() if os.path.isfile(log) else ""
    tid = re.search(r"trial ([0-9a-f]{32}) finished", p.stderr)
    tid = tid.group(1) if tid else "?"
    check(text and all(re.match(STAMP + " " + tid[:12] + r"\] ", l) for l in text.splitlines()),
          "every trial.log line is timestamped and tagged with the trial's id")
    check(("trial %s finished" % tid) in text and len(progress_lines(text)) == len(
        progress_lines(p.stderr)), "trial.log holds the trial's lines, progress lines included")

    # 2: progress_seconds=0: epoch ends only
    p = run([a.safecl] + TRIAL + ["train.progress_seconds=0", "run.dir=" + d + "0"])
    check(p.returncode == 0 and check_progress(progress_lines(p.stderr), "off") == [],
          "train.progress_seconds=0: only the epoch-end lines")
    p = run([a.safecl] + TRIAL + ["train.progress_seconds=-1", "run.dir=" + d + "bad"])
    check(p.returncode != 0 and "train.progress_seconds" in p.stderr and
          all(re.match(STAMP, l) for l in p.stderr.splitlines() if l.strip()),
          "train.progress_seconds=-1 refused naming the key, in a timestamped line")

    ids = [run([a.safecl] + TRIAL + extra + ["--print-trial-id"]).stdout.strip()
           for extra in ([], ["train.progress_seconds=5"])]
    check(len(ids[0]) == 32 and ids[0] == ids[1], "train.progress_seconds is not in the trial id")

    # 3: under a terminal
    d = os.path.join(tmp, "tty")
    rc, raw = run_pty([a.safecl] + TRIAL + ["train.progress_seconds=0.001", "run.dir=" + d])
    out = raw.decode(errors="replace")
    check(rc == 0, "train under a pseudo-terminal exits 0")
    check("\r" in out and "\x1b[K" in out and re.search(r"S 1/2 E 1/2 \[[#.]{20}\] \d/4 ", out),
          "terminal: a status line redrawn with \\r and erase-to-end-of-line")
    plain = out.replace("\r\n", "\n")
    logged = [l for l in plain.split("\n") if "\r" not in l and "\x1b" not in l and l.strip()]
    check(logged and all(re.match(STAMP, l) for l in logged),
          "terminal: every log line is still timestamped")
    tty_lines = progress_lines("\n".join(re.sub(r".*\r(\x1b\[K)?", "", l)
                                         for l in plain.split("\n")))
    check(all(m.group(5) for m in tty_lines) and len(tty_lines) == sum(EPOCHS),
          "terminal: only the epoch-end progress lines are logged (%d)" % len(tty_lines))
    text = open(os.path.join(d, "trial.log")).read() if os.path.isfile(
        os.path.join(d, "trial.log")) else ""
    check(text and "\r" not in text and "\x1b" not in text,
          "terminal: trial.log holds no control characters")
    check(len(check_progress(progress_lines(text), "terminal trial.log")) == sum(EPOCHS) *
          (STEPS - 1), "terminal: the periodic lines go to trial.log")

    # 4: a trial that fails once its log is open (a crop the ViT refuses) logs why; the run
    # directory exists beforehand, as train removes one it created for a refused trial
    d = os.path.join(tmp, "broken")
    os.makedirs(d)
    p = run([a.safecl] + TRIAL + ["dataset.crop=200", "run.dir=" + d])
    errs = [l.split("] error: ", 1)[1] for l in p.stderr.splitlines() if "] error: " in l]
    text = open(os.path.join(d, "trial.log")).read() if os.path.isfile(
        os.path.join(d, "trial.log")) else ""
    check(p.returncode != 0 and errs and ("] error: " + errs[0]) in text,
          "a failed trial's trial.log ends with its error message")

    # 4: kill after session 1's checkpoint, rerun: trial.log is appended
    d = os.path.join(tmp, "resume")
    p = run([a.safecl] + TRIAL + ["run.dir=" + d], env={"SAFECL_FAULT_KILL_AFTER_SESSION": "1"})
    log = os.path.join(d, "trial.log")
    first = open(log).read() if os.path.isfile(log) else ""
    check(p.returncode != 0 and first and "finished" not in first,
          "a trial killed after session 1 leaves a trial.log")
    p = run([a.safecl] + TRIAL + ["run.dir=" + d])
    final = open(log).read() if os.path.isfile(log) else ""
    check(p.returncode == 0 and final.startswith(first) and len(final) > len(first),
          "the rerun appends to trial.log (the first run's lines kept as they were)")
    check("resuming after session 1" in final[len(first):] and "finished" in final[len(first):],
          "the appended part holds the resume and the end of the trial")


def test_sweep(a, tmp):
    path = os.path.join(tmp, "sweep.cfg")
    ov = ['"%s"' % x for x in TRIAL[2:] if not x.startswith("backbone.")] + [
        '"train.progress_seconds=0.001"']
    with open(path, "w") as f:
        f.write('sweep = {\n  name = "progress";\n'
                '  base = ["%s/configs/backbones/vit_tiny_random.cfg"];\n'
                '  overrides = [%s];\n  datasets = ["%s"];\n'
                '  methods = ( { file = "%s/configs/methods/safe_cifar100.cfg"; overrides = '
                '[%s]; } );\n  seeds = [1, 2];\n};\n'
                % (REPO, ", ".join(ov), synthetic(), REPO, ", ".join(ov)))
    run_dir = os.path.join(tmp, "sweep")
    rc, out = run_sweep([path, "run.dir=" + run_dir], 3, a.mpiexec, a.safecl,
                        log=os.path.join(tmp, "sweep.log"))
    check(rc == 0, "sweep of two trials exits 0 (got %s)" % rc)
    if rc != 0:
        print(out[-3000:])
    ids = sorted({r["id"] for r in all_records(run_dir) if r["type"] == "PLAN"})
    check(len(ids) == 2, "two trials planned")
    for tid in ids:
        log = os.path.join(run_dir, "trials", tid, "trial.log")
        text = open(log).read() if os.path.isfile(log) else ""
        lines = text.splitlines()
        check(lines and all(re.match(STAMP + r" r\d+ " + tid[:12] + r"\] ", l) for l in lines),
              "trials/%s/trial.log: every line is this trial's" % tid[:12])
        check(os.path.isfile(os.path.join(run_dir, "trials", tid, "trial.h5")) and
              ("trial %s finished" % tid) in text and len(progress_lines(text)) > 0,
              "trials/%s/trial.log beside trial.h5 holds its progress and its end" % tid[:12])
    check(all(re.match(STAMP, l) for l in out.splitlines() if "[safecl" in l),
          "the job output's log lines are timestamped")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default=shutil.which("mpiexec"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_train(a, tmp)
        if a.mpiexec:
            test_sweep(a, tmp)
        else:
            check(False, "mpiexec not found for the sweep case")
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
