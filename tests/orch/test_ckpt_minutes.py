"""test_ckpt_minutes.py: time-based checkpoints (train.ckpt_minutes) change no number.

A tiny SAFE trial (heads only, 2 sessions of 2 training steps each) runs with
train.ckpt_minutes = 0 (session boundaries only) and with train.ckpt_minutes = 1e-9, which makes
every training step's boundary a checkpoint. Checks:
1. both runs have the same trial id (the key is not part of the identity) and bit-identical
   accuracy matrices, loss curves and final numbers;
2. with 1e-9 the second checkpoint is inside session 1, after its second step
   (SAFECL_FAULT_KILL_AFTER_CKPT=2 kills the process there and the rerun resumes "session 1 at
   epoch 1, batch 3"), and the resumed trial ends bit-identical too;
3. on a group of 2 ranks (mpiexec -np 2) the ranks agree on every time checkpoint (a rank that
   wrote alone would hang the collective file write) and the numbers equal the group's run
   without time checkpoints.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile


from orch_util import bitwise_equal, train_numbers  # noqa: E402

failures = []

TRIAL = ["train", "method.name=safe", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=4", "dataset.synthetic.train_per_class=4",
         "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=1", "train.epochs_later=1",
         "train.batch=4", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
         "eval.batch=8", "threads=1"]


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def run(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=600)



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ckpt_minutes_") as tmp:
        res = {}
        for name, minutes in (("sessions", "0"), ("every_step", "1e-9")):
            d = os.path.join(tmp, name)
            p = run([a.safecl] + TRIAL + ["train.ckpt_minutes=" + minutes, "run.dir=" + d])
            check(p.returncode == 0, "ckpt_minutes = %s: the trial runs (exit %d)"
                  % (minutes, p.returncode))
            if p.returncode:
                print(p.stderr[-3000:])
                return 1
            res[name] = train_numbers(d)
        check(res["sessions"]["trial_id"] == res["every_step"]["trial_id"],
              "the same trial id with and without time checkpoints")
        check(bitwise_equal(res["sessions"], res["every_step"]),
              "a checkpoint at every step: bit-identical metrics and loss curve")

        d = os.path.join(tmp, "killed")
        args = [a.safecl] + TRIAL + ["train.ckpt_minutes=1e-9", "run.dir=" + d]
        p = run(args, {"SAFECL_FAULT_KILL_AFTER_CKPT": "2"})
        check(p.returncode == -9 and os.path.exists(os.path.join(d, "ckpt.h5")),
              "killed after checkpoint 2 (exit %d)" % p.returncode)
        p = run(args)
        check(p.returncode == 0 and "resuming session 1 at epoch 1, batch 3" in p.stderr,
              "checkpoint 2 was a time checkpoint inside session 1: the rerun resumes there")
        check(p.returncode == 0 and bitwise_equal(train_numbers(d), res["sessions"]),
              "killed at a time checkpoint and resumed: bit-identical")

        group = {}
        for name, minutes in (("g_sessions", "0"), ("g_every_step", "1e-9")):
            d = os.path.join(tmp, name)
            p = run([a.mpiexec, "-np", "2", "--oversubscribe", a.safecl] + TRIAL +
                    ["train.ckpt_minutes=" + minutes, "run.dir=" + d])
            check(p.returncode == 0, "2 ranks, ckpt_minutes = %s: the trial runs (exit %d)"
                  % (minutes, p.returncode))
            if p.returncode:
                print(p.stderr[-3000:])
                return 1
            group[name] = train_numbers(d)
        check(bitwise_equal(group["g_sessions"], group["g_every_step"]),
              "2 ranks: a checkpoint at every step, agreed by both: bit-identical")
    if failures:
        print("test_ckpt_minutes: %d failure(s)" % len(failures))
        return 1
    print("test_ckpt_minutes: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
