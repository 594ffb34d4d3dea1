"""test_hostile_files.py: the safecl binary on files that used to hang it or make it do unbounded
work; every command must end at once with exit 1 (status: exit 0 and a warning) and a message
naming the key, the path and what is wrong (docs/architecture.md 7).

1. `safecl train` with backbone.weights a FIFO, /dev/zero or a directory: the weights hash of the
   trial identity read a FIFO by blocking on the open and /dev/zero for ever.
2. `safecl train FIFO` (the config file itself a FIFO).
3. `safecl status RUN_DIR` with a FIFO named ledger.<job>.log beside a real ledger: skipped with a
   warning, the rest reported.
4. `safecl train` on a folder dataset of 40x30 PNGs with dataset.max_image_pixels = 1000: the
   trial fails naming the image, its size and the key (the key reaches the reader); a dataset
   whose class directory holds three symlinks to "." fails naming the looping directory.
Each command runs with a timeout, so a hang is a failure, not a stuck test. Exits non-zero on any
failure.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zlib

failures = []
TIMEOUT = 120


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


TRIAL = ["method.name=simplecil", "method.pet=none", "dataset.format=synthetic",
         "dataset.synthetic.classes=4", "dataset.synthetic.train_per_class=2",
         "dataset.synthetic.test_per_class=2", "dataset.init_cls=2", "dataset.increment=2",
         "backbone.arch=vit_tiny_patch16_224", "train.epochs_first=0", "train.epochs_later=0",
         "train.batch=4", "eval.batch=4", "threads=1"]


def run(safecl, args):
    """(exit code, stderr) of `safecl args`, or (None, '') when it hangs past TIMEOUT."""
    try:
        r = subprocess.run([safecl] + args, capture_output=True, text=True, timeout=TIMEOUT)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired:
        return None, ""


def expect_refused(safecl, args, what, needles):
    rc, out = run(safecl, args)
    check(rc is not None, "%s: ends within %d s" % (what, TIMEOUT))
    if rc is None:
        return
    check(rc == 1, "%s: exit 1 (got %d)" % (what, rc))
    missing = [n for n in needles if n not in out]
    check(not missing, "%s: the message names %s: %s" % (what, missing or needles,
                                                         out.strip().splitlines()[-6:]))


def png_gray(path, w, h):
    """An 8-bit grayscale PNG of a gradient, written with zlib."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\0" + bytes((x + y) % 256 for x in range(w)) for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_weights(safecl, tmp):
    fifo = os.path.join(tmp, "weights.safetensors")
    os.mkfifo(fifo)
    wdir = os.path.join(tmp, "weights_dir")
    os.mkdir(wdir)
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device"),
                       (wdir, "a directory")):
        expect_refused(safecl, ["train"] + TRIAL + ["backbone.weights=" + path,
                                                    "run.dir=" + os.path.join(tmp, "run_w")],
                       "backbone.weights = %s" % kind, ["backbone.weights", path, kind])


def test_config_fifo(safecl, tmp):
    fifo = os.path.join(tmp, "trial.cfg")
    os.mkfifo(fifo)
    expect_refused(safecl, ["train", fifo], "config file that is a FIFO",
                   ["config file", fifo, "a FIFO"])


def test_status(safecl, tmp):
    run_dir = os.path.join(tmp, "run_status")
    os.mkdir(run_dir)
    os.mkfifo(os.path.join(run_dir, "ledger.99.log"))
    open(os.path.join(run_dir, "ledger.98.log"), "w").close()
    rc, out = run(safecl, ["status", run_dir])
    check(rc is not None, "status with a FIFO ledger ends within %d s" % TIMEOUT)
    check(rc == 0, "status exits 0 (got %s)" % rc)
    check("ledger.99.log is a FIFO, not a regular file: skipped" in out,
          "status warns of the FIFO: %s" % out.strip().splitlines()[-3:])
    check("ledgers: 1 file(s)" in out, "status reads the real ledger")


def test_folder(safecl, tmp):
    root = os.path.join(tmp, "pix")
    for split in ("train", "test"):
        for c in ("a", "b"):
            os.makedirs(os.path.join(root, split, c))
            for i in range(2):
                png_gray(os.path.join(root, split, c, "%d.png" % i), 40, 30)
    args = [a for a in TRIAL if not a.startswith("dataset.")] + [
        "dataset.format=folder", "dataset.root=" + root, "dataset.shuffle=false",
        "dataset.init_cls=1", "dataset.increment=1"]
    expect_refused(safecl, ["train"] + args + ["dataset.max_image_pixels=1000",
                                               "run.dir=" + os.path.join(tmp, "run_pix")],
                   "40x30 images over dataset.max_image_pixels = 1000",
                   [".png", "40x30", "dataset.max_image_pixels = 1000"])
    fan = os.path.join(tmp, "fan")
    for split in ("train", "test"):
        os.makedirs(os.path.join(fan, split, "a"))
        png_gray(os.path.join(fan, split, "a", "0.png"), 40, 30)
        for k in range(3):
            os.symlink(".", os.path.join(fan, split, "a", "l%d" % k))
    args = [a for a in args if not a.startswith("dataset.root")] + ["dataset.root=" + fan]
    expect_refused(safecl, ["train"] + args + ["run.dir=" + os.path.join(tmp, "run_fan")],
                   "three symlinks to . in a class directory",
                   [os.path.join(fan, "train", "a"), "loops back to"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="safecl_hostile_") as tmp:
        test_weights(a.safecl, tmp)
        test_config_fifo(a.safecl, tmp)
        test_status(a.safecl, tmp)
        test_folder(a.safecl, tmp)
    print("%d failure(s)" % len(failures) if failures else "all hostile-file checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
