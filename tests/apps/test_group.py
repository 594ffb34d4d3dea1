"""test_group.py: one trial on a group of 1, 2 and 4 ranks gives the numbers it gives on one
rank: `mpirun -np G safecl train ...` on generated data, oversubscribed.

The data (COMMON) is as small as the checks allow: 4 synthetic classes in 2 sessions of 2, 5
training and 3 test images per class, so every session trains on 10 images in batches of 7 and 3:
a batch of 7 splits unevenly over 2 and 4 ranks and a batch of 3 leaves one of 4 ranks without
rows. Session 2 is where the methods' incremental parts (SAFE's fast learner, LAE's offline
expert, prompt masks, EASE's second subspace, SLCA's alignment) run.

Checks, each against the one-rank run of the same config:
  - SAFE with adapters (two learners, transfer loss, alignment and cross-classification over the
    gathered batch): every per-step loss within 1e-5 relative, every predictor's accuracy matrix
    and the epoch loss curve within 1e-5, on 2 ranks (the run with checkpoints and ScaLAPACK
    that the checkpoint checks below also resume from) and on 4;
  - APER (adapter tuner + prototypes), SimpleCIL and RanPAC (adapter phase 1 + random projection,
    ridge solver forced to ScaLAPACK and to LAPACK) at 2 ranks, and with --full (the test
    test_group_full, label slow) at 4 as well: accuracy matrices within 1e-5 (the default run
    meets 4 ranks in SAFE, an empty rank included, and in the checkpoint resumed on a 2 x 2 grid);
  - EASE at 2 ranks, batch 7 (the adapter set's summed gradient, the proxy head from the
    gathered batch, prototypes from the shards): accuracy matrix and epoch loss curve within 1e-5;
  - L2P (the training vote over the global batch, summed prompt gradients) and DualPrompt with
    pilot_diag (the diagnostic's whole batches per rank) at 2 ranks, batch 7: every predictor's
    accuracy matrix and the epoch loss curve within 1e-5;
  - SLCA (the full backbone's gradient summed over the group, class statistics from sharded
    features, the alignment's samples drawn per class by their rank and gathered) at 2 ranks,
    batch 7: accuracy matrix and epoch loss curve within 1e-5;
  - LAE at 2 ranks, batch 7 (the prefix gradient summed over the group, a head-only epoch, the
    offline expert's EMA on every rank): its three predictors' accuracy matrices and the epoch
    loss curve within 1e-5;
  - SAFE's and RanPAC's /ridge_search (every session's searches): the same entries, candidates
    and chosen lambdas, validation errors within 1e-5 as the losses (relative to max(|v|, 1):
    the float32 features of a group differ in the last bits, 1e-5 to 8e-5 relative in the errors);
  - a checkpoint written by 2 ranks with G block-cyclic (ScaLAPACK), killed at a session boundary
    and mid-epoch (the checkpoint's position read back), resumes on 1 and on 4 ranks (one killed
    run copied for both) and ends with the accuracy matrices of the uninterrupted run;
  - a corrupt image read by one rank only (feature extraction and training) fails the whole
    group with the file's name on every rank, within a timeout, never a hang: on 1 and 2 ranks,
    and with --full on 4.
Exit status 0 if everything holds."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

failures = 0
TIMEOUT = 600


def check(cond, msg):
    global failures
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures += 1


COMMON = ["dataset.format=synthetic", "dataset.synthetic.classes=4",
          "dataset.synthetic.train_per_class=5", "dataset.synthetic.test_per_class=3",
          "dataset.synthetic.difficulty=0.5", "dataset.init_cls=2", "dataset.increment=2",
          "backbone.arch=vit_tiny_patch16_224", "eval.batch=5", "threads=1"]
SAFE = COMMON + ["method.name=safe", "method.pet=adapter", "train.epochs_first=2",
                 "train.epochs_later=1", "train.batch=7", "method.rp.dim=256",
                 "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4", "method.safe.fast_cc=1"]
# SAFE on 2 ranks with checkpoints every 2 step boundaries, G block-cyclic (ScaLAPACK) and no
# checkpoint on time, so checkpoint n is the same step on every machine: the equivalence check's
# 2-rank run and the checkpoint checks' uninterrupted reference.
SAFE_CKPT = SAFE + ["train.ckpt_every=2", "train.ckpt_minutes=0"]
ON_GRID = ["linalg.solver=scalapack"]
STEP = re.compile(r"session (\d+) epoch (\d+) batch (\d+): loss (\S+)")


def train(args, ranks, run_dir, env_extra=None):
    env = dict(os.environ, SAFECL_LOG="debug", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    cmd = [ARGS.mpiexec, "-np", str(ranks), "--oversubscribe", ARGS.safecl, "train"] + args + [
        "run.dir=" + run_dir]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % TIMEOUT
    steps = {}
    for line in p.stderr.splitlines():
        m = STEP.search(line)
        if m:  # every rank logs its steps at debug level; the values agree
            steps[tuple(int(x) for x in m.groups()[:3])] = float(m.group(4))
    return p.returncode, steps, p.stderr


def results(run_dir):
    """(accuracy matrices, loss curve, /ridge_search as a dict: empty without searches)."""
    with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
        mats = {k: f["predictors/%s/acc_matrix" % k][...] for k in f["predictors"]}
        ridge = {k: f["ridge_search"][k][...] for k in f["ridge_search"]} if "ridge_search" in f else {}
        return mats, f["losses"][...] if "losses" in f else np.zeros((0, 0)), ridge


def compare_ridge(name, a, b):
    """The same searches (session, index, candidates) choosing the same lambdas, validation
    errors within the losses' tolerance (loss_diff 1e-5)."""
    same = set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in
                                      ("session", "search", "lambda", "best", "chosen") if k in a)
    diff = loss_diff(a["val_mse"], b["val_mse"]) if same and a else 0.0
    rel = float(np.max(np.abs(a["val_mse"] - b["val_mse"]) / np.abs(a["val_mse"]), initial=0.0)) \
        if same and a else 0.0
    check(same and diff <= 1e-5,
          "%s: /ridge_search (%d searches) the same, validation errors within 1e-5 as the losses "
          "(%.2g; relative %.2g)" % (name, len(a.get("session", [])), diff, rel))


def loss_diff(a, b):
    """Largest difference of loss values, relative to max(|value|, 1): relative for the loss
    terms of order one and more, absolute for the near-zero ones (SAFE's alignment term
    1 - cos is ~1e-6, where float cancellation alone leaves relative noise of 1e-4)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return np.inf
    ok = ~np.isnan(a)
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(a[ok]), 1.0), initial=0.0))


def max_diff(a, b):
    return float(np.nanmax(np.abs(a - b))) if a.size else 0.0


def compare(name, ref, got, steps_ref=None, steps_got=None):
    same_keys = set(ref[0]) == set(got[0])
    worst = max(max_diff(ref[0][k], got[0][k]) for k in ref[0]) if same_keys else np.inf
    check(same_keys and worst <= 1e-5,
          "%s: accuracy matrices within 1e-5 (max diff %.2g)" % (name, worst))
    lr, lg = ref[1], got[1]
    if lr.shape == lg.shape and lr.size:
        rel = loss_diff(lr, lg)
        check(rel <= 1e-5, "%s: epoch loss curve within 1e-5 (%.2g)" % (name, rel))
    elif lr.size or lg.size:
        check(False, "%s: loss curves of different shapes %s vs %s" % (name, lr.shape, lg.shape))
    if ref[2] or got[2]:
        compare_ridge(name, ref[2], got[2])
    if steps_ref is not None:
        rel = max((abs(steps_got[k] - v) / max(abs(v), 1.0) for k, v in steps_ref.items()
                   if k in steps_got), default=np.inf)
        check(steps_ref and set(steps_ref) == set(steps_got) and rel <= 1e-5,
              "%s: %d per-step losses within 1e-5 relative (max %.2g)" % (name, len(steps_ref), rel))
    return worst


GROUP_REF = {}


def safe_group_ref(tmp):
    """The uninterrupted SAFE_CKPT run on 2 ranks (ScaLAPACK): (exit code, steps, stderr, dir),
    run once for the equivalence and the checkpoint checks."""
    if not GROUP_REF:
        d = os.path.join(tmp, "safe_2_ckpt")
        code, steps, err = train(SAFE_CKPT + ON_GRID, 2, d)
        GROUP_REF.update(code=code, steps=steps, err=err, dir=d)
    return GROUP_REF


def test_equivalence(tmp):
    ref_dir = os.path.join(tmp, "safe_1")
    code, ref_steps, err = train(SAFE, 1, ref_dir)
    check(code == 0, "SAFE on 1 rank runs")
    if code:
        print(err[-3000:])
        return
    ref = results(ref_dir)
    print("     SAFE accuracy matrix (1 rank):\n%s" % ref[0]["safe"])
    for n in (2, 4):
        if n == 2:
            g = safe_group_ref(tmp)
            code, steps, err, d = g["code"], g["steps"], g["err"], g["dir"]
        else:
            d = os.path.join(tmp, "safe_%d" % n)
            code, steps, err = train(SAFE, n, d)
        check(code == 0, "SAFE on %d ranks runs" % n)
        if code:
            print(err[-3000:])
            continue
        compare("SAFE %d ranks" % n, ref, results(d), ref_steps, steps)

    others = {
        "simplecil": COMMON + ["method.name=simplecil"],
        "aper": COMMON + ["method.name=aper", "method.pet=adapter", "train.epochs_first=2",
                          "train.batch=7"],
        "ranpac": COMMON + ["method.name=ranpac", "method.pet=adapter", "train.epochs_first=1",
                            "train.batch=7", "method.rp.dim=300", "method.ridge.lo_exp=-2",
                            "method.ridge.hi_exp=4"],
        "l2p": COMMON + ["method.name=l2p", "train.epochs_first=1", "train.epochs_later=1",
                         "train.batch=7", "train.optimizer=adam", "train.t_max=0",
                         "method.prompt.pool=4", "method.prompt.top_k=2"],
        "dualprompt": COMMON + ["method.name=dualprompt", "train.epochs_first=1",
                                "train.epochs_later=1", "train.batch=7", "train.optimizer=adam",
                                "train.t_max=0", "method.prompt.pool=2",
                                "method.prompt.protocol=pilot_diag"],
        "slca": COMMON + ["method.name=slca", "train.epochs_first=1", "train.epochs_later=1",
                          "train.batch=7", "train.optimizer=sgd", "method.slca.ca_samples=16",
                          "method.slca.ca_epochs=2"],
        "ease": COMMON + ["method.name=ease", "method.pet=adapter", "method.adapter.dim=8",
                          "train.epochs_first=1", "train.epochs_later=1", "train.batch=7"],
        "lae": COMMON + ["method.name=lae", "train.epochs_first=1", "train.epochs_later=2",
                         "train.batch=7", "train.optimizer=adam", "train.t_max=0",
                         "method.lae.length=2", "method.lae.layers=2",
                         "method.lae.freeze_epochs=1", "method.lae.ema_decay=0.9"],
    }
    for name, args in others.items():
        code, _, err = train(args, 1, os.path.join(tmp, name + "_1"))
        check(code == 0, "%s on 1 rank runs" % name)
        if code:
            print(err[-3000:])
            continue
        base = results(os.path.join(tmp, name + "_1"))
        sizes = (2, 4) if ARGS.full and name in ("simplecil", "aper", "ranpac") else (2,)
        variants = [(n, []) for n in sizes]
        if name == "ranpac":
            variants = [(n, ["linalg.solver=" + s]) for n in sizes for s in ("scalapack", "lapack")]
        for n, extra in variants:
            d = os.path.join(tmp, "%s_%d_%s" % (name, n, "_".join(extra).replace("=", "-")))
            code, _, err = train(args + extra, n, d)
            label = "%s %d ranks %s" % (name, n, " ".join(extra))
            check(code == 0, label + " runs")
            if code:
                print(err[-3000:])
                continue
            compare(label, base, results(d))


def ckpt_position(run_dir):
    """(sessions_done, position_epoch, position_batch) of run_dir/ckpt.h5."""
    with h5py.File(os.path.join(run_dir, "ckpt.h5"), "r") as f:
        return tuple(int(f.attrs[k]) for k in ("sessions_done", "position_epoch", "position_batch"))


def test_checkpoint_resize(tmp):
    """SAFE with ScaLAPACK (G block-cyclic over the 2 ranks, written collectively) killed at a
    session boundary (G holds session 1's statistics) and mid-epoch; resumed on 1 rank (the
    whole G read back by one process, LAPACK) and on 4 (a 2 x 2 grid reading its pieces).
    Session 1 has 2 epochs of 2 steps, so 6 step boundaries (an epoch end counts) and
    checkpoints at boundaries 2, 4 and 6: checkpoint 2 is after epoch 2's first step."""
    g = safe_group_ref(tmp)
    check(g["code"] == 0, "SAFE with checkpoints every 2 step boundaries on 2 ranks (ScaLAPACK) runs")
    if g["code"]:
        print(g["err"][-3000:])
        return
    ref = results(g["dir"])
    kills = (("after session 1", {"SAFECL_FAULT_KILL_AFTER_SESSION": "1"}, (1, -1, -1),
              "resuming after session 1"),
             ("mid-epoch 2 of session 1 (checkpoint 2)", {"SAFECL_FAULT_KILL_AFTER_CKPT": "2"},
              (0, 1, 1), "resuming session 1 at epoch"))
    for where, env, position, said in kills:
        killed = os.path.join(tmp, "ckpt_killed_%s" % list(env)[0][-7:])
        code, _, _ = train(SAFE_CKPT + ON_GRID, 2, killed, env)
        left = os.path.exists(os.path.join(killed, "ckpt.h5")) and \
            not os.path.exists(os.path.join(killed, "trial.h5"))
        got_position = ckpt_position(killed) if left else None
        check(code != 0 and left and got_position == position,
              "2 ranks killed %s left ckpt.h5 only, at (sessions_done, epoch, batch) %s, want %s"
              % (where, got_position, position))
        if not left:
            continue
        for resume, solver in ((1, []), (4, ON_GRID)):
            d = os.path.join(tmp, "ckpt_%d_%s" % (resume, list(env)[0][-7:]))
            shutil.copytree(killed, d)
            code, _, err = train(SAFE_CKPT + solver, resume, d)
            check(code == 0 and said in err,
                  "the 2-rank checkpoint (killed %s) resumes on %d rank(s)" % (where, resume))
            if code:
                print(err[-3000:])
                continue
            got = results(d)
            same = all(np.array_equal(got[0][k], ref[0][k], equal_nan=True) for k in ref[0])
            check(same, "resumed on %d rank(s): accuracy matrices identical to the uninterrupted "
                  "2-rank run" % resume)
            rel = loss_diff(ref[1], got[1])
            check(rel <= 1e-5, "resumed on %d rank(s): loss curve within 1e-5 (%.2g)" % (resume, rel))
            compare_ridge("resumed on %d rank(s)" % resume, ref[2], got[2])


def make_folder_dataset(root, bad_split, bad_class):
    rng = np.random.default_rng(5)
    for split in ("train", "test"):
        for c in range(4):
            d = os.path.join(root, split, "class%d" % c)
            os.makedirs(d)
            for i in range(3):
                img = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(img).save(os.path.join(d, "img%d.png" % i))
    bad = os.path.join(root, bad_split, "class%d" % bad_class, "img2.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a PNG signature, then garbage
    return bad


def test_bad_input(tmp):
    # SimpleCIL meets the image in session 2's feature extraction, APER in session 1's training
    for method, bad_class, extra in (
            ("simplecil", 3, []),
            ("aper", 0, ["method.pet=adapter", "train.epochs_first=1", "train.batch=8"])):
        root = os.path.join(tmp, "folder_" + method)
        make_folder_dataset(root, "train", bad_class)
        args = ["dataset.format=folder", "dataset.root=" + root, "dataset.init_cls=2",
                "dataset.increment=2", "dataset.shuffle=false", "dataset.resize=224",
                "backbone.arch=vit_tiny_patch16_224", "method.name=" + method, "threads=1"] + extra
        for n in (1, 2, 4) if ARGS.full else (1, 2):
            d = os.path.join(tmp, "bad_%s_%d" % (method, n))
            code, _, err = train(args, n, d)
            named = err.count("class%d/img2.png" % bad_class)
            if n == 2:
                print("     " + "\n     ".join(l for l in err.splitlines() if "error" in l)[:1500])
            check(code not in (0, None) and named >= n,
                  "%s, %d rank(s): a corrupt image read by one rank fails the group with its name "
                  "on every rank (exit %s, named %d times)" % (method, n, code, named))
            check(not os.path.exists(os.path.join(d, "trial.h5")), "no trial.h5 after the failure")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--only", default="")
    ap.add_argument("--full", action="store_true",
                    help="also SimpleCIL, APER and RanPAC (both solvers) on 4 ranks and the bad "
                    "image on 4 ranks (the slow test_group_full)")
    ARGS = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="safecl_group_")
    try:
        for name, fn in (("equivalence", test_equivalence), ("checkpoint", test_checkpoint_resize),
                         ("bad_input", test_bad_input)):
            if not ARGS.only or ARGS.only == name:
                fn(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
