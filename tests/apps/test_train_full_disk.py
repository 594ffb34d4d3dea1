"""test_train_full_disk.py: `safecl train` whose first checkpoint meets a full disk (run.dir on a
256 KiB tmpfs, which a tiny SAFE trial's checkpoint outgrows) exits 1 with an error naming
ckpt.h5, never on a signal (the temporary file's HDF5 id must be closed by h5_file_abort, or
HDF5's cleanup at MPI_Finalize crashes) and without hanging, and leaves no temporary behind:
1. on one rank (a serial file: "No space left on device");
2. under mpiexec -np 2 (a group file written with MPI-IO: the ranks must leave the collective
   close together).
Needs to mount a tmpfs (root): exits 77 (skipped) where mounting is not permitted.
Exits non-zero on any failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

TRIAL = ["method.name=safe", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=8", "dataset.synthetic.train_per_class=6",
         "dataset.synthetic.test_per_class=3", "dataset.init_cls=4", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=1", "train.epochs_later=1",
         "train.batch=8", "method.rp.dim=256", "method.ridge.lo_exp=-2", "method.ridge.hi_exp=4",
         "eval.batch=8", "threads=1"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", required=True)
    a = ap.parse_args()
    failures = []

    def check(cond, msg):
        print(("ok   " if cond else "FAIL ") + msg, flush=True)
        if not cond:
            failures.append(msg)

    with tempfile.TemporaryDirectory(prefix="train_full_disk_") as tmp:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", tmp],
                          capture_output=True).returncode != 0:
            print("skip: cannot mount a tmpfs here (needs root)")
            return 77
        try:
            for name, launch, want in (
                    ("one rank", [], "No space left on device"),
                    ("2 ranks", [a.mpiexec, "-np", "2", "--oversubscribe"], "write failed")):
                run_dir = os.path.join(tmp, "run_%d" % len(launch))
                try:
                    p = subprocess.run(launch + [a.safecl, "train"] + TRIAL +
                                       ["run.dir=" + run_dir], capture_output=True, text=True,
                                       timeout=300)
                except subprocess.TimeoutExpired:
                    check(False, "%s: ends within 300 s (it hung)" % name)
                    continue
                out = p.stdout + p.stderr
                check(p.returncode == 1, "%s: exit status 1 on a full disk (got %d)"
                      % (name, p.returncode))
                check("ckpt.h5" in out and want in out,
                      "%s: the message names ckpt.h5 and the failed write" % name)
                crashed = [w for w in ("Segmentation", "signal 11", "End of error message")
                           if w in out]
                check(not crashed, "%s: no crash at exit %s" % (name, crashed))
                # The trial wrote nothing that lasts: train removes the run directory it created,
                # or (had it existed before) leaves only its lock and the trial's log.
                left = sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []
                check(left in ([], ["lock", "trial.log"]), "%s: no temporary file left: %s"
                      % (name, left))
                if failures:
                    print(out[-3000:])
                shutil.rmtree(run_dir, ignore_errors=True)
        finally:
            subprocess.run(["umount", tmp])
    if failures:
        print("test_train_full_disk: %d failure(s)" % len(failures))
        return 1
    print("test_train_full_disk: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
