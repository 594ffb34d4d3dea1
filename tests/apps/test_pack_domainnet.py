"""test_pack_domainnet.py: `safecl pack` of a DomainNet root (list files) and reading the pack.

On a tiny generated DomainNet layout (two domains, three classes, PNG and JPEG images, a list
with a blank line and "./" paths, an image named by two lists, an unlisted file):
1. `safecl pack ROOT pack.h5` packs every list and listed image;
2. the pack holds each listed image once, byte for byte, and every list; in place of ROOT it
   gives the same trial identity (so the same manifests) for two domain orders, and a SimpleCIL
   trial with the same accuracy matrix (it trains identically);
3. a domain the pack has no list for is refused naming the domain; a list naming a missing image
   fails the pack naming list file and line, and leaves no OUT file.
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


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)
        if detail:
            print(detail)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def make_root(root):
    rng = np.random.default_rng(7)
    classes = ["apple", "bee", "car"]
    lines = {}
    for domain in ("real", "sketch"):
        for split, n in (("train", 3), ("test", 2)):
            out = []
            for c, cls in enumerate(classes):
                d = os.path.join(root, domain, cls)
                os.makedirs(d, exist_ok=True)
                for k in range(n):
                    name = "%s_%d.%s" % (split, k, "png" if k % 2 else "jpg")
                    img = rng.integers(0, 256, size=(40 + 8 * c, 48, 3)).astype(np.uint8)
                    Image.fromarray(img).save(os.path.join(d, name))
                    prefix = "./" if (c + k) % 2 else ""
                    out.append("%s%s/%s/%s %d" % (prefix, domain, cls, name, c))
            lines[(domain, split)] = out
    # sketch's test list also names one real training image; a blank line; an unlisted file
    lines[("sketch", "test")].insert(2, "")
    lines[("sketch", "test")].append("real/apple/train_0.jpg 0")
    open(os.path.join(root, "real", "apple", "unlisted.txt"), "w").write("not listed")
    for (domain, split), out in lines.items():
        with open(os.path.join(root, "%s_%s.txt" % (domain, split)), "w") as f:
            f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    safecl, src = os.path.abspath(args.safecl), os.path.abspath(args.source)
    tiny = os.path.join(src, "configs", "backbones", "vit_tiny_random.cfg")
    with tempfile.TemporaryDirectory(prefix="safecl_packdn_") as tmp:
        root = os.path.join(tmp, "dn")
        make_root(root)
        pack = os.path.join(tmp, "dn.h5")
        p = run([safecl, "pack", root, pack])
        check(p.returncode == 0 and os.path.isfile(pack), "safecl pack of a DomainNet root",
              p.stdout + p.stderr)

        def ds(r, domains):
            return ["dataset.format=domainnet", "dataset.root=" + r, "dataset.domains=" + domains,
                    "dataset.classes=3", "dataset.shuffle=false", "dataset.resize=224"]

        for domains in ("real,sketch", "sketch,real"):
            ids = []
            for r in (root, pack):
                p = run([safecl, "train", os.path.join(src, "configs", "methods", "simplecil.cfg"),
                         tiny, "--print-trial-id", "run.dir=" + tmp + "/x"] + ds(r, domains))
                ids.append(p.stdout.strip() if p.returncode == 0 else p.stderr)
            check(ids[0] == ids[1] and len(ids[0]) == 32,
                  "same trial id from folder and pack (domains %s)" % domains, str(ids))
        with h5py.File(pack, "r") as f:
            paths = [x.decode() if isinstance(x, bytes) else x for x in f["images/paths"][...]]
            off, blob = f["images/offsets"][...], f["images/blob"][...].tobytes()
            same = all(blob[off[i]:off[i + 1]] == open(os.path.join(root, q), "rb").read()
                       for i, q in enumerate(paths))
            names = [x.decode() if isinstance(x, bytes) else x for x in f["lists/names"][...]]
        check(len(paths) == 30 and same, "the pack holds each listed image once, byte for byte "
              "(%d images)" % len(paths))
        check(names == ["real_test", "real_train", "sketch_test", "sketch_train"],
              "the pack holds every list file", str(names))
        accs = []
        for r, name in ((root, "run_f"), (pack, "run_p")):
            p = run([safecl, "train", os.path.join(src, "configs", "methods", "simplecil.cfg"),
                     tiny, "run.dir=" + os.path.join(tmp, name)] + ds(r, "real,sketch"))
            if p.returncode:
                check(False, "SimpleCIL trial on %s" % name, p.stderr)
                continue
            with h5py.File(os.path.join(tmp, name, "trial.h5"), "r") as f:
                accs.append(f["predictors/simplecil/acc_matrix"][...])
        check(len(accs) == 2 and np.array_equal(accs[0], accs[1], equal_nan=True),
              "a SimpleCIL trial trains identically from folder and pack")

        p = run([safecl, "train", os.path.join(src, "configs", "methods", "simplecil.cfg"), tiny,
                 "--print-trial-id", "run.dir=" + tmp + "/x"] + ds(pack, "real,quickdraw"))
        check(p.returncode == 1 and "quickdraw" in p.stderr and "no train list" in p.stderr,
              "a domain the pack lacks is refused naming it", p.stderr)
        with open(os.path.join(root, "real_test.txt"), "a") as f:
            f.write("real/bee/gone.jpg 1\n")
        bad = os.path.join(tmp, "bad.h5")
        p = run([safecl, "pack", root, bad])
        check(p.returncode == 1 and "real_test.txt:7" in p.stderr and "gone.jpg" in p.stderr
              and not os.path.exists(bad), "a missing listed image fails the pack, no OUT file",
              p.stderr)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
