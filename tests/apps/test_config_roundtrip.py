"""test_config_roundtrip.py: configs a person can round-trip (docs/architecture.md, configuration).

- Every shipped config file (configs/{datasets,methods,backbones,features}/*.cfg), alone and with
  overrides of awkward values: `--print-config` -> file -> `--print-config` of that file gives
  the same text, and (with the dataset switched to the synthetic generator and random weights,
  so that no data is needed) `--print-trial-id` gives the same id.
- Files, overrides and flags in any order: `--print-config` anywhere gives the same text; they
  apply left to right, and a file after an override sets the key again, with a warning.
- The trial id of a fixed tiny trial is the one the code before dataset.limit and
  backbone.ignore_unexpected existed gave (28c4381), so adding them renamed no trial;
  dataset.limit=0 and backbone.ignore_unexpected=true keep it, dataset.limit=1 changes it.
- A finished tiny trial: the config stored in its trial.h5 reads back to its trial id, and
  rerunning from that file in a new directory gives a trial.h5 with the same id.
- dataset.limit=1 keeps one image per class in both splits.
- backbone.ignore_unexpected: a weights file with an extra tensor is refused naming it, and
  accepted with the key set.
- An unknown key names the nearest known one; a failure is one line without the code locations,
  which SAFECL_LOG=debug adds.
Exits non-zero on any failure.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import vit_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
failures = 0

# A trial that needs no files: synthetic data, random tiny ViT, 4 classes in 2 sessions.
TINY = [os.path.join(ROOT, "configs/backbones/vit_tiny_random.cfg"), "dataset.synthetic.classes=4",
        "dataset.synthetic.train_per_class=2", "dataset.synthetic.test_per_class=2",
        "dataset.init_cls=2", "dataset.increment=2", "method.name=simplecil", "threads=1",
        "eval.batch=4"]
# Its id as `safecl train` at 28c4381 wrote it into trial.h5 (before dataset.limit existed).
TINY_ID_BEFORE = "6e58259762f2fc6cc751c8ba80108314"
# Makes any trial config openable without data or weights files.
NO_FILES = ["dataset.format=synthetic", "dataset.root=", "backbone.weights="]


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


def run(safecl, args, env=None):
    return subprocess.run([safecl] + args, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def printed(safecl, command, args):
    """(config text, trial id or None, stderr) of `--print-config [--print-trial-id]`."""
    flags = ["--print-config"] + (["--print-trial-id"] if command == "train" else [])
    p = run(safecl, [command] + args + flags)
    if p.returncode:
        return None, None, p.stderr
    if command != "train":
        return p.stdout, None, p.stderr
    text, _, last = p.stdout.rstrip("\n").rpartition("\n")
    return text + "\n", last, p.stderr


def round_trip(safecl, tmp, command, args, what):
    text, tid, err = printed(safecl, command, args)
    check(text is not None, "%s: prints (%s)" % (what, err.strip()[:200]))
    if text is None:
        return
    path = os.path.join(tmp, "printed.cfg")
    with open(path, "w") as f:
        f.write(text)
    again, tid2, err2 = printed(safecl, command, [path])
    check(again == text and tid == tid2, "%s: reads back to the same text%s" %
          (what, " and trial id" if tid else ""))
    if again != text:
        print("first:\n%s\nsecond:\n%s\n%s" % (text, again, err2))


def test_shipped(safecl, tmp):
    n = 0
    for kind in ("datasets", "methods", "backbones"):
        for f in sorted(glob.glob(os.path.join(ROOT, "configs", kind, "*.cfg"))):
            name = os.path.relpath(f, ROOT)
            text, _, err = printed(safecl, "plan", [f])
            check(text is not None, "%s parses (%s)" % (name, err.strip()[:200]))
            round_trip(safecl, tmp, "train", [f] + NO_FILES, name + " + synthetic data")
            n += 1
    for f in sorted(glob.glob(os.path.join(ROOT, "configs", "features", "*.cfg"))):
        round_trip(safecl, tmp, "features", [f], os.path.relpath(f, ROOT))
        n += 1
    check(n >= 30, "%d shipped configs round-tripped" % n)
    awkward = ["train.lr=0.1", "method.safe.slow_diag=5e-10", "method.safe.slow_rdn=0.30000000000000004",
               "seed=4294967295", "dataset.synthetic.seed=4294967295", "dataset.name=my set\\x \"q\"",
               "method.lae.ema_decay=0.99990000000000001", "train.weight_decay=1e-300",
               "dataset.limit=1000000000000"]
    round_trip(safecl, tmp, "train", [os.path.join(ROOT, "configs/datasets/cifar100.cfg"),
                                      os.path.join(ROOT, "configs/methods/safe_cifar100.cfg")] +
               NO_FILES + awkward, "cifar100 + SAFE + awkward overrides")
    text, _, _ = printed(safecl, "train", awkward)
    check(text is not None and "lr = 0.1;" in text and "slow_diag = 5e-10;" in text
          and "seed = 4294967295L;" in text and "slow_rdn = 0.30000000000000004;" in text,
          "floats shortest-exact, integers beyond 32 bits with L")


def test_order(safecl, tmp):
    d = os.path.join(ROOT, "configs/datasets/cifar100.cfg")
    m = os.path.join(ROOT, "configs/methods/safe_cifar100.cfg")
    base = run(safecl, ["train", "--print-config", d, m, "train.lr=0.5"])
    for args in ([d, "--print-config", m, "train.lr=0.5"], [d, m, "train.lr=0.5", "--print-config"],
                 [d, "train.lr=0.5", m, "--print-config", "train.lr=0.5"]):
        p = run(safecl, ["train"] + args)
        check(p.returncode == 0 and p.stdout == base.stdout, "same config from %s" %
              " ".join(os.path.basename(a) for a in args))
    for command in ("plan", "features"):
        a = run(safecl, [command, "--print-config", "dataset.crop=224"])
        b = run(safecl, [command, "dataset.crop=224", "--print-config"])
        check(a.returncode == 0 and a.stdout == b.stdout and "crop = 224;" in a.stdout,
              "%s: --print-config anywhere" % command)
    # left to right: a file after an override sets the key again, with a warning naming both
    lr = os.path.join(tmp, "lr.cfg")
    with open(lr, "w") as f:
        f.write("train = { lr = 0.25; };\n")
    p = run(safecl, ["train", "train.lr=0.5", lr, "--print-config"])
    check(p.returncode == 0 and "  lr = 0.25;" in p.stdout
          and "sets train.lr again after the override train.lr=0.5" in p.stderr,
          "a file after an override wins, with a warning (%s)" % p.stderr.strip())
    p = run(safecl, ["train", lr, "train.lr=0.5", "--print-config"])
    check(p.returncode == 0 and "  lr = 0.5;" in p.stdout and "again" not in p.stderr,
          "an override after a file wins, silently")
    p = run(safecl, ["train", "--print-confg"])
    check(p.returncode == 2 and "unknown option --print-confg" in p.stderr, "unknown option: exit 2")


def trial_id_of(safecl, args):
    p = run(safecl, ["train"] + args + ["--print-trial-id"])
    return p.stdout.strip() if p.returncode == 0 else "failed: " + p.stderr.strip()


def test_identity(safecl):
    tid = trial_id_of(safecl, TINY)
    check(tid == TINY_ID_BEFORE, "tiny trial id %s is the one before dataset.limit (%s)" %
          (tid, TINY_ID_BEFORE))
    check(trial_id_of(safecl, TINY + ["dataset.limit=0"]) == tid, "dataset.limit=0 keeps the id")
    check(trial_id_of(safecl, TINY + ["backbone.ignore_unexpected=true"]) == tid,
          "backbone.ignore_unexpected keeps the id")
    one = trial_id_of(safecl, TINY + ["dataset.limit=1"])
    check(len(one) == 32 and one != tid, "dataset.limit=1 is another trial")
    check(trial_id_of(safecl, TINY + ["dataset.limit=1"]) == one, "the same limit, the same id")


def h5_attr(path, name):
    with h5py.File(path, "r") as f:
        v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def test_trial_h5(safecl, tmp):
    first = os.path.join(tmp, "first")
    p = run(safecl, ["train"] + TINY + ["run.dir=" + first])
    check(p.returncode == 0, "tiny trial runs (%s)" % p.stderr.strip()[-300:])
    if p.returncode:
        return
    h5 = os.path.join(first, "trial.h5")
    stored, tid = h5_attr(h5, "config"), h5_attr(h5, "trial_id")
    cfg = os.path.join(tmp, "from_trial.cfg")
    with open(cfg, "w") as f:
        f.write(stored)
    check(trial_id_of(safecl, [cfg]) == tid, "trial.h5's config reads back to its trial id")
    second = os.path.join(tmp, "second")
    p = run(safecl, ["train", cfg, "run.dir=" + second])
    check(p.returncode == 0 and os.path.exists(os.path.join(second, "trial.h5"))
          and h5_attr(os.path.join(second, "trial.h5"), "trial_id") == tid,
          "rerun from the stored config in a new directory: the same trial id")
    # dataset.limit=1 trims both splits to one image per class
    lim = os.path.join(tmp, "limit")
    p = run(safecl, ["train"] + TINY + ["dataset.limit=1", "run.dir=" + lim])
    check(p.returncode == 0 and "session 1/2: classes [0, 2), 2 train / 2 test images" in p.stderr,
          "dataset.limit=1: 2 train and 2 test images in session 1 (%s)" %
          [l for l in p.stderr.splitlines() if "session 1/2" in l])
    if p.returncode == 0:
        ident = h5_attr(os.path.join(lim, "trial.h5"), "identity_config")
        check("dataset.limit = 1;" in ident, "the limit is in the identity config")


def test_ignore_unexpected(safecl, tmp):
    model = vit_ref.create("vit_tiny_patch16_224")
    vit_ref.init_random(model, 3)
    tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    tensors["extra.adapter.weight"] = tensors["cls_token"].copy()
    weights = os.path.join(tmp, "extra.safetensors")
    vit_ref.write_safetensors(weights, tensors)
    args = TINY + ["backbone.weights=" + weights]
    p = run(safecl, ["train"] + args + ["run.dir=" + os.path.join(tmp, "w1")])
    check(p.returncode != 0 and "extra.adapter.weight" in p.stderr,
          "an unexpected tensor is refused by name (%s)" % p.stderr.strip()[-200:])
    p = run(safecl, ["train"] + args + ["backbone.ignore_unexpected=true",
                                        "run.dir=" + os.path.join(tmp, "w2")])
    check(p.returncode == 0, "backbone.ignore_unexpected=true loads it (%s)" % p.stderr.strip()[-200:])


def test_messages(safecl):
    p = run(safecl, ["train", "--print-config", "method.safe.gama=3"])
    check(p.returncode == 1 and "did you mean 'method.safe.gamma'?" in p.stderr,
          "an unknown key names the nearest one: %s" % p.stderr.strip())
    check(len(p.stderr.strip().splitlines()) == 1 and "  at src/" not in p.stderr,
          "a failure is one line by default")
    p = run(safecl, ["train", "--print-config", "method.safe.gama=3"], env={"SAFECL_LOG": "debug"})
    check(p.returncode == 1 and "  at src/config/" in p.stderr,
          "SAFECL_LOG=debug adds the code locations")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_shipped(a.safecl, tmp)
        test_order(a.safecl, tmp)
        test_identity(a.safecl)
        test_trial_h5(a.safecl, tmp)
        test_ignore_unexpected(a.safecl, tmp)
        test_messages(a.safecl)
    print("test_config_roundtrip: %s" % ("all checks passed" if not failures else
                                         "%d failure(s)" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
