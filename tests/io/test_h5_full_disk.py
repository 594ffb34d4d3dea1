"""test_h5_full_disk.py: h5_file_commit on a nearly full disk fails with a clean error, never on a
signal, and keeps what was already written (src/io/h5_file.c).

On a 256 KiB tmpfs, h5_full_disk_writer publishes a small out.h5, fills the disk with a filler
file, then writes out.h5 again (a 16 KiB dataset, which HDF5 holds in its 64 KiB sieve buffer
until the file is flushed) and commits it. The filler's size steps through the last 192 KiB of
the disk in 4 KiB pages (tmpfs's unit), across the point where the disk is full. Without room
held for the flush, one of these sizes let the data writes succeed and the flush at the commit
fail; HDF5 1.10's failed close then left the file's id registered and its cleanup at MPI_Finalize
crashed on it (SIGSEGV, exit 139). Now the file being created holds room for its flush
(H5_CLOSE_RESERVE, src/io/h5_internal.h), so the disk fills while the data is written, where
the failure is clean. Each run must exit 0 (committed) or 1 (failed cleanly), never on a signal;
after a failure the previous out.h5 still reads back whole and no temporary is left (the writer
checks both, exit 2 otherwise). At least one run must commit and one fail, or the sizes missed
the full disk.
Needs to mount a tmpfs (root): exits 77 (skipped) where mounting is not permitted.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

DISK = 256 * 1024
PAGE = 4096
DATAS = (16 * 1024,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writer", required=True)
    a = ap.parse_args()
    failures = []

    def check(cond, msg):
        print(("ok   " if cond else "FAIL ") + msg, flush=True)
        if not cond:
            failures.append(msg)

    committed = failed = 0
    with tempfile.TemporaryDirectory(prefix="h5_full_disk_") as tmp:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % DISK, "tmpfs", tmp],
                          capture_output=True).returncode != 0:
            print("skip: cannot mount a tmpfs here (needs root)")
            return 77
        try:
            for data, fill in ((d, f) for d in DATAS
                               for f in range(DISK - 48 * PAGE, DISK + PAGE, PAGE)):
                for name in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, name))
                try:
                    p = subprocess.run([a.writer, tmp, str(fill), str(data)], capture_output=True,
                                       text=True, timeout=60)
                except subprocess.TimeoutExpired:
                    check(False, "data %d, filler %d: ends within 60 s (it hung)" % (data, fill))
                    continue
                out = (p.stdout + p.stderr).strip()
                first = out.splitlines()[0][:160] if out else ""
                committed += p.returncode == 0
                failed += p.returncode == 1
                if p.returncode == 1:
                    check("out.h5" in out and "No space left on device" in out,
                          "data %d, filler %d: the error names out.h5 and the full disk"
                          % (data, fill))
                check(p.returncode in (0, 1),
                      "data %d, filler %d: exit %d (0: committed, 1: clean failure; 2: previous "
                      "file lost or temporary left; negative or >128: a signal): %s"
                      % (data, fill, p.returncode, first))
                if p.returncode not in (0, 1):
                    print(out[-2000:])
        finally:
            subprocess.run(["umount", tmp])
    check(committed >= 1 and failed >= 1, "%d run(s) committed, %d failed on the full disk"
          % (committed, failed))
    if failures:
        print("test_h5_full_disk: %d failure(s)" % len(failures))
        return 1
    print("test_h5_full_disk: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
