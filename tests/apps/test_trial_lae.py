"""test_trial_lae.py: LAE through `safecl train` end to end on generated data (tiny random ViT,
three sessions of two epochs, the first epoch of sessions 2 and 3 head-only, batch 4 with
drop_last, EMA decay 0.9 so the offline expert moves).

Checks:
  - the trial runs with the authors' switches; the predictors lae (the ensemble), online and
    offline are stored under their names with a 3 x 3 accuracy matrix and finite losses; in
    session 1 (no offline expert yet) the offline predictor is the online one, image by image;
  - a trial killed inside session 2's first prefix epoch (after checkpoint 7: the offline expert
    and the prefix's own Adam step count are live) and one killed after session 1 (before the
    offline expert exists) resume and end with the uninterrupted run's accuracy matrices and
    losses, bit for bit;
  - PILOT's switches (offline expert from the start, freezing in session 1, kaiming head) run;
  - a prefix on more blocks than the backbone has, and an optimizer other than Adam, are
    refused with messages naming the key.
Exits non-zero on any failure."""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def run(safecl, args, env=None):
    p = subprocess.run([safecl] + args, capture_output=True, text=True, env=env)
    if p.returncode and env is None:
        print(p.stderr[-3000:])
    return p


BASE = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=6",
        "dataset.synthetic.train_per_class=5", "dataset.synthetic.test_per_class=3",
        "dataset.synthetic.difficulty=0.35", "dataset.init_cls=2", "dataset.increment=2",
        "backbone.arch=vit_tiny_patch16_224", "method.name=lae", "method.lae.length=2",
        "method.lae.layers=2", "method.lae.freeze_epochs=1", "method.lae.ema_decay=0.9",
        "train.epochs_first=2", "train.epochs_later=2", "train.batch=4", "train.drop_last=true",
        "train.optimizer=adam", "train.lr=0.01", "train.weight_decay=0", "train.t_max=0",
        "eval.batch=5"]
NAMES = ("lae", "offline", "online")


def results(d):
    with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
        return ({n: f["predictors/%s/acc_matrix" % n][...] for n in f["predictors"]},
                {n: f["predictors/%s/correct" % n][...] for n in f["predictors"]},
                f["losses"][...])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir = os.path.join(tmp, "ref")
        p = run(a.safecl, BASE + ["run.dir=" + ref_dir])
        check(p.returncode == 0, "lae trains and evaluates end to end")
        if p.returncode:
            return 1
        acc, correct, loss = results(ref_dir)
        check(tuple(sorted(acc)) == NAMES, "predictors stored: %s" % sorted(acc))
        check(all(m.shape == (3, 3) for m in acc.values()) and np.isfinite(loss[:, 3]).all(),
              "3 x 3 accuracy matrices and finite losses (%d records)" % loss.shape[0])
        check(correct["offline"][0] == correct["online"][0],
              "session 1 (no offline expert): offline predictor = online predictor")
        print("     lae accuracy matrix:\n%s" % acc["lae"])
        kills = (("SAFECL_FAULT_KILL_AFTER_CKPT", "7", ["train.ckpt_every=1"],
                  "inside session 2's first prefix epoch (checkpoint 7)"),
                 ("SAFECL_FAULT_KILL_AFTER_SESSION", "1", [], "after session 1"))
        for key, n, extra, what in kills:
            d = os.path.join(tmp, "kill_" + key[-4:])
            env = dict(os.environ, **{key: n})
            k = run(a.safecl, BASE + extra + ["run.dir=" + d], env=env)
            r = run(a.safecl, BASE + extra + ["run.dir=" + d])
            same = False
            if k.returncode == -9 and r.returncode == 0:
                got = results(d)
                same = all(np.array_equal(got[0][m], acc[m], equal_nan=True) for m in NAMES) \
                    and np.array_equal(got[2], loss, equal_nan=True)
            check(same, "killed %s (exit %d) and resumed: identical matrices and losses"
                  % (what, k.returncode))
        d = os.path.join(tmp, "pilot")
        p = run(a.safecl, BASE + ["method.lae.ema_init=pilot", "method.lae.freeze_first=true",
                                  "method.lae.head_init=pilot", "run.dir=" + d])
        ok = p.returncode == 0
        if ok:
            pacc, _, ploss = results(d)
            ok = tuple(sorted(pacc)) == NAMES and np.isfinite(ploss[:, 3]).all()
        check(ok, "PILOT's switches (offline from the start, freeze in session 1, kaiming head) run")
        p = run(a.safecl, BASE + ["method.lae.layers=13", "run.dir=" + os.path.join(tmp, "x1")],
                env=dict(os.environ))
        check(p.returncode != 0 and "method.lae.layers" in p.stderr,
              "a prefix on 13 of 12 blocks is refused naming method.lae.layers")
        p = run(a.safecl, BASE + ["train.optimizer=sgd", "run.dir=" + os.path.join(tmp, "x2")],
                env=dict(os.environ))
        check(p.returncode != 0 and "train.optimizer" in p.stderr,
              "an optimizer other than Adam is refused naming train.optimizer")
    if failures:
        print("test_trial_lae: %d failure(s)" % len(failures))
        return 1
    print("test_trial_lae: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
