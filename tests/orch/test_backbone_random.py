"""test_backbone_random.py: a trial on random backbone weights is marked in every table a script
reads, not only in the report's Markdown table (analysis/SCHEMA.md).

1. Two one-trial sweeps of the tiny ViT, one with no backbone.weights (random) and one with a
   weights file written here (vit_ref.py): RUN_DIR/trials.tsv has backbone_random 1 and 0;
   `safecl report --format csv` has n_backbone_random 1 and 0 on every `run` line;
   analysis/load_results.py gives row["backbone_random"] 1 and 0 and prints "random weights"
   for the first only.
2. A ledger written by an older safecl (PLAN records without the flag: attempt 0, CRC
   recomputed): `safecl status --reindex` leaves the column empty, and the next job of the
   sweep records it again (1).
Exits non-zero on any failure.
"""
import argparse
import csv
import glob
import io
import os
import subprocess
import sys
import tempfile
import zlib

from orch_util import (REPO, check, finish, method, run_sweep, synthetic, tiny_overrides,
                       write_sweep)

sys.path.insert(0, os.path.join(REPO, "tests", "model"))
sys.path.insert(0, os.path.join(REPO, "analysis"))


def tsv_column(run_dir, name):
    with open(os.path.join(run_dir, "trials.tsv")) as f:
        return [r.get(name) for r in csv.DictReader(f, delimiter="\t")]


def csv_column(a, run_dir, name):
    p = subprocess.run([a.safecl, "report", run_dir, "--format", "csv", "--no-published"],
                       capture_output=True, text=True)
    rows = list(csv.DictReader(io.StringIO(p.stdout))) if p.returncode == 0 else []
    return [r.get(name) for r in rows if r["kind"] == "run"]


def strip_plan_flags(run_dir):
    """Rewrites every PLAN record as an older safecl wrote it (attempt 0), CRC recomputed."""
    for path in glob.glob(os.path.join(run_dir, "ledger.*.log")):
        lines = open(path, "rb").read().split(b"\n")
        out = []
        for line in lines:
            f = line.split(b" ")
            if len(f) > 6 and f[1] == b"PLAN":
                f[5] = b"0"
                body = b" ".join(f[1:])
                line = b"%08x " % zlib.crc32(body) + body
            out.append(line)
        open(path, "wb").write(b"\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    import vit_ref
    import load_results
    with tempfile.TemporaryDirectory(prefix="orch_random_") as tmp:
        model = vit_ref.create("vit_tiny_patch16_224")
        vit_ref.init_random(model, 3)
        weights = os.path.join(tmp, "tiny.safetensors")
        vit_ref.write_safetensors(weights, {k: v.detach().numpy()
                                            for k, v in model.state_dict().items()})
        body = '  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1];\n' % (
            synthetic(), method("simplecil"))
        runs = {}
        for name, extra in (("random", []), ("given", ['"backbone.weights=%s"' % weights])):
            path = write_sweep(os.path.join(tmp, name + ".cfg"), name, body,
                               tiny_overrides() + extra)
            run_dir = os.path.join(tmp, name)
            rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                                log=os.path.join(tmp, name + ".log"))
            check(rc == 0, "sweep %s finishes (exit %s)" % (name, rc))
            if rc != 0:
                print(out[-3000:])
            runs[name] = (path, run_dir)
        for name, want in (("random", "1"), ("given", "0")):
            run_dir = runs[name][1]
            got = tsv_column(run_dir, "backbone_random")
            check(got == [want], "%s: trials.tsv backbone_random %s (got %s)" % (name, want, got))
            got = csv_column(a, run_dir, "n_backbone_random")
            check(got and all(v == want for v in got),
                  "%s: report CSV n_backbone_random %s on each run line (got %s)"
                  % (name, want, got))
            rows = [load_results.read_trial(p) for p in load_results.trial_dirs(run_dir)]
            check([r.get("backbone_random") for r in rows] == [int(want)],
                  "%s: load_results.py backbone_random %s (%s)"
                  % (name, want, [r.get("backbone_random") for r in rows]))
            p = subprocess.run([sys.executable, os.path.join(REPO, "analysis", "load_results.py"),
                                run_dir], capture_output=True, text=True)
            check(p.returncode == 0 and ("random weights" in p.stdout) == (want == "1"),
                  "%s: load_results.py prints 'random weights' %s: %s"
                  % (name, "once" if want == "1" else "nowhere", p.stdout + p.stderr[-500:]))
        path, run_dir = runs["random"]
        strip_plan_flags(run_dir)
        p = subprocess.run([a.safecl, "status", run_dir, "--reindex"], capture_output=True,
                           text=True)
        got = tsv_column(run_dir, "backbone_random")
        check(p.returncode == 0 and got == [""],
              "older ledger: --reindex leaves backbone_random empty (got %s): %s"
              % (got, p.stderr[-500:]))
        rc, out = run_sweep([path, "run.dir=" + run_dir], 2, a.mpiexec, a.safecl,
                            log=os.path.join(tmp, "again.log"))
        got = tsv_column(run_dir, "backbone_random")
        check(rc == 0 and got == ["1"], "older ledger: the next job records it again (exit %s, %s)"
              % (rc, got))
    return finish("test_backbone_random")


if __name__ == "__main__":
    sys.exit(main())
