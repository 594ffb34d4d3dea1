"""test_trial_ease.py: `safecl train` with EASE end to end on the synthetic benchmark with a tiny
random ViT (docs/methods.md j).

1. Three sessions: one predictor "ease", a 3 x 3 accuracy matrix, one finite CE record per
   session; the log states the adapter bank's bytes.
2. A trial SIGKILLed right after a mid-session checkpoint (train.ckpt_every = 1) and one killed
   after session 1's checkpoint, each rerun, end with the uninterrupted accuracy matrix and loss
   records bit for bit (the bank, the training set, its momentum, the proxy head, the prototypes
   and the session boundaries are the checkpointed state); the checkpoint after session 1 holds
   set 0 and session 1's prototypes and nothing of later sessions.
3. method.ease.use_init_ptm and method.ease.reweight = false run; the OmniBenchmark special case
   (moni_adam) trains in session 1 only (one loss record).
4. DomainNet (domain-incremental) is refused with a message saying why.
5. `safecl plan` shows the classifier-list cost growing as t + 1 forwards per image.
Exits non-zero on any failure."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from test_trial import check, failures, make_domainnet, run

BASE = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=6",
        "dataset.synthetic.train_per_class=4", "dataset.synthetic.test_per_class=2",
        "dataset.synthetic.difficulty=0.35", "dataset.init_cls=2", "dataset.increment=2",
        "backbone.arch=vit_tiny_patch16_224", "method.name=ease", "method.pet=adapter",
        "method.adapter.dim=8", "train.epochs_first=2", "train.epochs_later=1", "train.batch=4",
        "train.lr=0.05", "eval.batch=5"]


def results(d):
    with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
        return sorted(f["predictors"]), f["predictors/ease/acc_matrix"][...], f["losses"][...]


def test_ease(safecl, tmp):
    ref_dir = os.path.join(tmp, "ease_ref")
    p = run(safecl, BASE + ["run.dir=" + ref_dir])
    check(p.returncode == 0, "ease trains and evaluates end to end")
    if p.returncode:
        return
    names, ref, loss = results(ref_dir)
    check(names == ["ease"], "one predictor, 'ease': %s" % names)
    check(ref.shape == (3, 3) and loss.shape[0] == 2 + 1 + 1 and np.isfinite(loss[:, 3]).all(),
          "3 x 3 accuracy matrix, one finite CE record per epoch")
    check("adapter bank 3 set(s)" in p.stderr, "the log states the adapter bank's size")
    for env_key, extra, what in (("SAFECL_FAULT_KILL_AFTER_CKPT", ["train.ckpt_every=1"],
                                  "mid-session (checkpoint 1)"),
                                 ("SAFECL_FAULT_KILL_AFTER_SESSION", [], "after session 1")):
        d = os.path.join(tmp, "ease_kill_%s" % env_key[-4:])
        env = dict(os.environ, **{env_key: "1"})
        k = subprocess.run([safecl] + BASE + extra + ["run.dir=" + d], capture_output=True,
                           text=True, env=env)
        if env_key.endswith("SESSION") and k.returncode == -9:
            with h5py.File(os.path.join(d, "ckpt.h5"), "r") as f:
                bank = f["method/ease_bank"][...]
                protos = f["method/ease_prototypes"][...]
                held = int(f["method/ease_bank_ready"][...].ravel()[0]) == 1 and \
                    np.any(bank[0]) and not np.any(bank[1:]) and np.all(np.any(protos[:2], 1)) \
                    and not np.any(protos[2:])
            check(held, "the checkpoint after session 1 holds set 0 in the bank and the "
                  "prototypes of session 1's classes, nothing beyond")
        r = run(safecl, BASE + extra + ["run.dir=" + d])
        same = False
        if k.returncode == -9 and r.returncode == 0:
            _, m, l = results(d)
            same = np.array_equal(m, ref, equal_nan=True) and np.array_equal(l, loss,
                                                                              equal_nan=True)
        check(same, "ease killed %s (exit %d) and resumed: identical matrix and losses"
              % (what, k.returncode))
    for extra, want_records in ((["method.ease.use_init_ptm=true"], 4),
                                (["method.ease.reweight=false"], 4),
                                (["method.ease.moni_adam=true"], 2)):
        d = os.path.join(tmp, "ease_" + extra[0].split(".")[-1].replace("=", "_"))
        p = run(safecl, BASE + extra + ["run.dir=" + d])
        ok = p.returncode == 0
        if ok:
            _, m, l = results(d)
            ok = m.shape == (3, 3) and l.shape[0] == want_records
        check(ok, "ease with %s runs (%d loss records)" % (extra[0], want_records))


def test_domainnet_refused(safecl, tmp):
    root = os.path.join(tmp, "DomainNet")
    domains = ["real", "sketch"]
    make_domainnet(root, np.random.default_rng(3), domains, classes=2, per=2)
    p = run(safecl, ["train", "method.name=ease", "method.pet=adapter", "dataset.format=domainnet",
                     "dataset.root=" + root, "dataset.domains=" + ",".join(domains),
                     "dataset.classes=2", "dataset.shuffle=false", "dataset.resize=224",
                     "backbone.arch=vit_tiny_patch16_224", "run.dir=" + os.path.join(tmp, "dn")])
    check(p.returncode != 0 and "class-incremental" in p.stderr,
          "ease refuses a domain-incremental benchmark, saying why")


def test_plan(safecl, root):
    """`safecl plan` prices EASE's classifier list and evaluation at (t + 1) forwards per image in
    session t (one per subspace), so those columns grow with the session count; training is
    2.05 forwards per image and epoch every session.

    Every column comes from one forward rate, here the nominal --gflops 10 (ViT-B/16, the default
    arch: 0.28 images/s, so session 1's features_s is 281.0 s), the same on every machine: nothing
    is measured. In exact arithmetic features_s of session t is (t + 1) times session 1's and
    train_s is the same in every session; the only error is the plan's printing to 0.1 s (at most
    0.05 per printed number), which bounds the tolerances below."""
    p = run(safecl, ["plan", os.path.join(root, "configs/datasets/synthetic.cfg"),
                     os.path.join(root, "configs/methods/ease.cfg"),
                     "train.epochs_first=1", "train.epochs_later=1", "--gflops", "10"])
    rows = [line.split() for line in p.stdout.splitlines() + p.stderr.splitlines()
            if len(line.split()) == 9 and line.split()[0].isdigit()]
    ok = p.returncode == 0 and len(rows) == 4
    if ok:  # 80 training images every session: features_s of session t = (t + 1) x session 1's
        feat = [float(r[5]) for r in rows]
        train = [float(r[4]) for r in rows]
        half = 0.05 + 1e-9  # half of the printed unit
        ok = feat[0] >= 100.0 and \
            all(abs(feat[t] - (t + 1) * feat[0]) <= half * (t + 2) for t in range(4)) and \
            max(train) - min(train) <= 2 * half
    check(ok, "safecl plan: EASE's feature cost grows as t + 1, its training cost stays flat (%s)"
          % (" ".join("%s/%s" % (r[4], r[5]) for r in rows) if rows else "no rows"))
    # The plan's method state on ViT-B/16, r = 64, 20 classes in 4 sessions:
    # the bank of 4 sets plus the set in training, its gradient and momentum, 1,189,632 floats
    # each (docs/methods.md j.7), and prototypes of 4 blocks of 768 per class.
    m = re.search(r"method state ([0-9.]+) GB", p.stdout + p.stderr)
    want = 4.0 * ((4 + 3) * 1189632 + 20 * 4 * 768) / 1e9
    check(p.returncode == 0 and m is not None and abs(float(m.group(1)) - want) <= 0.0005,
          "safecl plan: EASE's method state %s GB, expected %.3f GB"
          % (m.group(1) if m else "(not printed)", want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_ease(a.safecl, tmp)
        test_domainnet_refused(a.safecl, tmp)
        test_plan(a.safecl, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if failures:
        print("test_trial_ease: %d failure(s)" % len(failures))
        sys.exit(1)
    print("test_trial_ease: all checks passed")


if __name__ == "__main__":
    main()
