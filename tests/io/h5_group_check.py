#!/usr/bin/env python3
"""h5_group_check.py FILE M N: check with h5py a group file written by test_h5_group.

The block-cyclic matrix ridge/A must be the plain M x N matrix A[i, j] = 1000 i + j + 0.125 (every
element compared), and the replicated datasets and attributes, written by every rank of the group,
must each appear once with the values test_h5_group.c wrote; rank 0 wrote the whole-file checksum
record into the 512-byte user block, which h5py skips. Exit status 0 on success, 1 on any
mismatch (printed)."""
import sys

import h5py
import numpy as np


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, m, n = argv[1], int(argv[2]), int(argv[3])
    errors = []
    with open(path, "rb") as raw:
        block = raw.read(512)
    if block[:8] != b"SAFECLWF" or block[504:512] != b"SAFECLWF":
        errors.append("no whole-file checksum record in the user block (src/io/h5_whole.c)")
    with h5py.File(path, "r") as f:
        if f.userblock_size != 512:
            errors.append(f"user block of {f.userblock_size} bytes, want 512")
        a = f["ridge/A"]
        i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        want = i * 1000.0 + j + 0.125
        if a.shape != (m, n) or a.dtype != np.float64:
            errors.append(f"ridge/A: {a.shape} {a.dtype}, want ({m}, {n}) float64")
        else:
            bad = np.argwhere(a[...] != want)
            if len(bad):
                r, c = bad[0]
                errors.append(f"ridge/A: {len(bad)} wrong, first [{r}, {c}] = {a[r, c]}")
        if sorted(f.keys()) != ["ridge", "session", "state"]:
            errors.append(f"root holds {sorted(f.keys())}")
        vec = f["state/vec"][...]
        if vec.shape != (5,) or list(vec) != [1.5, -2.0, 0.0, 1e300, -1e-300]:
            errors.append(f"state/vec = {vec}")
        ids = f["state/ids"][...]
        if list(ids) != [7, -1, 1 << 50]:
            errors.append(f"state/ids = {ids}")
        m32 = f["state/m32_gz"][...]
        if m32.shape != (6, 40) or not np.array_equal(m32.ravel(),
                                                      (np.arange(240) % 17) * 0.25):
            errors.append("state/m32_gz differs")
        if f["state/m32_gz"].compression != "gzip":
            errors.append("state/m32_gz is not gzip-compressed")
        classes = [c.decode("utf-8") for c in f["state/classes"][...]]
        if classes != ["cat", "caf\u00e9", "", "a longer class name"]:
            errors.append(f"state/classes = {classes}")
        if f.attrs["writer_rank"] != 0 or f.attrs["config"] != "model.depth = 12;":
            errors.append(f"root attributes {dict(f.attrs)}")
        if f["session/0"].attrs["epoch"] != 3 or f["state/vec"].attrs["scale"] != 0.5:
            errors.append("dataset/group attributes differ")
    for e in errors:
        print("h5_group_check:", e)
    print(f"h5_group_check {path}: {'FAILED' if errors else 'ok'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
