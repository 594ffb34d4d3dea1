"""test_cifar_python.py: CIFAR-100's python version (the pickles torchvision downloads).

1. analysis/cifar_python_to_binary.py turns a small fake cifar-100-python/{train,test,meta}
   (pickle protocol 2, NumPy arrays, bytes keys as the Python 2 release has) into
   cifar-100-binary/{train,test}.bin whose bytes are exactly the binary release's records
   (coarse, fine, R, G, B planes), plus fine_label_names.txt.
2. dataset.root at a python-version folder (the parent or cifar-100-python itself) is refused by
   `safecl plan` and `safecl train` with the converter's command line, exit 1, no run directory.
3. The converter refuses CIFAR-10's pickles and a missing folder, naming the file.
4. A full-size fake (50000 + 10000 images, zeros, known label counts) converted is read by
   safecl: `safecl plan` counts each session's images from the converted labels.
Exits non-zero on any failure.
"""
import argparse
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

failures = []


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)
        if detail:
            print(detail)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def fake(root, n_train, n_test, fine_of=None, zeros=False, cifar10=False):
    d = os.path.join(root, "cifar-100-python")
    os.makedirs(d)
    rs = np.random.RandomState(0)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = np.zeros((n, 3072), np.uint8) if zeros else rs.randint(0, 256, (n, 3072)).astype(
            np.uint8)
        fine = fine_of(split, n) if fine_of else rs.randint(0, 100, n)
        coarse = fine // 5
        entry = {b"filenames": [b"x.png"] * n, b"batch_label": b"training batch 1 of 1",
                 b"data": data}
        if cifar10:
            entry[b"labels"] = [int(v) for v in fine]
        else:
            entry[b"fine_labels"] = [int(v) for v in fine]
            entry[b"coarse_labels"] = [int(v) for v in coarse]
        with open(os.path.join(d, split), "wb") as f:
            pickle.dump(entry, f, protocol=2)
        splits[split] = (data, fine, coarse)
    meta = {b"fine_label_names": [b"name%03d" % i for i in range(100)],
            b"coarse_label_names": [b"super%02d" % i for i in range(20)]}
    with open(os.path.join(d, "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return splits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    safecl, src = os.path.abspath(args.safecl), os.path.abspath(args.source)
    conv = [sys.executable, os.path.join(src, "analysis", "cifar_python_to_binary.py")]
    cfgs = [os.path.join(src, "configs", c) for c in
            ("datasets/cifar100.cfg", "methods/simplecil.cfg", "backbones/vit_tiny_random.cfg")]
    with tempfile.TemporaryDirectory(prefix="safecl_cifarpy_") as tmp:
        small = os.path.join(tmp, "small")
        splits = fake(small, 7, 3)
        out = os.path.join(tmp, "small_bin")
        p = run(conv + [small, out])
        check(p.returncode == 0, "converter runs on a small fake", p.stdout + p.stderr)
        for split, (data, fine, coarse) in splits.items():
            path = os.path.join(out, "cifar-100-binary", split + ".bin")
            want = np.concatenate([coarse[:, None].astype(np.uint8),
                                   fine[:, None].astype(np.uint8), data], axis=1).tobytes()
            got = open(path, "rb").read() if os.path.exists(path) else b""
            check(got == want, "%s.bin holds the binary release's records, byte for byte" % split)
        names = os.path.join(out, "cifar-100-binary", "fine_label_names.txt")
        check(os.path.exists(names) and open(names).read().split("\n")[5] == "name005",
              "fine_label_names.txt from meta")
        p = run(conv + [os.path.join(small, "cifar-100-python"), os.path.join(tmp, "again")])
        check(p.returncode == 0, "converter takes the cifar-100-python folder itself", p.stderr)

        for root in (small, os.path.join(small, "cifar-100-python")):
            p = run([safecl, "plan"] + cfgs + ["dataset.root=" + root, "--gflops", "10"])
            check(p.returncode == 1 and "python version" in p.stderr
                  and "cifar_python_to_binary.py" in p.stderr and "dataset.root = " + root
                  in p.stderr, "plan at %s names the converter" % os.path.basename(root),
                  p.stderr)
        run_dir = os.path.join(tmp, "run")
        p = run([safecl, "train"] + cfgs + ["dataset.root=" + small, "run.dir=" + run_dir])
        check(p.returncode == 1 and "cifar_python_to_binary.py" in p.stderr
              and not os.path.exists(run_dir),
              "train at a python-version root: the converter named, no run directory", p.stderr)

        c10 = os.path.join(tmp, "c10")
        fake(c10, 4, 2, cifar10=True)
        p = run(conv + [c10, os.path.join(tmp, "c10_bin")])
        check(p.returncode == 1 and "no 'fine_labels'" in p.stderr and "train" in p.stderr,
              "converter refuses CIFAR-10's pickles naming the file", p.stderr)
        p = run(conv + [os.path.join(tmp, "nothing"), os.path.join(tmp, "x")])
        check(p.returncode == 1 and "nothing" in p.stderr, "converter: a missing folder", p.stderr)

        # full size: class c has 490 (c < 50) or 510 training images, 100 test images
        def labels(split, n):
            if split == "test":
                return np.repeat(np.arange(100), 100)
            return np.concatenate([np.full(490 if c < 50 else 510, c) for c in range(100)])
        full = os.path.join(tmp, "full")
        fake(full, 50000, 10000, fine_of=labels, zeros=True)
        out = os.path.join(tmp, "full_bin")
        p = run(conv + [full, out])
        check(p.returncode == 0, "converter on a full-size fake", p.stderr)
        p = run([safecl, "plan"] + cfgs + ["dataset.root=" + out, "dataset.shuffle=false",
                                           "--gflops", "10"])
        rows = [l.split() for l in p.stdout.splitlines() if l.strip()[:1].isdigit()]
        got = [(int(r[1]), int(r[2])) for r in rows]
        want = [(4900 if t < 5 else 5100, 1000 * (t + 1)) for t in range(10)]
        check(p.returncode == 0 and got == want,
              "safecl reads the converted files: per-session train/test counts %s" % got,
              p.stdout + p.stderr)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
