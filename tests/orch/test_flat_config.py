"""test_flat_config.py: `safecl train` reads the flat config older trial.h5 files hold.

Before configs were printed as libconfig, trial.h5's `config` attribute was the flat form
`dotted.name = value;` (the form `identity_config` still has), which libconfig refuses ("syntax
error" at line 1). A researcher who extracts it as README.md shows gets a file `safecl train`
reads again:
1. identity_config of a fresh trial.h5, plus flat lines for keys outside the identity (run.dir
   with an escaped quote, threads), read back: --print-trial-id gives the trial's id, and
   --print-config shows the non-identity values (the escaped quote unescaped).
2. The flat file runs: `safecl train FLAT.cfg run.dir=...` finishes the same trial.
3. A flat file with an unknown key fails naming the file, the line and the key.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py

from orch_util import REPO, check, finish

TINY = [REPO + "/configs/datasets/synthetic.cfg", REPO + "/configs/methods/simplecil.cfg",
        REPO + "/configs/backbones/vit_tiny_random.cfg", "dataset.synthetic.classes=4",
        "dataset.synthetic.train_per_class=2", "dataset.synthetic.test_per_class=2",
        "dataset.init_cls=2", "dataset.increment=2", "threads=1"]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def train(safecl, args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([safecl, "train"] + args, capture_output=True, text=True, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_flat_") as tmp:
        first = os.path.join(tmp, "first")
        p = train(a.safecl, TINY + ["run.dir=" + first])
        check(p.returncode == 0, "the tiny trial runs (%s)" % p.stderr[-500:])
        if p.returncode != 0:
            return finish("test_flat_config")
        with h5py.File(os.path.join(first, "trial.h5"), "r") as f:
            tid = text(f.attrs["trial_id"])
            ident = text(f.attrs["identity_config"])
        check(ident.startswith("dataset.") and " = " in ident.split("\n")[0],
              "identity_config is the flat form: %r" % ident[:80])
        flat = os.path.join(tmp, "old.cfg")
        with open(flat, "w") as f:
            f.write(ident.rstrip("\n") + '\nrun.dir = "%s/x\\"y";\nthreads = 1;\n' % tmp)
        p = train(a.safecl, [flat, "--print-trial-id"])
        check(p.returncode == 0 and p.stdout.strip() == tid,
              "--print-trial-id of the flat file: %s (want %s): %s"
              % (p.stdout.strip(), tid, p.stderr[-800:]))
        p = train(a.safecl, [flat, "--print-config"])
        check(p.returncode == 0 and ('dir = "%s/x\\"y";' % tmp) in p.stdout,
              "--print-config shows run.dir with its quote: %s" % (p.stdout + p.stderr)[-800:])
        again = os.path.join(tmp, "again")
        p = train(a.safecl, [flat, "run.dir=" + again])
        ok = p.returncode == 0 and os.path.exists(os.path.join(again, "trial.h5"))
        if ok:
            with h5py.File(os.path.join(again, "trial.h5"), "r") as f:
                ok = text(f.attrs["trial_id"]) == tid
        check(ok, "the flat file runs the same trial again: %s" % p.stderr[-800:])
        bad = os.path.join(tmp, "bad.cfg")
        with open(bad, "w") as f:
            f.write('dataset.name = "synthetic";\nmethod.no_such_key = 3;\n')
        p = train(a.safecl, [bad, "--print-trial-id"])
        check(p.returncode != 0 and "bad.cfg:2" in p.stderr and "method.no_such_key" in p.stderr,
              "an unknown key of a flat file is refused with file:line: %s" % p.stderr[-800:])
    return finish("test_flat_config")


if __name__ == "__main__":
    sys.exit(main())
