#!/usr/bin/python3
"""test_prompt_variant_trial.py: DualPrompt's coda variant and L2P++ end to end through `safecl
train` (tiny random ViT, 3 sessions, CODA's recipe with batch 10 and drop_last): a 3 x 3 accuracy
matrix and finite losses with the variant's loss terms (total = ce + key_loss); a kill
mid-session resumed to the uninterrupted accuracy matrix and loss curve (the flat array and
Adam's state are the whole state; the session boundary is the same path as for CODA-Prompt,
tests/apps/test_trial.py). The per-image evaluation is checked by prompt_variant_ref.py at test
batches of 1, 7 and 64. Exits 1 on any failure."""
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
    if p.returncode > 0:
        print(p.stderr)
    return p


BASE = ["train", "dataset.format=synthetic", "dataset.synthetic.classes=8",
        "dataset.synthetic.train_per_class=6", "dataset.synthetic.test_per_class=3",
        "dataset.synthetic.difficulty=0.35", "dataset.init_cls=4", "dataset.increment=2",
        "backbone.arch=vit_tiny_patch16_224", "train.optimizer=adam", "train.lr=0.01",
        "train.weight_decay=0", "train.epochs_first=2", "train.epochs_later=1",
        "train.batch=10", "train.drop_last=true"]
VARIANTS = {
    "dualprompt": ["method.name=dualprompt", "method.dualprompt_variant=coda",
                   "method.prompt.pool=3", "method.prompt.length=4", "method.prompt.g_length=2",
                   "method.prompt.g_layers=1", "method.prompt.e_layers=2",
                   "method.prompt.top_k=1"],
    "l2p": ["method.name=l2p", "method.l2p_variant=plusplus", "method.prompt.pool=6",
            "method.prompt.length=4", "method.prompt.top_k=2"],
}


def read(d, name):
    with h5py.File(os.path.join(d, "trial.h5"), "r") as f:
        return f["predictors/%s/acc_matrix" % name][...], f["losses"][...]


def variant(safecl, tmp, name, keys):
    base = BASE + keys
    ref_dir = os.path.join(tmp, name + "_ref")
    p = run(safecl, base + ["eval.batch=7", "run.dir=" + ref_dir])
    check(p.returncode == 0, "%s variant trains and evaluates end to end" % name)
    if p.returncode:
        return
    ref, ref_loss = read(ref_dir, name)
    # drop_last: 24, 12, 12 training images in batches of 10 -> 2, 1, 1 steps; a record per epoch
    # with the terms total, ce, key_loss after the three leading columns
    terms = ref_loss[:, 3:6]
    check(ref.shape == (3, 3) and ref_loss.shape[0] == 2 + 1 + 1 and np.isfinite(terms).all() and
          np.allclose(terms[:, 0], terms[:, 1] + terms[:, 2], rtol=1e-12, atol=0),
          "%s variant: 3 x 3 accuracy matrix, finite losses, total = ce + key_loss" % name)
    for env_key, what in (("SAFECL_FAULT_KILL_AFTER_CKPT", "mid-session (checkpoint 1)"),):
        d = os.path.join(tmp, "%s_kill_%s" % (name, env_key[-4:]))
        extra = ["eval.batch=7", "run.dir=" + d]
        extra += ["train.ckpt_every=1"] if env_key.endswith("CKPT") else []
        k = run(safecl, base + extra, env=dict(os.environ, **{env_key: "1"}))
        r = run(safecl, base + extra)
        same = False
        if k.returncode == -9 and r.returncode == 0:
            m, loss = read(d, name)
            same = np.array_equal(m, ref, equal_nan=True) and \
                np.array_equal(loss, ref_loss, equal_nan=True)
        check(same, "%s variant killed %s (exit %d) and resumed: identical accuracy matrix and "
              "losses" % (name, what, k.returncode))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, keys in VARIANTS.items():
            variant(a.safecl, tmp, name, keys)
    if failures:
        print("test_prompt_variant_trial: %d failure(s)" % len(failures))
        return 1
    print("test_prompt_variant_trial: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
