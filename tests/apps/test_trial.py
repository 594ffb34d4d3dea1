"""test_trial.py: `safecl train` end to end on generated data.

1. SimpleCIL, class-incremental on the synthetic benchmark with a tiny random ViT: the whole
   accuracy matrix must equal an independent NumPy computation (class order from NumPy's legacy
   permutation, prototypes = class means of `safecl features` output, cosine argmax over seen
   classes), and final / average / forgetting must follow from the matrix (docs/methods.md d.1).
2. A validation split held out of session 1's training data is evaluated every session.
   Rerunning the same command does nothing; a run.dir holding another trial is refused; a
   trial SIGKILLed right after session k's checkpoint and rerun ends with the identical accuracy
   matrix (SimpleCIL after sessions 1, 2, 4; RanPAC, whose state is G, Q and W_o, after 2).
   The class order follows the trial seed (seed 1994: its own order, matrix and id) unless
   dataset.order_seed pins it (recorded in the identity config); unshuffled stays identity.
   RanPAC's and SAFE's trial.h5 record every session's ridge searches (/ridge_search): one per
   session (RanPAC) or two (SAFE: fast, slow), each choosing its candidate of smallest
   validation error; a resumed trial writes the same table.
   train.drop_last: SAFE (heads only) with 24 and 12 training images per session in batches of
   5 takes floor(n / 5) steps per epoch (4 and 2; ceil without it), every step closing a loss
   record with train.log_every = 1, and a trial killed mid-session resumes to the same records.
3. L2P and DualPrompt with the pilot_diag protocol: both predictors stored, kill and resume
   mid-session identical, DualPrompt's per-image outcomes identical at eval.batch 1 and 5.
4. SimpleCIL, domain-incremental on a generated DomainNet-style list dataset: one session per
   domain, every session evaluated on all domains' test images.
5. SLCA (full fine-tuning, statistics, alignment): kill and resume mid-session and after session
   1 identical, the covariances in the checkpoint, PILOT's switches.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

failures = []


def text(v):
    """trial.h5 schema 3 stores strings fixed-length, which h5py returns as bytes."""
    return v.decode() if isinstance(v, bytes) else v


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def run(safecl, args):
    p = subprocess.run([safecl] + args, capture_output=True, text=True)
    if p.returncode:
        print(p.stderr)
    return p


def features(safecl, tmp, split, common):
    out = os.path.join(tmp, "feat_%s.h5" % split)
    p = run(safecl, ["features", "dataset.format=synthetic", "dataset.split=" + split,
                     "dataset.synthetic.classes=%d" % common["classes"],
                     "dataset.synthetic.%s_per_class=%d" % (split, common[split]),
                     "dataset.synthetic.size=224",
                     "dataset.synthetic.seed=5", "dataset.synthetic.difficulty=0.35",
                     "backbone.arch=vit_tiny_patch16_224",
                     "backbone.seed=11", "out=" + out])
    if p.returncode:
        raise SystemExit("safecl features (%s split) failed with exit %d" % (split, p.returncode))
    with h5py.File(out, "r") as f:
        return f["features"][...].astype(np.float64), f["labels"][...]


def reference_matrix(tr_x, tr_y, te_x, te_y, order, starts):
    mapped = np.empty_like(order)
    mapped[order] = np.arange(len(order))
    tr_m, te_m = mapped[tr_y], mapped[te_y]
    T = len(starts) - 1
    protos = np.zeros((len(order), tr_x.shape[1]))
    acc = np.full((T, T), np.nan)
    for t in range(T):
        for c in range(starts[t], starts[t + 1]):
            mean = tr_x[tr_m == c].mean(0)
            protos[c] = mean / np.linalg.norm(mean)
        seen = te_m < starts[t + 1]
        x = te_x[seen] / np.linalg.norm(te_x[seen], axis=1, keepdims=True)
        pred = np.argmax(x @ protos[:starts[t + 1]].T, axis=1)
        for s in range(t + 1):
            grp = (te_m[seen] >= starts[s]) & (te_m[seen] < starts[s + 1])
            acc[t, s] = 100.0 * np.mean(pred[grp] == te_m[seen][grp])
    return acc


def ridge_table(path):
    """/ridge_search of a trial.h5 as a dict of arrays (None when absent)."""
    with h5py.File(os.path.join(path, "trial.h5"), "r") as f:
        if "ridge_search" not in f:
            return None
        return {k: f["ridge_search"][k][...] for k in f["ridge_search"]}


def check_ridge_table(t, n_sessions, per_session, grid, name):
    """One entry per session and search, on the configured grid, each choosing its candidate of
    smallest validation error (the search's rule: the first smallest)."""
    if t is None:
        check(False, "%s: trial.h5 has /ridge_search" % name)
        return
    want_s = np.repeat(np.arange(n_sessions), per_session)
    want_k = np.tile(np.arange(per_session), n_sessions)
    check(np.array_equal(t["session"], want_s) and np.array_equal(t["search"], want_k),
          "%s: /ridge_search has one entry per session and search (%d x %d)"
          % (name, n_sessions, per_session))
    check(all(np.allclose(row, grid, rtol=1e-12, atol=0) for row in t["lambda"]),
          "%s: every search's candidates are the grid %s" % (name, grid))
    am = np.argmin(t["val_mse"], axis=1)
    check(np.array_equal(t["best"], am) and
          np.array_equal(t["chosen"], t["lambda"][np.arange(len(am)), am]) and
          np.all(np.isfinite(t["val_mse"])) and np.all(t["val_mse"] > 0),
          "%s: each chosen lambda is the candidate of smallest validation error: %s"
          % (name, list(t["chosen"])))


def same_ridge_table(a, b):
    return (a is None) == (b is None) and (a is None or (
        set(a) == set(b) and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)))


def test_class_incremental(safecl, tmp):
    common = {"classes": 12, "train": 6, "test": 4}
    run_dir = os.path.join(tmp, "cil")
    args = ["train", "method.name=simplecil", "dataset.format=synthetic",
            "dataset.synthetic.classes=12", "dataset.synthetic.train_per_class=6",
            "dataset.synthetic.test_per_class=4", "dataset.synthetic.seed=5",
            "dataset.synthetic.difficulty=0.35",
            "dataset.init_cls=4", "dataset.increment=3",
            "backbone.arch=vit_tiny_patch16_224", "backbone.seed=11", "eval.batch=8",
            "run.dir=" + run_dir]
    p = run(safecl, args)
    check(p.returncode == 0, "simplecil class-incremental trial runs")
    if p.returncode:
        return
    np.random.seed(1993)
    order = np.random.permutation(12)
    starts = [0, 4, 7, 10, 12]
    tr_x, tr_y = features(safecl, tmp, "train", common)
    te_x, te_y = features(safecl, tmp, "test", common)
    ref = reference_matrix(tr_x, tr_y, te_x, te_y, order, starts)
    with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
        got = f["predictors/simplecil/acc_matrix"][...]
        acc = f["predictors/simplecil/acc"][...]
        attrs = {k: text(v) for k, v in f.attrs.items()}
        class_order = f["class_order"][...]
        n_test = f["n_test"][...]
    check(list(class_order) == list(order),
          "class order (default: the trial seed, 1993) is NumPy's permutation(12) at seed 1993")
    check(list(n_test) == [16, 28, 40, 48], "every seen class's test images evaluated: %s" % list(n_test))
    same = np.array_equal(np.isnan(got), np.isnan(ref)) and np.allclose(got[~np.isnan(ref)], ref[~np.isnan(ref)], atol=1e-9)
    print("     acc matrix (trial):\n%s\n     acc matrix (NumPy from safecl features):\n%s" % (got, ref))
    check(same, "accuracy matrix equals the independent NumPy computation")
    final, avg = acc[-1], acc.mean()
    forg = np.mean([max(got[t, s] for t in range(s, 3)) - got[3, s] for s in range(3)])
    check(abs(attrs["final_acc"] - final) < 1e-12 and abs(attrs["avg_acc"] - avg) < 1e-12,
          "final %.4f and average incremental %.4f accuracy follow from the curve" % (final, avg))
    check(abs(attrs["forgetting"] - forg) < 1e-12, "forgetting %.4f follows from the matrix" % forg)
    check(final > 2 * 100.0 / 12, "SimpleCIL is well above chance (8.3%%) on overlapping classes: %.1f%%" % final)
    check(final < 100.0, "the benchmark is hard enough that the comparison is not trivially 100%")
    check(attrs["protocol"] == "class-incremental" and attrs["status"] == "finished",
          "protocol and status recorded")
    p = run(safecl, args + ["threads=1"])
    check(p.returncode == 0 and "already finished" in p.stderr,
          "rerun (with a result-neutral key changed) does nothing")
    p = run(safecl, [a if not a.startswith("dataset.increment") else "dataset.increment=4" for a in args])
    check(p.returncode != 0 and "not this trial" in p.stderr, "a run.dir holding another trial is refused")
    test_kill_and_resume(safecl, args, tmp, got, "simplecil", (1, 2, 4))
    test_class_order_seed(safecl, args, tmp, (tr_x, tr_y, te_x, te_y), starts, got, attrs)
    val_dir = os.path.join(tmp, "val")
    va = [x if not x.startswith("run.dir=") else "run.dir=" + val_dir for x in args]
    p = run(safecl, va + ["eval.val_fraction=0.25"])
    check(p.returncode == 0 and "1 of 24 session-1" not in p.stderr and "4 of 24 session-1" in p.stderr,
          "validation split: one image of each session-1 class held out (4 of 24)")
    with h5py.File(os.path.join(val_dir, "trial.h5"), "r") as f:
        val = f["predictors/simplecil/val_acc"][...]
        check(f.attrs["n_val"] == 4 and not np.isnan(val).any() and
              abs(f.attrs["val_acc"] - val.mean()) < 1e-12,
              "validation accuracy recorded every session: %s" % list(val))
        check(list(f["n_test"][...]) == [16, 28, 40, 48], "the test set is untouched by the split")
    rp_args = [x if not x.startswith("method.name") else "method.name=ranpac" for x in args]
    rp_args += ["method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4"]
    rp_args = [x if not x.startswith("run.dir=") else "run.dir=" + os.path.join(tmp, "rp") for x in rp_args]
    p = run(safecl, rp_args)
    check(p.returncode == 0, "ranpac trial runs")
    with h5py.File(os.path.join(tmp, "rp", "trial.h5"), "r") as f:
        rp_matrix = f["predictors/ranpac/acc_matrix"][...]
        rp_final = f.attrs["final_acc"]
    check(rp_final > 2 * 100.0 / 12, "RanPAC well above chance: %.1f%%" % rp_final)
    rp_ridge = ridge_table(os.path.join(tmp, "rp"))
    check_ridge_table(rp_ridge, 4, 1, [10.0 ** e for e in range(-2, 5)], "RanPAC")
    check(ridge_table(run_dir) is None, "SimpleCIL, which never searches, has no /ridge_search")
    test_kill_and_resume(safecl, rp_args, tmp, rp_matrix, "ranpac", (2,), rp_ridge)


def test_class_order_seed(safecl, args, tmp, feats, starts, got_1993, attrs_1993):
    """The class order follows the trial seed unless dataset.order_seed pins it (docs/methods.md
    a.2), and the trial identity follows: seed 1994 has its own order and its own id; pinned at
    1993, seed 1994 has the seed-1993 order (SimpleCIL draws nothing else, so the same matrix),
    an id of its own and the pin in its identity config; without shuffling the order is the
    identity whatever the seed."""
    def trial(name, extra):
        run_dir = os.path.join(tmp, name)
        a = [x if not x.startswith("run.dir=") else "run.dir=" + run_dir for x in args] + extra
        p = run(safecl, a)
        check(p.returncode == 0, "%s: trial runs" % name)
        if p.returncode:
            return None
        with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
            return (list(f["class_order"][...]), f["predictors/simplecil/acc_matrix"][...],
                    text(f.attrs["trial_id"]), text(f.attrs["identity_config"]))

    def same(a, b):
        return np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a[~np.isnan(b)], b[~np.isnan(b)], atol=1e-9)

    np.random.seed(1994)
    order_1994 = list(np.random.permutation(12))
    np.random.seed(1993)
    order_1993 = list(np.random.permutation(12))
    follows = trial("order_seed1994", ["seed=1994"])
    if follows:
        order, mat, tid, ident = follows
        check(order == order_1994, "seed 1994: class order is NumPy's permutation(12) at seed 1994")
        ref = reference_matrix(*feats, np.array(order_1994), starts)
        check(same(mat, ref), "seed 1994: accuracy matrix equals the NumPy computation in that order")
        check(tid != attrs_1993["trial_id"], "seeds 1993 and 1994 are different trials (ids differ)")
        check("dataset.order_seed = -1;" in ident and "seed = 1994;" in ident,
              "identity config records the followed order: order_seed -1 and seed 1994")
    pinned = trial("order_pinned1994", ["seed=1994", "dataset.order_seed=1993"])
    if pinned:
        order, mat, tid, ident = pinned
        check(order == order_1993, "seed 1994 pinned at order_seed 1993: the seed-1993 order")
        check(same(mat, got_1993), "pinned: SimpleCIL's matrix equals seed 1993's (only the order is seeded)")
        check(tid != attrs_1993["trial_id"] and (not follows or tid != follows[2]),
              "pinned: an id of its own")
        check("dataset.order_seed = 1993;" in ident, "pinned: order_seed 1993 in the identity config")
    fixed = trial("order_noshuffle1994", ["seed=1994", "dataset.shuffle=false"])
    if fixed:
        check(fixed[0] == list(range(12)), "shuffle = false: identity order whatever the seed")


def test_kill_and_resume(safecl, args, tmp, uninterrupted, method, kill_points, ridge=None):
    """SIGKILL right after the checkpoint of session k, rerun, compare with the uninterrupted run
    (its accuracy matrix and its /ridge_search table, `ridge`)."""
    for k in kill_points:
        run_dir = os.path.join(tmp, "killed_%s_%d" % (method, k))
        a = [x if not x.startswith("run.dir=") else "run.dir=" + run_dir for x in args]
        env = dict(os.environ, SAFECL_FAULT_KILL_AFTER_SESSION=str(k))
        p = subprocess.run([safecl] + a, capture_output=True, text=True, env=env)
        check(p.returncode == -9, "SIGKILL after session %d (exit %d)" % (k, p.returncode))
        check(os.path.exists(os.path.join(run_dir, "ckpt.h5")) and
              not os.path.exists(os.path.join(run_dir, "trial.h5")),
              "after the kill: a checkpoint and no results file")
        p = run(safecl, a)
        check(p.returncode == 0 and ("resuming after session %d" % k) in p.stderr,
              "rerun resumes after session %d" % k)
        with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
            resumed = f["predictors/%s/acc_matrix" % method][...]
        check(np.array_equal(np.isnan(resumed), np.isnan(uninterrupted)) and
              np.array_equal(resumed[~np.isnan(resumed)], uninterrupted[~np.isnan(uninterrupted)]),
              "%s killed after session %d and resumed: accuracy matrix identical" % (method, k))
        check(same_ridge_table(ridge_table(run_dir), ridge),
              "%s killed after session %d and resumed: /ridge_search identical" % (method, k))
        check(not os.path.exists(os.path.join(run_dir, "ckpt.h5")), "checkpoint removed once finished")


def test_safe_mid_session_resume(safecl, tmp):
    """SAFE (heads only) with a checkpoint every 2 steps, killed after checkpoints 2 and 5 (inside
    session 1's and session 2's training), resumed: same accuracy matrices and loss curve."""
    base = ["train", "method.name=safe", "method.pet=none", "dataset.format=synthetic",
            "dataset.synthetic.classes=8", "dataset.synthetic.train_per_class=6",
            "dataset.synthetic.test_per_class=3", "dataset.synthetic.difficulty=0.35",
            "dataset.init_cls=4", "dataset.increment=2", "backbone.arch=vit_tiny_patch16_224",
            "train.epochs_first=2", "train.epochs_later=1", "train.batch=8", "method.rp.dim=256",
            "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4", "method.safe.fast_cc=1",
            "eval.batch=8", "train.ckpt_every=2"]
    ref_dir = os.path.join(tmp, "safe_ref")
    p = run(safecl, base + ["run.dir=" + ref_dir])
    check(p.returncode == 0, "SAFE (heads only) trial runs")
    if p.returncode:
        return
    with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as f:
        ref = {k: f["predictors/%s/acc_matrix" % k][...] for k in ("safe", "slow", "fast")}
        ref_loss = f["losses"][...]
        ref_terms = [str(x, "utf-8") if isinstance(x, bytes) else x for x in f["loss_terms"][...]]
        check(ref_terms == ["total,ce,transfer", "total,ce,align,cross_class",
                            "total,ce,align,cross_class"],
              "/loss_terms names each session's own terms: %s" % ref_terms)
        agg, fast = f["predictors/safe/acc"][...], f["predictors/fast/acc"][...]
        diag = f["diagnostics/authors_protocol_acc"][...]
        want = np.concatenate([agg[:1], np.maximum(agg[1:], fast[1:])])
        check(np.array_equal(diag, want) and f.attrs["final_acc"] == agg[-1],
              "the released code's max(fast, aggregated) figure is only a named diagnostic; "
              "final_acc is the aggregated prediction")
        check(ref_loss.shape[0] == 2 + 1 + 1, "one loss record per epoch (%d)" % ref_loss.shape[0])
    ref_ridge = ridge_table(ref_dir)
    check_ridge_table(ref_ridge, 3, 2, [10.0 ** e for e in range(-2, 5)], "SAFE (fast, slow)")
    for n in (2, 5):
        d = os.path.join(tmp, "safe_kill_%d" % n)
        env = dict(os.environ, SAFECL_FAULT_KILL_AFTER_CKPT=str(n))
        p = subprocess.run([safecl] + base + ["run.dir=" + d], capture_output=True, text=True, env=env)
        check(p.returncode == -9, "SAFE killed after checkpoint %d (exit %d)" % (n, p.returncode))
        p = run(safecl, base + ["run.dir=" + d])
        check(p.returncode == 0, "SAFE resumes after a kill at checkpoint %d" % n)
        if p.returncode:
            continue
        with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
            same = all(np.array_equal(f["predictors/%s/acc_matrix" % k][...], ref[k], equal_nan=True)
                       for k in ref)
            loss = f["losses"][...]
            terms = [str(x, "utf-8") if isinstance(x, bytes) else x for x in f["loss_terms"][...]]
        check(same, "SAFE killed mid-session at checkpoint %d: slow, fast and aggregated matrices identical" % n)
        check(np.array_equal(loss, ref_loss, equal_nan=True), "the loss curve is identical too")
        check(terms == ref_terms, "and its term names per session")
        check(same_ridge_table(ridge_table(d), ref_ridge), "and its /ridge_search table")


def test_pet_methods(safecl, tmp):
    """Every method with a trained PET module, end to end (one short epoch), and SAFE with an
    adapter killed mid-session and resumed: PET parameters and momentum survive the checkpoint."""
    base = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=8",
            "dataset.synthetic.train_per_class=6", "dataset.synthetic.test_per_class=3",
            "dataset.synthetic.difficulty=0.35", "dataset.init_cls=4", "dataset.increment=2",
            "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=1", "train.epochs_later=1",
            "train.batch=8", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
            "eval.batch=8"]
    for method, pet in (("aper", "ssf"), ("ranpac", "vpt_deep"), ("safe", "adapter")):
        d = os.path.join(tmp, "pet_%s_%s" % (method, pet))
        p = run(safecl, base + ["method.name=" + method, "method.pet=" + pet, "run.dir=" + d])
        ok = p.returncode == 0
        if ok:
            with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
                final = f.attrs["final_acc"]
                loss = f["losses"][...]
            ok = final > 100.0 / 8 and np.isfinite(loss[:, 3]).all()
        check(ok, "%s with %s trains and evaluates end to end" % (method, pet))
    safe = base + ["method.name=safe", "method.pet=adapter", "method.safe.fast_cc=1",
                   "train.ckpt_every=2"]
    ref_dir, kill_dir = os.path.join(tmp, "pet_safe_ref"), os.path.join(tmp, "pet_safe_kill")
    p = run(safecl, safe + ["run.dir=" + ref_dir])
    env = dict(os.environ, SAFECL_FAULT_KILL_AFTER_CKPT="2")
    k = subprocess.run([safecl] + safe + ["run.dir=" + kill_dir], capture_output=True, text=True, env=env)
    r = run(safecl, safe + ["run.dir=" + kill_dir])
    same = False
    if p.returncode == 0 and k.returncode == -9 and r.returncode == 0:
        with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as a, \
             h5py.File(os.path.join(kill_dir, "trial.h5"), "r") as b:
            same = all(np.array_equal(a["predictors/%s/acc_matrix" % n][...],
                                      b["predictors/%s/acc_matrix" % n][...], equal_nan=True)
                       for n in ("safe", "slow", "fast")) and \
                np.array_equal(a["losses"][...], b["losses"][...], equal_nan=True)
    check(same, "SAFE with an adapter killed mid-session and resumed: identical matrices and losses")


def test_drop_last(safecl, tmp):
    """train.drop_last: an epoch's incomplete last batch is skipped (epochs x floor(n / B) steps),
    and checkpoint positions count those steps (a kill mid-session resumes to the same curve)."""
    base = ["train", "method.name=safe", "method.pet=none", "dataset.format=synthetic",
            "dataset.synthetic.classes=8", "dataset.synthetic.train_per_class=6",
            "dataset.synthetic.test_per_class=3", "dataset.synthetic.difficulty=0.35",
            "dataset.init_cls=4", "dataset.increment=2", "backbone.arch=vit_tiny_patch16_224",
            "train.epochs_first=2", "train.epochs_later=1", "train.batch=5", "method.rp.dim=256",
            "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4", "method.safe.fast_cc=1",
            "eval.batch=8", "train.log_every=1"]
    steps = {}
    for drop in ("true", "false"):
        d = os.path.join(tmp, "drop_last_%s" % drop)
        p = run(safecl, base + ["train.drop_last=" + drop, "run.dir=" + d])
        check(p.returncode == 0, "SAFE with train.drop_last=%s runs" % drop)
        if p.returncode:
            return
        with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
            loss = f["losses"][...]
        steps[drop] = [[int(np.sum((loss[:, 0] == t) & (loss[:, 1] == e))) for e in range(2)]
                       for t in range(3)]
        if drop == "true":
            ref_loss = loss
    check(steps["true"] == [[4, 4], [2, 0], [2, 0]],
          "drop_last: floor(24/5) = 4 and floor(12/5) = 2 steps per epoch: %s" % steps["true"])
    check(steps["false"] == [[5, 5], [3, 0], [3, 0]],
          "without drop_last: ceil(24/5) = 5 and ceil(12/5) = 3 steps per epoch: %s" % steps["false"])
    d = os.path.join(tmp, "drop_last_kill")
    args = base + ["train.drop_last=true", "train.ckpt_every=3", "run.dir=" + d]
    env = dict(os.environ, SAFECL_FAULT_KILL_AFTER_CKPT="2")
    k = subprocess.run([safecl] + args, capture_output=True, text=True, env=env)
    r = run(safecl, args)
    same = False
    if k.returncode == -9 and r.returncode == 0:
        with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
            same = np.array_equal(f["losses"][...], ref_loss, equal_nan=True)
    check(same, "drop_last: killed after checkpoint 2 (inside session 1's second epoch) "
          "and resumed: the same loss records")


def test_prompt_methods(safecl, tmp):
    """L2P and DualPrompt end to end with protocol = pilot_diag: the method's predictor and the
    diagnostic "pilot_diag" stored under their own names, finite losses of three terms; a trial
    killed after checkpoint 2 (inside session 1) and resumed ends with identical matrices and
    losses; DualPrompt's honest predictions per test image are identical at eval.batch 1 and 5
    (the diagnostic's are not required to be)."""
    base = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=6",
            "dataset.synthetic.train_per_class=5", "dataset.synthetic.test_per_class=3",
            "dataset.synthetic.difficulty=0.35", "dataset.init_cls=2", "dataset.increment=2",
            "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=1", "train.epochs_later=1",
            "train.batch=4", "train.optimizer=adam", "train.lr=0.01", "train.weight_decay=0",
            "train.t_max=0", "method.prompt.protocol=pilot_diag", "method.prompt.pool=4",
            "method.prompt.top_k=2", "eval.batch=5", "train.ckpt_every=2"]
    for method in ("l2p", "dualprompt"):
        args = base + ["method.name=" + method] + (
            ["method.prompt.top_k=1"] if method == "dualprompt" else [])
        ref_dir, kill_dir = (os.path.join(tmp, "%s_%s" % (method, x)) for x in ("ref", "kill"))
        p = run(safecl, args + ["run.dir=" + ref_dir])
        check(p.returncode == 0, "%s trains and evaluates end to end" % method)
        if p.returncode:
            continue
        with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as f:
            names = sorted(f["predictors"])
            loss = f["losses"][...]
            ref = {n: f["predictors/%s/acc_matrix" % n][...] for n in names}
        check(names == sorted([method, "pilot_diag"]),
              "%s stores its predictor and pilot_diag under their own names: %s" % (method, names))
        check(loss.shape[0] == 3 and np.isfinite(loss[:, 3:6]).all(),
              "%s: one finite loss record (total, ce, key similarity) per session" % method)
        env = dict(os.environ, SAFECL_FAULT_KILL_AFTER_CKPT="2")
        k = subprocess.run([safecl] + args + ["run.dir=" + kill_dir], capture_output=True,
                           text=True, env=env)
        r = run(safecl, args + ["run.dir=" + kill_dir])
        same = False
        if k.returncode == -9 and r.returncode == 0:
            with h5py.File(os.path.join(kill_dir, "trial.h5"), "r") as f:
                same = all(np.array_equal(f["predictors/%s/acc_matrix" % n][...], ref[n],
                                          equal_nan=True) for n in names) and \
                    np.array_equal(f["losses"][...], loss, equal_nan=True)
        check(same, "%s killed mid-session (exit %d) and resumed: identical matrices and losses"
              % (method, k.returncode))
        if method != "dualprompt":
            continue
        one_dir = os.path.join(tmp, "dualprompt_eval1")
        p = run(safecl, args + ["eval.batch=1", "run.dir=" + one_dir])
        same = False
        if p.returncode == 0:
            with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as a, \
                 h5py.File(os.path.join(one_dir, "trial.h5"), "r") as b:
                same = np.array_equal(a["predictors/dualprompt/correct"][...],
                                      b["predictors/dualprompt/correct"][...])
        check(same, "dualprompt: every test image's honest outcome identical at eval.batch 1 and 5")


def make_domainnet(root, rng, domains, classes, per):
    for d_i, dom in enumerate(domains):
        for split, n in (("train", per), ("test", per // 2)):
            lines = []
            for c in range(classes):
                os.makedirs(os.path.join(root, dom, "cls%d" % c), exist_ok=True)
                for k in range(n):
                    rel = "%s/cls%d/%s_%d.png" % (dom, c, split, k)
                    base = np.zeros((32, 32, 3)) + [40 * c, 255 - 40 * c, 60 * d_i]
                    img = np.clip(base + rng.integers(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(os.path.join(root, rel))
                    lines.append("./%s %d" % (rel, c))
            open(os.path.join(root, "%s_%s.txt" % (dom, split)), "w").write("\n".join(lines) + "\n")


def test_aper_without_pet_is_simplecil(safecl, tmp):
    """APER's prototypes of [f, f] are SimpleCIL's prototypes of f, up to a scale: with no PET the
    two methods must predict identically."""
    common = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=12",
              "dataset.synthetic.train_per_class=6", "dataset.synthetic.test_per_class=4",
              "dataset.synthetic.difficulty=0.35", "dataset.init_cls=4", "dataset.increment=4",
              "backbone.arch=vit_tiny_patch16_224", "eval.batch=8"]
    got = {}
    for m in ("simplecil", "aper"):
        d = os.path.join(tmp, "inv_" + m)
        p = run(safecl, common + ["method.name=" + m, "method.pet=none", "run.dir=" + d])
        if p.returncode == 0:
            with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
                got[m] = f["predictors/%s/acc_matrix" % m][...]
    check(len(got) == 2 and np.array_equal(got["simplecil"], got["aper"], equal_nan=True),
          "APER without PET predicts exactly as SimpleCIL")


def test_domain_incremental(safecl, tmp):
    root = os.path.join(tmp, "DomainNet")
    domains = ["real", "sketch", "clipart"]
    make_domainnet(root, np.random.default_rng(3), domains, classes=4, per=4)
    run_dir = os.path.join(tmp, "dil")
    p = run(safecl, ["train", "method.name=simplecil", "dataset.format=domainnet",
                     "dataset.root=" + root, "dataset.domains=" + ",".join(domains),
                     "dataset.classes=4", "dataset.shuffle=false", "dataset.resize=224",
                     "backbone.arch=vit_tiny_patch16_224", "eval.batch=8", "run.dir=" + run_dir])
    check(p.returncode == 0, "simplecil domain-incremental trial runs")
    if p.returncode:
        return
    with h5py.File(os.path.join(run_dir, "trial.h5"), "r") as f:
        m = f["predictors/simplecil/acc_matrix"][...]
        n_test = f["n_test"][...]
        attrs = {k: text(v) for k, v in f.attrs.items()}
    check(m.shape == (3, 3) and not np.isnan(m).any(),
          "every session is evaluated on every domain (no NaN in the 3x3 matrix)")
    check(list(n_test) == [24, 24, 24], "the test set is all domains in every session: %s" % list(n_test))
    check(attrs["protocol"] == "domain-incremental", "protocol recorded as domain-incremental")


def test_coda_prompt(safecl, tmp):
    """CODA-Prompt end to end (tiny random ViT, 3 sessions, batch 10 with drop_last), its
    configuration errors, and a kill mid-session and after session 1 with resumes that end with
    the uninterrupted accuracy matrix and loss curve."""
    base = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=8",
            "dataset.synthetic.train_per_class=6", "dataset.synthetic.test_per_class=3",
            "dataset.synthetic.difficulty=0.35", "dataset.init_cls=4", "dataset.increment=2",
            "backbone.arch=vit_tiny_patch16_224", "method.name=coda_prompt",
            "method.prompt.pool=12", "method.prompt.length=4", "method.prompt.g_layers=0",
            "method.prompt.e_layers=2", "train.optimizer=adam", "train.lr=0.01",
            "train.weight_decay=0", "train.epochs_first=2", "train.epochs_later=1",
            "train.batch=10", "train.drop_last=true", "eval.batch=7"]
    ref_dir = os.path.join(tmp, "coda_ref")
    p = run(safecl, base + ["run.dir=" + ref_dir])
    check(p.returncode == 0, "coda_prompt trains and evaluates end to end")
    if p.returncode:
        return
    with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as f:
        ref = f["predictors/coda_prompt/acc_matrix"][...]
        ref_loss = f["losses"][...]
    # drop_last: 24, 12, 12 training images in batches of 10 -> 2, 1, 1 steps; one record per epoch
    check(ref.shape == (3, 3) and ref_loss.shape[0] == 2 + 1 + 1 and
          np.isfinite(ref_loss[:, 3]).all(), "coda_prompt: 3 x 3 accuracy matrix, finite losses")
    p = run(safecl, base + ["method.prompt.protocol=pilot_diag",
                            "run.dir=" + os.path.join(tmp, "coda_diag")])
    check(p.returncode != 0 and "per image" in p.stderr,
          "coda_prompt refuses protocol = pilot_diag, saying why")
    p = run(safecl, base + ["method.prompt.pool=2", "run.dir=" + os.path.join(tmp, "coda_pool")])
    check(p.returncode != 0 and "cannot be shared by 3 sessions" in p.stderr,
          "coda_prompt refuses fewer components than sessions")
    for env_key, n, what in (("SAFECL_FAULT_KILL_AFTER_CKPT", "1", "mid-session (checkpoint 1)"),
                             ("SAFECL_FAULT_KILL_AFTER_SESSION", "1", "after session 1")):
        d = os.path.join(tmp, "coda_kill_%s" % env_key[-4:])
        extra = ["train.ckpt_every=1"] if env_key.endswith("CKPT") else []
        env = dict(os.environ, **{env_key: n})
        k = subprocess.run([safecl] + base + extra + ["run.dir=" + d], capture_output=True,
                           text=True, env=env)
        r = run(safecl, base + extra + ["run.dir=" + d])
        same = False
        if k.returncode == -9 and r.returncode == 0:
            with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
                same = np.array_equal(f["predictors/coda_prompt/acc_matrix"][...], ref,
                                      equal_nan=True) and \
                    np.array_equal(f["losses"][...], ref_loss, equal_nan=True)
        check(same, "coda_prompt killed %s and resumed: identical accuracy matrix and losses" % what)


def test_slca(safecl, tmp):
    """SLCA end to end (tiny random ViT, every backbone tensor trained, 3 sessions): its predictor
    and a finite CE per session; the checkpoint holds the class covariances, one D x D block per
    class of the benchmark; killed mid-session and after session 1, resumed to the uninterrupted
    accuracy matrix and losses (the backbone copy, its momentum, raw and aligned heads and the
    statistics are all in the state); PILOT's switches (pre-trained final LayerNorm, 3 alignment
    epochs) run too."""
    base = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=6",
            "dataset.synthetic.train_per_class=5", "dataset.synthetic.test_per_class=3",
            "dataset.synthetic.difficulty=0.35", "dataset.init_cls=2", "dataset.increment=2",
            "backbone.arch=vit_tiny_patch16_224", "method.name=slca", "train.optimizer=sgd",
            "train.lr=0.01", "train.epochs_first=2", "train.epochs_later=1", "train.batch=4",
            "method.slca.milestone=1", "method.slca.ca_samples=16", "method.slca.ca_epochs=2",
            "eval.batch=5"]
    ref_dir = os.path.join(tmp, "slca_ref")
    p = run(safecl, base + ["run.dir=" + ref_dir])
    check(p.returncode == 0, "slca trains, aligns and evaluates end to end")
    if p.returncode:
        return
    with h5py.File(os.path.join(ref_dir, "trial.h5"), "r") as f:
        names = sorted(f["predictors"])
        ref = f["predictors/slca/acc_matrix"][...]
        ref_loss = f["losses"][...]
    check(names == ["slca"] and ref.shape == (3, 3) and ref_loss.shape[0] == 2 + 1 + 1 and
          np.isfinite(ref_loss[:, 3]).all(),
          "slca: its predictor, a 3 x 3 accuracy matrix, one finite CE per epoch")
    check(p.stderr.count("classifier alignment, 8 mini-batches") == 1 and
          p.stderr.count("classifier alignment, 12 mini-batches") == 1,
          "slca: the alignment of sessions 2 and 3 steps K_seen mini-batches per epoch (4, 6)")
    for env_key, n, what in (("SAFECL_FAULT_KILL_AFTER_CKPT", "2", "mid-session (checkpoint 2)"),
                             ("SAFECL_FAULT_KILL_AFTER_SESSION", "1", "after session 1")):
        d = os.path.join(tmp, "slca_kill_%s" % env_key[-4:])
        extra = ["train.ckpt_every=2"] if env_key.endswith("CKPT") else []
        env = dict(os.environ, **{env_key: n})
        k = subprocess.run([safecl] + base + extra + ["run.dir=" + d], capture_output=True,
                           text=True, env=env)
        if not extra and k.returncode == -9:
            with h5py.File(os.path.join(d, "ckpt.h5"), "r") as f:
                cov = f["method/slca_class_cov"]
                shape, fitted = cov.shape, bool(np.any(cov[:2]) and not np.any(cov[2:]))
            check(shape == (6, 192 * 192) and fitted,
                  "slca: the checkpoint after session 1 holds one 192 x 192 covariance per class, "
                  "those of session 1's classes fitted")
        r = run(safecl, base + extra + ["run.dir=" + d])
        same = False
        if k.returncode == -9 and r.returncode == 0:
            with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
                same = np.array_equal(f["predictors/slca/acc_matrix"][...], ref,
                                      equal_nan=True) and \
                    np.array_equal(f["losses"][...], ref_loss, equal_nan=True)
        check(same, "slca killed %s and resumed: identical accuracy matrix and losses" % what)
    p = run(safecl, base + ["method.slca.fresh_norm=false", "method.slca.ca_epochs=3",
                            "run.dir=" + os.path.join(tmp, "slca_pilot")])
    check(p.returncode == 0 and "classifier alignment, 12 mini-batches" in p.stderr,
          "slca with PILOT's switches (pre-trained final LayerNorm, 3 alignment epochs) runs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_class_incremental(a.safecl, tmp)
        test_domain_incremental(a.safecl, tmp)
        test_aper_without_pet_is_simplecil(a.safecl, tmp)
        test_pet_methods(a.safecl, tmp)
        test_safe_mid_session_resume(a.safecl, tmp)
        test_coda_prompt(a.safecl, tmp)
        test_drop_last(a.safecl, tmp)
        test_prompt_methods(a.safecl, tmp)
        test_slca(a.safecl, tmp)
    if failures:
        print("test_trial: %d failure(s)" % len(failures))
        sys.exit(1)
    print("test_trial: all checks passed")


if __name__ == "__main__":
    main()
