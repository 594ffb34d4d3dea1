"""test_pack.py: `safecl pack` and reading a packed dataset in place of its folder.

Packs a generated class-folder dataset, then checks that `safecl features` gives bit-identical
features, labels, paths and manifest from the pack and from the folder, that a trial has the same
identity on both, that a damaged image inside the pack is reported as pack.h5:<sample path>, and
that a file that is not a pack is refused, and that packs with labels outside the classes, fewer
paths than labels or another kind are refused at open. Exits non-zero on any failure.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_features import make_dataset  # noqa: E402

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def run(safecl, args):
    return subprocess.run([safecl] + args, capture_output=True, text=True)


def features(safecl, root, out, extra=()):
    p = run(safecl, ["features", "dataset.format=folder", "dataset.root=" + root, "dataset.resize=256",
                     "backbone.arch=vit_tiny_patch16_224", "out=" + out] + list(extra))
    if p.returncode:
        print(p.stderr)
        return None
    with h5py.File(out, "r") as f:
        return (f["features"][...], f["labels"][...], [s for s in f["paths"][...]],
                f.attrs["dataset_manifest_xxh3"])


def set_label(index, value):
    def edit(f):
        labels = f["test/labels"][...]
        labels[index] = value
        f["test/labels"][...] = labels
    return edit


def drop_paths(f):
    paths = f["test/paths"][...]
    del f["test/paths"]
    f.create_dataset("test/paths", data=paths[:-2])


def set_kind(f):
    f.attrs["kind"] = "trial"


def strip_checksums(f):
    """A pack as a writer without checksums (an older safecl, a hand-made file) leaves it: no
    xxh3_64 on any dataset, no attrs_xxh3_64 at the root; such a file is read unverified."""
    def visit(name, obj):
        for k in ("xxh3_64", "xxh3_64_blocks"):  # xxh3_64_blocks: a blob's
            if k in obj.attrs:
                del obj.attrs[k]
    f.visititems(visit)
    if "attrs_xxh3_64" in f.attrs:
        del f.attrs["attrs_xxh3_64"]
    with open(f.filename, "r+b") as raw:  # and the whole-file record (analysis/SCHEMA.md)
        raw.write(bytes(512))


def check_damaged_packs(safecl, root, tmp):
    """Packs damaged as a hostile or broken writer would are refused at open with a message
    naming the file and what is wrong: labels outside the classes (2e9 once crashed the session
    selection), fewer paths than labels (once read out of bounds), a file of another kind. Each
    edit is tried twice: on a pack with its checksums (the damage is a checksum mismatch, or the
    check named, whichever comes first) and with the checksums stripped, so the check itself
    runs."""
    cases = [("label 2e9", set_label(0, 2000000000), "test/labels[0] = 2000000000 is not a class"),
             ("label -1", set_label(3, -1), "test/labels[3] = -1 is not a class"),
             ("paths shorter than labels", drop_paths, "test/paths holds"),
             ("kind attribute", set_kind, "kind is 'trial'")]
    for (what, edit, needle), strip in [(c, s) for c in cases for s in (False, True)]:
        bad = os.path.join(tmp, "bad.h5")
        p = run(safecl, ["pack", root, bad])
        check(p.returncode == 0, "pack for the '%s' case" % what)
        with h5py.File(bad, "r+") as f:
            edit(f)
            if strip:
                strip_checksums(f)
        p = run(safecl, ["features", "dataset.format=folder", "dataset.root=" + bad,
                         "dataset.resize=256", "backbone.arch=vit_tiny_patch16_224",
                         "out=" + os.path.join(tmp, "bad_features.h5")])
        msg = [l for l in p.stderr.splitlines() if "error" in l]
        print("     %s -> %s" % (what, msg[0] if msg else p.stderr.strip()[-300:]))
        found = needle in p.stderr or (not strip and "checksum mismatch" in p.stderr)
        check(p.returncode != 0 and bad in p.stderr and found,
              "a pack with a damaged %s%s is refused naming the file and '%s'" %
              (what, " (checksums stripped)" if strip else "", needle))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "ds")
        make_dataset(root, np.random.default_rng(1))
        pack = os.path.join(tmp, "ds.h5")
        p = run(a.safecl, ["pack", root, pack])
        check(p.returncode == 0 and os.path.exists(pack), "safecl pack writes %s" % pack)
        ref = features(a.safecl, root, os.path.join(tmp, "f_folder.h5"))
        got = features(a.safecl, pack, os.path.join(tmp, "f_pack.h5"))
        check(ref is not None and got is not None, "features from folder and from pack")
        if ref and got:
            check(np.array_equal(ref[0], got[0]), "features bit-identical from the pack")
            check(np.array_equal(ref[1], got[1]) and ref[2] == got[2], "same labels and paths")
            check(ref[3] == got[3], "same dataset manifest (%s)" % got[3])
        # dataset.limit=1 reads the same first image of each class from the folder and the pack
        lim = [features(a.safecl, r, os.path.join(tmp, "lim_%d.h5" % i), ["dataset.limit=1"])
               for i, r in enumerate((root, pack))]
        if ref and lim[0] and lim[1]:
            firsts = [i for i in range(len(ref[1])) if i == 0 or ref[1][i] != ref[1][i - 1]]
            check(lim[0][2] == [ref[2][i] for i in firsts] and lim[1][2] == lim[0][2]
                  and np.array_equal(lim[0][0], lim[1][0]) and lim[0][3] == lim[1][3],
                  "dataset.limit=1: the first image of each class, the same from folder and pack")
        ids = []
        for r in (root, pack):
            out = run(a.safecl, ["train", "dataset.format=folder", "dataset.root=" + r,
                                 "dataset.init_cls=2", "dataset.increment=1",
                                 "backbone.arch=vit_tiny_patch16_224", "dataset.resize=256",
                                 "run.dir=" + os.path.join(tmp, "t_%d" % len(ids))])
            ids.append(re.findall(r"trial ([0-9a-f]{32})", out.stderr)[:1])  # lines are timestamped
        check(ids[0] and ids[0] == ids[1], "a trial has the same identity on folder and pack")
        with h5py.File(pack, "r") as f:
            off = f["test/offsets"][...]
            blob_off = f["test/blob"].id.get_offset()
            bad_path = f["test/paths"][1].decode()
        with open(pack, "r+b") as fh:  # wreck the second test image's header in place
            fh.seek(blob_off + int(off[1]))
            fh.write(b"\0" * 16)
        feats = ["features", "dataset.format=folder", "dataset.root=" + pack, "dataset.resize=256",
                 "backbone.arch=vit_tiny_patch16_224", "out=" + os.path.join(tmp, "x.h5")]
        p = run(a.safecl, feats)
        check(p.returncode != 0 and pack in p.stderr
              and "whole-file checksum mismatch: damaged" in p.stderr,
              "a damaged image in the pack fails the whole-file checksum at open")
        with h5py.File(pack, "r+") as f:  # without checksums the decoder meets the damage
            strip_checksums(f)
        p = run(a.safecl, feats)
        msg = [l for l in p.stderr.splitlines() if "error" in l]
        print("     damaged image -> %s" % (msg[0] if msg else p.stderr))
        check(p.returncode != 0 and (pack + ":" + bad_path) in p.stderr,
              "a damaged image in the pack is reported as pack:path")
        check_damaged_packs(a.safecl, root, tmp)
        notpack = os.path.join(tmp, "plain.h5")
        with h5py.File(notpack, "w") as f:
            f["x"] = np.zeros(3)
        p = run(a.safecl, ["features", "dataset.format=folder", "dataset.root=" + notpack, "out=" + os.path.join(tmp, "y.h5")])
        check(p.returncode != 0 and "not a safecl file" in p.stderr, "an HDF5 file that is not a pack is refused")
    if failures:
        print("test_pack: %d failure(s)" % len(failures))
        sys.exit(1)
    print("test_pack: all checks passed")


if __name__ == "__main__":
    main()
