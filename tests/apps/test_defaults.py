"""test_defaults.py: loud defaults and leftovers (docs/architecture.md, safecl plan and report).

1. `safecl plan` refuses a missing backbone.weights file and a missing dataset, naming the key and
   the path, with exit 1; empty backbone.weights is a RANDOM WEIGHTS warning, not an error.
2. `safecl plan --gflops X --ranks G` prices with the nominal rate and divides by G;
   `--calibrate --calibration FILE` saves this machine's rates, `--calibration FILE` prices with
   them (the rates line names the file), a damaged calibration file is refused naming file and key,
   bad option values are usage errors (exit 2).
3. A `safecl train` refused at open (dataset missing) leaves no run directory it created (nested
   too), but keeps a directory that existed before, and its files.
4. `safecl report` run from an unrelated directory finds the shipped analysis/published.csv
   (its reported rows appear); SAFECL_PUBLISHED pointing nowhere gives a clear note, no rows.
Exits non-zero on any failure.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "report"))
import report_fixtures  # noqa: E402

failures = []


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)
        if detail:
            print(detail)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def total_seconds(text):
    m = re.search(r"^total: .* estimated (\d+) s", text, re.M)
    return int(m.group(1)) if m else None


def test_plan(safecl, src, tmp):
    cfgs = [os.path.join(src, "configs", c) for c in
            ("datasets/synthetic.cfg", "methods/simplecil.cfg", "backbones/vit_tiny_random.cfg")]
    p = run([safecl, "plan"] + cfgs + ["backbone.weights=" + tmp + "/none.safetensors",
                                       "--gflops", "10"])
    check(p.returncode == 1 and "backbone.weights" in p.stderr and "none.safetensors" in p.stderr,
          "plan: missing weights file named with its key, exit 1", p.stderr)
    bad = os.path.join(tmp, "bad.safetensors")
    with open(bad, "wb") as f:
        f.write(b"\x05\x00\x00\x00\x00\x00\x00\x00{\"a\"")
    p = run([safecl, "plan"] + cfgs + ["backbone.weights=" + bad, "--gflops", "10"])
    check(p.returncode == 1 and "backbone.weights = \"%s\" cannot be read" % bad in p.stderr,
          "plan: unreadable weights file refused", p.stderr)
    cifar = [os.path.join(src, "configs", "datasets", "cifar100.cfg"),
             os.path.join(src, "configs", "methods", "simplecil.cfg"),
             os.path.join(src, "configs", "backbones", "vit_tiny_random.cfg")]
    p = run([safecl, "plan"] + cifar + ["dataset.root=" + tmp + "/nodata", "--gflops", "10"])
    check(p.returncode == 1 and "dataset.root = \"%s/nodata\"" % tmp in p.stderr,
          "plan: missing dataset named with its key and path, exit 1", p.stderr)
    p1 = run([safecl, "plan"] + cfgs + ["--gflops", "10"])
    check(p1.returncode == 0 and "RANDOM WEIGHTS" in p1.stderr,
          "plan: empty backbone.weights is a RANDOM WEIGHTS warning", p1.stdout + p1.stderr)
    check("nominal 10 GFLOP/s per rank" in p1.stdout, "plan: --gflops names its rates", p1.stdout)
    p4 = run([safecl, "plan"] + cfgs + ["--gflops=10", "--ranks", "4"])
    t1, t4 = total_seconds(p1.stdout), total_seconds(p4.stdout)
    check(p4.returncode == 0 and "on 4 ranks" in p4.stdout and t1 and t4 is not None
          and abs(t4 - t1 / 4) <= 1, "plan: --ranks 4 divides the time (%s -> %s s)" % (t1, t4),
          p4.stdout + p4.stderr)
    p20 = run([safecl, "plan"] + cfgs + ["--gflops", "20"])
    t20 = total_seconds(p20.stdout)
    check(t20 is not None and abs(t20 - t1 / 2) <= 1, "plan: twice the GFLOP/s halves the time",
          p20.stdout)
    cal = os.path.join(tmp, "cache", "safecl", "calibration")
    p = run([safecl, "plan", "--calibrate", "--calibration", cal] + cfgs)
    check(p.returncode == 0 and os.path.exists(cal) and "saved to " + cal in p.stdout,
          "plan --calibrate saves the rates to the named file", p.stdout + p.stderr)
    p = run([safecl, "plan"] + cfgs + ["--calibration", cal, "--ranks", "2"])
    check(p.returncode == 0 and "rates from: calibration " + cal in p.stdout
          and total_seconds(p.stdout) is not None, "plan --calibration prices with the saved rates",
          p.stdout + p.stderr)
    p = run([safecl, "plan"] + cfgs + ["backbone.arch=vit_small_patch16_224", "--calibration", cal])
    check(p.returncode == 0 and "calibrated with vit_tiny_patch16_224, not vit_small_patch16_224"
          in p.stderr, "plan: a calibration of another architecture is used with a warning",
          p.stdout + p.stderr)
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "xdg"))
    env.pop("SAFECL_CALIBRATION", None)
    p = run([safecl, "plan", "--calibrate"] + cfgs, env=env)
    check(p.returncode == 0 and os.path.exists(os.path.join(tmp, "xdg", "safecl", "calibration")),
          "plan --calibrate defaults to $XDG_CACHE_HOME/safecl/calibration", p.stdout + p.stderr)
    with open(cal) as f:
        text = f.read()
    damaged = os.path.join(tmp, "damaged")
    with open(damaged, "w") as f:
        f.write(re.sub(r"dgemm_gflop_per_s = .*", "dgemm_gflop_per_s = fast", text))
    p = run([safecl, "plan"] + cfgs + ["--calibration", damaged])
    check(p.returncode == 1 and damaged in p.stderr and "dgemm_gflop_per_s" in p.stderr,
          "plan: a damaged calibration file is refused naming file and key", p.stderr)
    p = run([safecl, "plan"] + cfgs + ["--calibration", tmp + "/nocal"])
    check(p.returncode == 1 and tmp + "/nocal" in p.stderr, "plan: a missing calibration file",
          p.stderr)
    for bad_args in (["--ranks", "0"], ["--ranks", "1.5"], ["--gflops", "-3"], ["--gflops"],
                     ["--gflops", "5", "--calibration", cal]):
        p = run([safecl, "plan"] + cfgs + bad_args)
        check(p.returncode == 2 and "safecl plan:" in p.stderr,
              "plan: %s is a usage error" % " ".join(bad_args), p.stderr)


def test_refused_train(safecl, src, tmp):
    cifar = [os.path.join(src, "configs", "datasets", "cifar100.cfg"),
             os.path.join(src, "configs", "methods", "simplecil.cfg"),
             os.path.join(src, "configs", "backbones", "vit_tiny_random.cfg")]
    fresh = os.path.join(tmp, "runs", "a", "b")
    p = run([safecl, "train"] + cifar + ["dataset.root=" + tmp + "/nodata", "run.dir=" + fresh])
    check(p.returncode == 1 and not os.path.exists(os.path.join(tmp, "runs")),
          "train: a refused trial leaves no run directory (nor the parents it made)", p.stderr)
    old = os.path.join(tmp, "old_run")
    os.makedirs(old)
    p = run([safecl, "train"] + cifar + ["dataset.root=" + tmp + "/nodata", "run.dir=" + old])
    check(p.returncode == 1 and os.path.isdir(old), "train: a run directory that existed is kept",
          p.stderr)
    keep = os.path.join(tmp, "runs2", "x")
    os.makedirs(os.path.dirname(keep))
    with open(os.path.join(tmp, "runs2", "notes.txt"), "w") as f:
        f.write("mine\n")
    p = run([safecl, "train"] + cifar + ["dataset.root=" + tmp + "/nodata", "run.dir=" + keep])
    check(p.returncode == 1 and not os.path.exists(keep)
          and os.path.exists(os.path.join(tmp, "runs2", "notes.txt")),
          "train: only what it created is removed; a parent with files stays", p.stderr)


def test_published(safecl, tmp):
    runs = os.path.join(tmp, "pubrun")
    report_fixtures.write_trial(os.path.join(runs, "trials", "r1"), "cifar100", "ranpac",
                                "representation", 1, [("ranpac", 90.0, 93.0, 1.0)])
    elsewhere = os.path.join(tmp, "elsewhere")
    os.makedirs(elsewhere)
    env = dict(os.environ)
    env.pop("SAFECL_PUBLISHED", None)
    p = run([safecl, "report", runs], cwd=elsewhere, env=env)
    check(p.returncode == 0 and "| RanPAC (reported [" in p.stdout,
          "report from another directory shows the shipped published numbers", p.stdout + p.stderr)
    env["SAFECL_PUBLISHED"] = os.path.join(tmp, "no.csv")
    p = run([safecl, "report", runs], cwd=elsewhere, env=env)
    check(p.returncode == 0 and "(reported" not in p.stdout and "no.csv" in p.stderr
          and "not found" in p.stderr, "SAFECL_PUBLISHED pointing nowhere: a note, no rows",
          p.stdout + p.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    safecl, src = os.path.abspath(args.safecl), os.path.abspath(args.source)
    with tempfile.TemporaryDirectory(prefix="safecl_defaults_") as tmp:
        test_plan(safecl, src, tmp)
        test_refused_train(safecl, src, tmp)
        test_published(safecl, tmp)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
