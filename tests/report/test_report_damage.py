"""test_report_damage.py: `safecl report` and analysis/load_results.py on trial.h5 files that are
damaged or of an older schema.

1. A real trial.h5 (a tiny `safecl train` run) is schema 3 with no HDF5 global heap (no "GCOL"
   collection in its bytes): every string is fixed-length. HDF5 1.10 trusts the object sizes of a
   global heap, so a flipped byte in one could crash the reader before any checksum ran.
   load_results.py decodes its strings (h5py returns fixed-length strings as bytes).
2. A schema 2 file (the same trial rewritten by h5py with variable-length strings and no
   checksums, as safecl wrote it before) still reports, with the same table.
   src/report calls no HDF5 function itself (only io's h5.h, which checks checksums and that
   the file is a regular file).
3. Damage the report must list as "damaged trial.h5, not used" and go on (exit 0): a flipped
   byte in a dataset (checksum), a flipped byte in an attribute value (attribute checksum), a
   truncated file; each is refused by the whole-file checksum in the user block ("whole-file
   checksum mismatch: damaged", before HDF5 opens the file). With that record zeroed (as in a file
   written before it), the flipped data byte is still refused by the dataset's own checksum.
   load_results.py lists the truncated one as damaged, and the flipped data byte too (it checks
   the whole-file checksum before h5py opens the file).
4. With --flips (ctest test_report_damage_flips, label slow): one byte at a time is flipped
   (bitwise NOT): every byte within 48 bytes of each HDF5 structure signature and a seeded
   random sample of the rest. `safecl report` must exit 0, never on a signal, and either list the
   trial as damaged or print exactly the intact file's table; load_results.py must not die on a
   signal. HDF5 1.10 crashes on about 1% of these flips when it parses the file (a damaged
   attribute message in an object header, H5A__attr_release_table reached through H5Aiterate2),
   so every flip must now be refused by the whole-file checksum before HDF5 opens the file.
Exits non-zero on any failure.
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

SIGNATURES = (b"\x89HDF", b"OHDR", b"OCHK", b"GCOL", b"TREE", b"HEAP", b"SNOD", b"FRHP", b"FHDB",
              b"FHIB", b"BTHD", b"BTLF", b"BTIN", b"FSHD", b"FSSE", b"SMTB")
NEAR = 48
RANDOM = 150

failures = []


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        if detail:
            print("     " + detail.strip()[-1500:].replace("\n", "\n     "))
        failures.append(msg)


def offsets_to_flip(data):
    near = set()
    for sig in SIGNATURES:
        at = data.find(sig)
        while at >= 0:
            near.update(range(max(0, at - NEAR), min(len(data), at + len(sig) + NEAR)))
            at = data.find(sig, at + 1)
    rest = sorted(set(range(len(data))) - near)
    rng = random.Random(20261201)
    return sorted(near) + sorted(rng.sample(rest, min(RANDOM, len(rest))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--flips", action="store_true", help="flip bytes one at a time (slow)")
    a = ap.parse_args()
    cfgs = [os.path.join(a.source, "configs", c) for c in
            ("datasets/synthetic.cfg", "methods/simplecil.cfg", "backbones/vit_tiny_random.cfg")]
    small = ["dataset.synthetic.classes=6", "dataset.synthetic.train_per_class=3",
             "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2"]
    loader = os.path.join(a.source, "analysis", "load_results.py")
    report_src = os.path.join(a.source, "src", "report")
    raw = [n for n in sorted(os.listdir(report_src)) if n.endswith((".c", ".h")) and
           re.search(r"#include <hdf5\.h>|\bH5[A-Z][a-z_]*\(|h5_file_hid",
                     open(os.path.join(report_src, n)).read())]
    check(not raw, "src/report reads HDF5 only through io's h5.h (checksums, regular files): "
          "raw HDF5 in %s" % raw)
    with tempfile.TemporaryDirectory(prefix="report_damage_") as tmp:
        trial = os.path.join(tmp, "run", "trials", "t")
        p = subprocess.run([a.safecl, "train"] + cfgs + small + ["run.dir=" + trial, "seed=1"],
                           capture_output=True, text=True)
        check(p.returncode == 0, "safecl train writes a trial.h5", p.stderr)
        if p.returncode:
            return 1
        h5 = os.path.join(trial, "trial.h5")
        with open(h5, "rb") as f:
            good = f.read()
        with h5py.File(h5, "r") as f:
            version = int(f.attrs["schema_version"])
            status = f.attrs["status"]
        check(version == 3, "trial.h5 is schema 3 (got %d)" % version)
        check(b"GCOL" not in good, "trial.h5 has no HDF5 global heap (no GCOL collection)")
        check(good[:8] == b"SAFECLWF" and good[504:512] == b"SAFECLWF"
              and good[512:516] == b"\x89HDF",
              "trial.h5 carries the whole-file checksum record in a 512-byte user block")
        check(isinstance(status, bytes) and status == b"finished",
              "its strings are fixed-length (h5py returns bytes): status %r" % (status,))
        p = subprocess.run([sys.executable, loader, os.path.join(tmp, "run")],
                           capture_output=True, text=True)
        check(p.returncode == 0 and "finished" in p.stdout and "synthetic" in p.stdout
              and "b'" not in p.stdout,
              "load_results.py decodes the fixed-length strings", p.stdout + p.stderr)
        report = [a.safecl, "report", os.path.join(tmp, "run"), "--no-published"]
        p = subprocess.run(report, capture_output=True, text=True)
        check(p.returncode == 0 and "SimpleCIL" in p.stdout, "the intact file reports",
              p.stdout + p.stderr)
        intact = p.stdout
        with h5py.File(h5, "r") as f:
            tid = f.attrs["trial_id"]
            at_data = f["predictors/simplecil/acc"].id.get_offset()
        old_schema(h5, os.path.join(tmp, "v2.h5"))
        shutil.copy(os.path.join(tmp, "v2.h5"), h5)
        p = subprocess.run(report, capture_output=True, text=True)
        check(p.returncode == 0 and p.stdout == intact and "damaged" not in p.stderr,
              "a schema 2 trial.h5 (variable-length strings, no checksums) reports the same table",
              p.stdout + p.stderr)
        for name, data in (("a byte of /predictors/simplecil/acc", flip(good, at_data)),
                           ("a byte of attribute trial_id", flip(good, good.find(tid))),
                           ("the file cut in half", good[:len(good) // 2])):
            with open(h5, "wb") as f:
                f.write(data)
            p = subprocess.run(report, capture_output=True, text=True, errors="replace")
            check(p.returncode == 0 and "damaged trial.h5, not used" in p.stdout + p.stderr
                  and "whole-file checksum mismatch: damaged" in p.stdout + p.stderr,
                  "%s: the report lists the trial as damaged (whole-file checksum) and goes on"
                  % name, p.stdout + p.stderr)
        q = subprocess.run([sys.executable, loader, os.path.join(tmp, "run")],
                           capture_output=True, text=True, errors="replace")
        check(q.returncode == 0 and "damaged trial.h5, not used" in q.stdout,
              "load_results.py lists the cut file as damaged and goes on", q.stdout + q.stderr)
        with open(h5, "wb") as f:  # h5py would read it; the loader checks the record first
            f.write(flip(good, at_data))
        q = subprocess.run([sys.executable, loader, os.path.join(tmp, "run")],
                           capture_output=True, text=True, errors="replace")
        check(q.returncode == 0 and "whole-file checksum mismatch: damaged" in q.stdout,
              "load_results.py lists a flipped data byte as damaged (whole-file checksum)",
              q.stdout + q.stderr)
        with open(h5, "wb") as f:  # the record removed: the dataset's own checksum still refuses
            f.write(bytes(512) + flip(good, at_data)[512:])
        p = subprocess.run(report, capture_output=True, text=True, errors="replace")
        out = p.stdout + p.stderr
        check(p.returncode == 0 and "damaged trial.h5, not used" in out
              and "predictors/simplecil/acc" in out and "checksum mismatch" in out
              and "whole-file" not in out,
              "without the record, a flipped data byte is refused by the dataset's checksum", out)
        with open(h5, "wb") as f:
            f.write(good)
        if a.flips:
            flips(a, report, loader, tmp, h5, good, intact)
    if failures:
        print("test_report_damage: %d failure(s)" % len(failures))
        return 1
    print("test_report_damage: all checks passed")
    return 0


def flip(data, at):
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


def old_schema(src, dst):
    """src rewritten as safecl wrote trial.h5 schema 2: variable-length strings, no checksums."""
    def attrs(a, b):
        for k, v in a.attrs.items():
            if k in ("xxh3_64", "attrs_xxh3_64"):
                continue
            b.attrs[k] = v.decode() if isinstance(v, bytes) else v
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        attrs(f, g)
        g.attrs["schema_version"] = 2

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                attrs(obj, g.require_group(name))
            else:
                v = obj[...]
                if v.dtype.kind == "S":
                    v = np.array([x.decode() for x in v.ravel()], dtype=h5py.string_dtype())
                attrs(obj, g.create_dataset(name, data=v))
        f.visititems(visit)


def flips(a, report, loader, tmp, h5, good, intact):
    """Part 4 (--flips)."""
    offsets = offsets_to_flip(good)
    print("flipping %d of the %d bytes of trial.h5, one at a time" % (len(offsets), len(good)))
    bad = {"signal": [], "error": [], "changed": [], "loader": []}
    damaged = 0
    for off in offsets:
        data = bytearray(good)
        data[off] ^= 0xFF
        with open(h5, "wb") as f:
            f.write(data)
        try:
            p = subprocess.run(report, capture_output=True, text=True, errors="replace",
                               timeout=60)
        except subprocess.TimeoutExpired:
            bad["error"].append((off, "hung"))
            continue
        out = p.stdout + p.stderr
        if p.returncode < 0 or p.returncode > 128:
            bad["signal"].append((off, p.returncode))
        elif p.returncode != 0:
            bad["error"].append((off, out.strip().splitlines()[-1:]))
        elif "damaged trial.h5, not used" in out:
            damaged += 1
        elif p.stdout != intact:
            bad["changed"].append(off)
        q = subprocess.run([sys.executable, loader, os.path.join(tmp, "run")],
                           capture_output=True, text=True, errors="replace", timeout=60)
        if q.returncode < 0:
            bad["loader"].append((off, q.returncode))
    with open(h5, "wb") as f:
        f.write(good)
    print("%d flips listed as damaged, %d reported as the intact file"
          % (damaged, len(offsets) - damaged - sum(len(v) for v in bad.values())))
    check(not bad["signal"], "safecl report never dies on a signal: %s" % bad["signal"][:10])
    check(not bad["error"], "safecl report never stops with an error: %s" % bad["error"][:5])
    check(not bad["changed"], "a flip not listed as damage leaves the report unchanged: "
          "offsets %s" % bad["changed"][:20])
    check(not bad["loader"], "load_results.py never dies on a signal: %s" % bad["loader"][:10])
    check(damaged == len(offsets), "%d of %d flips listed as damaged (every byte is under the "
          "whole-file checksum)" % (damaged, len(offsets)))


if __name__ == "__main__":
    sys.exit(main())
