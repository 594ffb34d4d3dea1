"""test_features.py: `safecl features` end to end against PyTorch + PIL + torchvision.

Builds a small class-folder dataset (JPEG and PNG, several sizes and aspect ratios, class names
whose sorted order is not their creation order), writes random tiny-ViT weights in timm naming,
runs `safecl features` with the SAFE test transform (Resize(256, bicubic) + CenterCrop(224) +
ToTensor), and compares every feature with the reference pipeline: PIL open/convert("RGB"),
torchvision transforms, the from-scratch PyTorch ViT of tests/model/vit_ref.py. Then checks the
bad-input paths: each must fail with a message naming the culprit and leave an existing output
file untouched; the old keys data.* (the names before `safecl features` took `safecl train`'s)
still work with a deprecation line, or are refused naming the new key where the meaning changed;
dataset.limit keeps the first N images of each class; --print-config reads back to the same
text. Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import vit_ref  # noqa: E402

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def make_dataset(root, rng):
    # Class names chosen so that creation order, case and byte order disagree.
    classes = ["n02_zebra", "N01_Upper", "n01_ant"]
    sizes = [(300, 200), (200, 300), (256, 256), (500, 375), (64, 48), (224, 224)]
    for split in ("train", "test"):
        for ci, cls in enumerate(classes):
            d = os.path.join(root, split, cls)
            os.makedirs(d)
            for k, (w, h) in enumerate(sizes[ci:ci + 3]):
                yy, xx = np.mgrid[0:h, 0:w]
                base = np.stack([(xx * (ci + 1) * 3) % 256, (yy * 5 + 40 * ci) % 256,
                                 ((xx + yy) * 2) % 256], -1)
                noise = rng.integers(0, 40, size=(h, w, 3))
                img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
                ext = ".JPG" if k == 0 else (".png" if k == 1 else ".jpeg")
                img.save(os.path.join(d, "img_%d%s" % (2 - k, ext)),
                         quality=90) if ext != ".png" else img.save(os.path.join(d, "img_%d%s" % (2 - k, ext)))
            open(os.path.join(d, ".hidden_notes"), "w").write("not an image")
    return sorted(classes)


def reference_features(model, root, classes):
    tf = transforms.Compose([transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
                             transforms.CenterCrop(224), transforms.ToTensor()])
    feats, labels, paths = [], [], []
    for ci, cls in enumerate(classes):
        d = os.path.join(root, "test", cls)
        for f in sorted(x for x in os.listdir(d) if not x.startswith(".")):
            img = Image.open(os.path.join(d, f)).convert("RGB")
            with torch.no_grad():
                feats.append(model(tf(img).unsqueeze(0))[0].numpy())
            labels.append(ci)
            paths.append("test/%s/%s" % (cls, f))
    return np.stack(feats), np.array(labels), paths


def run(safecl, args, expect_ok=True):
    p = subprocess.run([safecl, "features"] + args, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        print(p.stderr)
    return p


def test_parity(safecl, tmp):
    rng = np.random.default_rng(0)
    root = os.path.join(tmp, "ds")
    classes = make_dataset(root, rng)
    model = vit_ref.create("vit_tiny_patch16_224")
    vit_ref.init_random(model, 7)
    model.eval()
    weights = os.path.join(tmp, "tiny.safetensors")
    vit_ref.write_safetensors(weights, {k: v.detach().numpy() for k, v in model.state_dict().items()})
    out = os.path.join(tmp, "f.h5")
    p = run(safecl, ["dataset.format=folder", "dataset.root=" + root, "dataset.split=test",
                     "dataset.resize=256", "dataset.crop=224", "backbone.arch=vit_tiny_patch16_224",
                     "backbone.weights=" + weights, "eval.batch=4", "out=" + out])
    check(p.returncode == 0, "safecl features exits 0 on a folder dataset")
    if p.returncode != 0:
        return
    ref, ref_labels, ref_paths = reference_features(model, root, classes)
    with h5py.File(out, "r") as f:
        got = f["features"][...]
        labels = f["labels"][...]
        paths = [s.decode() if isinstance(s, bytes) else s for s in f["paths"][...]]
        names = [s.decode() if isinstance(s, bytes) else s for s in f["class_names"][...]]
        attrs = dict(f.attrs)
    check(got.shape == ref.shape, "features shape %s == reference %s" % (got.shape, ref.shape))
    err = float(np.abs(got - ref).max())
    worst = np.unravel_index(np.abs(got - ref).argmax(), ref.shape)
    print("features vs PyTorch+PIL+torchvision: max abs error %.3g at sample %d (%s) dim %d"
          % (err, worst[0], ref_paths[worst[0]], worst[1]))
    check(err <= 1e-4, "max abs feature error %.3g <= 1e-4" % err)
    check(list(labels) == list(ref_labels), "labels in sorted class order")
    check(paths == ref_paths, "paths in dataset order (sorted class, sorted file name)")
    check(names == classes, "class names sorted in byte order")
    for key in ("schema_version", "code_version", "config", "dataset_manifest_xxh3",
                "backbone_weights_xxh3", "hdf5_version", "created_utc"):
        check(key in attrs, "provenance attribute %s present" % key)
    config = attrs.get("config", b"")
    config = config.decode() if isinstance(config, bytes) else str(config)
    check("dataset = {" in config and "  resize = 256;" in config, "effective config recorded")
    # the recorded config is a config file: read back, it prints the same text
    saved = os.path.join(tmp, "recorded.cfg")
    with open(saved, "w") as f:
        f.write(config)
    again = run(safecl, [saved, "--print-config"])
    check(again.returncode == 0 and again.stdout == config,
          "the recorded config reads back to the same text")
    # dataset.limit=1: the first image of each class in dataset order, nothing else
    lim = os.path.join(tmp, "limit.h5")
    p = run(safecl, ["--print-config", "dataset.limit=1"])
    check(p.returncode == 0 and "  limit = 1;" in p.stdout, "--print-config before the keys")
    p = run(safecl, ["dataset.format=folder", "dataset.root=" + root, "dataset.resize=256",
                     "backbone.arch=vit_tiny_patch16_224", "backbone.weights=" + weights,
                     "eval.batch=4", "out=" + lim, "dataset.limit=1"])
    check(p.returncode == 0, "safecl features with dataset.limit=1 exits 0")
    if p.returncode == 0:
        firsts = [i for i in range(len(ref_labels)) if i == 0 or ref_labels[i] != ref_labels[i - 1]]
        with h5py.File(lim, "r") as f:
            lim_paths = [s.decode() if isinstance(s, bytes) else s for s in f["paths"][...]]
            lim_feat = f["features"][...]
            lim_manifest = f.attrs["dataset_manifest_xxh3"]
        check(lim_paths == [ref_paths[i] for i in firsts],
              "dataset.limit=1 keeps the first image of each class (%s)" % lim_paths)
        # the same images, in batches of another composition (so not bit-identical: a GEMM's
        # blocking follows its row count): within the reference bound checked above
        lim_err = float(np.abs(lim_feat - ref[firsts]).max()) if len(firsts) else 0.0
        check(lim_feat.shape == ref[firsts].shape and lim_err <= 1e-4,
              "their features match the reference's (max abs error %.3g <= 1e-4)" % lim_err)
        check(lim_manifest != attrs["dataset_manifest_xxh3"], "the limit changes the manifest hash")
    return root, weights


def expect_failure(safecl, args, needle, what, out=None):
    p = run(safecl, args + (["out=" + out] if out else []), expect_ok=False)
    errs = [l for l in p.stderr.splitlines() if "error:" in l]
    msg = errs[0] if errs else p.stderr.strip()
    print("     %s -> %s" % (what, msg))
    check(p.returncode != 0 and needle in p.stderr, "%s: fails naming '%s'" % (what, needle))


def test_bad_input(safecl, tmp, root, weights):
    out = os.path.join(tmp, "keep.h5")
    with open(out, "wb") as f:
        f.write(b"precious earlier results")
    missing = os.path.join(tmp, "nope")
    expect_failure(safecl, ["dataset.format=folder", "dataset.root=" + missing], missing,
                   "missing dataset root", out)
    bad_root = os.path.join(tmp, "bad_ds")
    os.makedirs(os.path.join(bad_root, "test", "a"))
    Image.new("RGB", (40, 30)).save(os.path.join(bad_root, "test", "a", "ok.png"))
    with open(os.path.join(bad_root, "test", "a", "torn.jpg"), "wb") as f:
        f.write(open(os.path.join(root, "test", "n01_ant", "img_2.JPG"), "rb").read()[:300])
    expect_failure(safecl, ["dataset.format=folder", "dataset.root=" + bad_root, "dataset.resize=224"],
                   "torn.jpg", "truncated JPEG in the dataset", out)
    expect_failure(safecl, ["dataset.crop=192"], "dataset.crop", "crop that does not fit the ViT", out)
    expect_failure(safecl, ["dataset.colour=1"], "dataset.colour", "unknown key", out)
    expect_failure(safecl, ["dataset.cropp=224"], "did you mean 'dataset.crop'", "misspelt key", out)
    expect_failure(safecl, ["data.limit=3"], "renamed to 'dataset.limit'",
                   "old data.limit (first N of the split) refused", out)
    expect_failure(safecl, ["data.synthetic.per_class=3"], "dataset.synthetic.test_per_class",
                   "old data.synthetic.per_class refused", out)
    expect_failure(safecl, ["--frobnicate"], "unknown option --frobnicate", "unknown option", out)
    # a failure is one line naming the culprit; the code locations only with SAFECL_LOG=debug
    p = run(safecl, ["dataset.crop=192", "out=" + out], expect_ok=False)
    check(p.returncode != 0 and "  at src/" not in p.stderr, "no traceback frames by default")
    p = subprocess.run([safecl, "features", "dataset.crop=192", "out=" + out], capture_output=True,
                       text=True, env=dict(os.environ, SAFECL_LOG="debug"))
    check(p.returncode != 0 and "  at src/" in p.stderr, "traceback frames with SAFECL_LOG=debug")
    # data.root is the old name of dataset.root (the name `safecl train` uses): still accepted,
    # with exactly one deprecation line.
    p = run(safecl, ["dataset.format=folder", "data.root=" + missing, "out=" + out], expect_ok=False)
    notes = [l for l in p.stderr.splitlines() if "deprecated" in l]
    check(p.returncode != 0 and missing in p.stderr and len(notes) == 1
          and "'data.root' is deprecated; use 'dataset.root'" in notes[0],
          "old key data.root still sets the root, with one deprecation line (%s)" % notes)
    expect_failure(safecl, ["backbone.weights=" + os.path.join(tmp, "none.safetensors")],
                   "none.safetensors", "missing weights file", out)
    expect_failure(safecl, ["backbone.arch=vit_small_patch16_224", "backbone.weights=" + weights],
                   "shape", "weights of another architecture", out)
    check(open(out, "rb").read() == b"precious earlier results",
          "an existing output file survives every failed run")
    leftovers = [f for f in os.listdir(tmp) if ".tmp." in f]
    check(not leftovers, "no temporary files left behind (%s)" % leftovers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        r = test_parity(a.safecl, tmp)
        if r:
            test_bad_input(a.safecl, tmp, *r)
    if failures:
        print("test_features: %d failure(s)" % len(failures))
        sys.exit(1)
    print("test_features: all checks passed")


if __name__ == "__main__":
    main()
