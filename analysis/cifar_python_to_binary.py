#!/usr/bin/env python3
"""cifar_python_to_binary.py: CIFAR-100's "python version" (the pickles torchvision downloads,
cifar-100-python/{train,test,meta}) into the binary version safecl reads.

    python3 analysis/cifar_python_to_binary.py SRC OUT

SRC is the cifar-100-python directory or the directory holding it. OUT receives
OUT/cifar-100-binary/{train,test}.bin (records of <coarse label 1 B><fine label 1 B><3072 B: the
32x32 R, G, B planes>, in the pickles' order: the layout of the official binary release) and
fine_label_names.txt / coarse_label_names.txt beside them; then set dataset.root = OUT. The
pickles' rows are already channel-planar R, G, B, so each record is the two labels and the row as
it is. Needs NumPy (the pickles hold NumPy arrays). Files are written under a temporary name and
renamed, so an interrupted run leaves no half file under the final name. Exits 1 with a message
naming the file on anything that is not CIFAR-100's python version.
"""
import os
import pickle
import sys


def fail(msg):
    sys.stderr.write("cifar_python_to_binary: %s\n" % msg)
    sys.exit(1)


def load(path):
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")  # the release was pickled by Python 2
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, ImportError) as e:
        fail("%s: cannot read the pickle: %s" % (path, e))
    if not isinstance(obj, dict):
        fail("%s: holds a %s, not CIFAR-100's dict" % (path, type(obj).__name__))
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def names(meta, key, count, path):
    value = meta.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != count:
        fail("%s: '%s' is not a list of %d names" % (path, key, count))
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in value]


def convert_split(src, split, out_dir):
    import numpy as np
    path = os.path.join(src, split)
    d = load(path)
    for key in ("data", "fine_labels", "coarse_labels"):
        if key not in d:
            fail("%s: no '%s' entry: not CIFAR-100's python version (CIFAR-10 has 'labels')"
                 % (path, key))
    data = np.asarray(d["data"])
    fine = np.asarray(d["fine_labels"], dtype=np.int64)
    coarse = np.asarray(d["coarse_labels"], dtype=np.int64)
    n = data.shape[0] if data.ndim == 2 else -1
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        fail("%s: 'data' is %s %s, expected uint8 rows of 3072 bytes" % (path, data.dtype,
                                                                         data.shape))
    if fine.shape != (n,) or coarse.shape != (n,):
        fail("%s: %d images but %d fine and %d coarse labels" % (path, n, fine.size, coarse.size))
    if n and (fine.min() < 0 or fine.max() > 99 or coarse.min() < 0 or coarse.max() > 19):
        fail("%s: labels out of range (fine 0-99, coarse 0-19)" % path)
    records = np.empty((n, 3074), dtype=np.uint8)
    records[:, 0] = coarse
    records[:, 1] = fine
    records[:, 2:] = data
    dest = os.path.join(out_dir, split + ".bin")
    write(dest, records.tobytes())
    return n, dest


def write(dest, data):
    tmp = "%s.tmp.%d" % (dest, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def find_source(src):
    for cand in (os.path.join(src, "cifar-100-python"), src):
        if all(os.path.isfile(os.path.join(cand, f)) for f in ("train", "test", "meta")):
            return cand
    fail("%s: no train, test and meta pickles in it or in %s/cifar-100-python" % (src, src))


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0 if len(argv) == 2 else 2
    src, out = find_source(argv[1]), argv[2]
    out_dir = os.path.join(out, "cifar-100-binary")
    os.makedirs(out_dir, exist_ok=True)
    meta = load(os.path.join(src, "meta"))
    fine = names(meta, "fine_label_names", 100, os.path.join(src, "meta"))
    coarse = names(meta, "coarse_label_names", 20, os.path.join(src, "meta"))
    for split in ("train", "test"):
        n, dest = convert_split(src, split, out_dir)
        print("%s: %d images" % (dest, n))
    write(os.path.join(out_dir, "fine_label_names.txt"), ("\n".join(fine) + "\n").encode())
    write(os.path.join(out_dir, "coarse_label_names.txt"), ("\n".join(coarse) + "\n").encode())
    print("done: set dataset.root = %s (dataset.format = \"cifar100\")" % os.path.abspath(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
