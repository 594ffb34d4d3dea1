#!/usr/bin/python3
"""The folder dataset lists samples exactly as torchvision's ImageFolder does.

Builds a class tree designed to trip naive sorting (case, '-', '_', ' ', digits, UTF-8 names,
nested subdirectories whose path order differs from depth-first order, upper-case extensions,
non-image files) and compares `data_tool list folder ROOT train` with
torchvision.datasets.ImageFolder(ROOT/train).samples. The one intended difference: safecl skips
hidden entries (".hidden.jpg", ".ipynb_checkpoints/"), which ImageFolder would take; they are
removed from ImageFolder's list before comparing, and the script checks they were there.

    /usr/bin/python3 test_folder_order.py --tool build/tests/data/data_tool --workdir /tmp/fo"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder

CLASSES = ["B", "a", "a b", "a-b", "a_b", "a.b", "n01440764", "n0144076", "10", "9",
           "\u00e9t\u00e9", "zz", ".ipynb_checkpoints"]
FILES = ["img.JPEG", "Img.jpg", "b.png", "a.PNG", "a-1.jpeg", "a.1.jpg", "a_1.jpg", "Z.jpg",
         "sub/x.jpg", "sub-2/y.jpg", "sub/deeper/z.png", "sub.jpg", ".hidden.jpg", "notes.txt"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    root = os.path.join(args.workdir, "tree")
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(5)
    for ci, cls in enumerate(CLASSES):
        for fi, name in enumerate(FILES):
            if (ci + fi) % 4 == 3 and not name.startswith("."):
                continue  # classes differ in content
            path = os.path.join(root, "train", cls, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if name.endswith(".txt"):
                open(path, "w").write("not an image\n")
                continue
            img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            img.save(path, "PNG" if name.lower().endswith(".png") else "JPEG")
    ref = ImageFolder(os.path.join(root, "train"))
    base = os.path.join(root, "train") + os.sep
    want, hidden = [], 0
    for path, label in ref.samples:
        rel = path[len(base):]
        if any(part.startswith(".") for part in rel.split("/")):
            hidden += 1
            continue
        want.append((rel, ref.classes[label]))
    r = subprocess.run([args.tool, "list", "folder", root, "train"], capture_output=True)
    if r.returncode != 0:
        print(r.stderr.decode())
        return 1
    got = []
    classes = sorted(c for c in CLASSES if not c.startswith("."))
    for line in r.stdout.decode("utf-8").splitlines():
        label, path = line.split("\t", 1)
        assert path.startswith("train/"), path
        rel = path[len("train/"):]
        got.append((rel, classes[int(label)]))
    print("ImageFolder: %d samples (%d hidden ones dropped), safecl: %d samples" %
          (len(ref.samples), hidden, len(got)))
    ok = hidden > 0 and got == want
    for k in range(max(len(got), len(want))):
        g = got[k] if k < len(got) else None
        w = want[k] if k < len(want) else None
        if g != w:
            print("first difference at %d: safecl %r, ImageFolder %r" % (k, g, w))
            ok = False
            break
    print("order and labels %s" % ("identical" if ok else "DIFFER"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
