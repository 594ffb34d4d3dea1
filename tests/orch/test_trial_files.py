#!/usr/bin/env python3
"""test_trial_files.py: what a sweep leaves in its run directory for readers that use only the
files (analysis/SCHEMA.md):

1. A tiny sweep (SimpleCIL on synthetic data, a grid of two eval.val_fraction values x seeds 1
   and 2) in which the seed-2 trials fail (SAFECL_FAULT_TRIAL_ERROR, a NaN): each failed trial
   directory holds failed.txt with the FAILED record's message and the identity config, every
   trial directory trial.cfg, and `safecl report` lists the failed trials as failed, placed in
   their configuration with seed and message, in Markdown, LaTeX and CSV; a trial without
   results or failed.txt is listed as unfinished, placed by its trial.cfg.
2. RUN_DIR/trials.tsv has one row per trial: the grid key as a column, status, the message of
   the failed ones, finished accuracies that read back to trial.h5's doubles exactly, the path.
3. Every file name in the run directory and in a finished and a failed trial directory is one
   analysis/SCHEMA.md's tables list (parsed from its "Files of a run directory" and "Files of
   a trial directory" tables), and the ones a finished and a failed trial must hold are there.
4. Rerunning with sweep.retry_failed=true and no fault removes failed.txt: the trials finish and
   trials.tsv says so.
"""
import argparse
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py

from orch_util import REPO, check, finish, method, run_sweep, synthetic, tiny_overrides, \
    write_sweep


def schema_names(section):
    """The file-name patterns of one analysis/SCHEMA.md table, as regular expressions."""
    text = open(os.path.join(REPO, "analysis/SCHEMA.md")).read()
    start = text.index("### " + section)
    body = text[start:].split("\n\n", 2)[1]  # the table after the heading line
    names = []
    for line in body.splitlines():
        if not line.startswith("| `"):
            continue
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            pattern = re.sub(r"<[^>]+>", "[^/]+", re.escape(name.rstrip("/")))
            names.append(re.compile("^" + pattern + "$"))
    return names


def listed(name, patterns):
    return any(p.match(name) for p in patterns)


def report(safecl, args):
    p = subprocess.run([safecl, "report"] + args + ["--no-published"], capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0, "report %s exits 0 (%s)" % (" ".join(args), p.stderr.strip()[-300:]))
    return p.stdout


def read_tsv(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch_files_") as tmp:
        os.chdir(tmp)
        body = ('  datasets = ["%s"];\n  methods = ["%s"];\n  seeds = [1, 2];\n'
                '  grid = ( { key = "eval.val_fraction"; values = [0.0, 0.25]; } );\n'
                % (synthetic(), method("simplecil")))
        sweep = write_sweep(os.path.join(tmp, "files.cfg"), "files", body,
                            tiny_overrides(classes=4, train=4, test=2))
        run = os.path.join(tmp, "run")
        env = {"SAFECL_FAULT_TRIAL_ERROR": "numeric:9:seed=2"}
        rc, out = run_sweep([sweep, "run.dir=" + run], 2, a.mpiexec, a.safecl, env,
                            log=os.path.join(tmp, "sweep1.log"))
        check(rc is not None and rc >= 0, "sweep ends by itself (rc %s)" % rc)
        trials = sorted(os.listdir(os.path.join(run, "trials")))
        check(len(trials) == 4, "4 trial directories (%d)" % len(trials))

        # 1. failed.txt, trial.cfg and the report
        failed, finished = [], []
        for tid in trials:
            d = os.path.join(run, "trials", tid)
            (failed if os.path.exists(os.path.join(d, "failed.txt")) else finished).append(tid)
            check(os.path.exists(os.path.join(d, "trial.cfg")), "%s: trial.cfg" % tid[:8])
        check(len(failed) == 2 and len(finished) == 2,
              "2 failed (failed.txt) and 2 finished trials (%d, %d)" % (len(failed), len(finished)))
        for tid in failed:
            text = open(os.path.join(run, "trials", tid, "failed.txt")).read()
            lines = text.splitlines()
            check(lines and re.match(r'error = ".*fault injection: numeric on attempt 1";$',
                                     lines[0]) is not None,
                  "%s: failed.txt opens with the message: %r" % (tid[:8], lines[:1]))
            for want in ('dataset.name = "synthetic";', 'method.name = "simplecil";',
                         "seed = 2;", 'run.dir = "%s";' % os.path.join(run, "trials", tid)):
                check(want in lines, "%s: failed.txt has %s" % (tid[:8], want))
            check(not os.path.exists(os.path.join(run, "trials", tid, "trial.h5")),
                  "%s: no trial.h5" % tid[:8])
        md = report(a.safecl, [run])
        fails = [ln for ln in md.splitlines() if ln.startswith("- Failed: Synthetic / SimpleCIL")]
        check(len(fails) == 2, "md: two Failed notes (%d)" % len(fails))
        for v in ("0.0", "0.25"):
            check(any("seed 2 `eval.val_fraction = %s`" % v in ln and
                      "fault injection: numeric on attempt 1" in ln for ln in fails),
                  "md: the failed seed 2 of eval.val_fraction = %s with its message" % v)
        check("Trials: 2 finished, 2 failed, 0 unfinished" in md, "md: 2 finished, 2 failed")
        check("not placed" not in md and "Unfinished" not in md, "md: nothing unfinished")
        # The cell's note also marks random backbone weights: "(1; 1 failed; 1 random weights)".
        check(re.search(r"\(1; 1 failed(; 1 random weights)?\)", md),
              "md: the chosen cell counts its failed seed")
        latex = report(a.safecl, [run, "--format", "latex"])
        check(latex.count("Failed: Synthetic / SimpleCIL seed 2") == 2, "latex: two Failed notes")
        rows = list(csv.DictReader(io.StringIO(report(a.safecl, [run, "--format", "csv"]))))
        frows = [r for r in rows if r["kind"] == "failed"]
        check(len(frows) == 2 and all(
            r["dataset"] == "synthetic" and r["method"] == "simplecil" and r["seed"] == "2" and
            "fault injection" in r["note"] and r["config"].startswith("eval.val_fraction = ")
            for r in frows), "csv: two failed rows with dataset, method, seed, config, message")
        check(not [r for r in rows if r["kind"] == "unfinished"], "csv: no unfinished rows")

        # a trial that has not finished (its trial.h5 gone in a copy of the run) is listed as
        # unfinished, placed in its configuration by trial.cfg
        copy = os.path.join(tmp, "copy")
        shutil.copytree(run, copy)
        os.remove(os.path.join(copy, "trials", finished[0], "trial.h5"))
        md = report(a.safecl, [copy])
        unf = [ln for ln in md.splitlines() if ln.startswith("- Unfinished:")]
        check(len(unf) == 1 and "Synthetic / SimpleCIL seed 1 `eval.val_fraction = " in unf[0] and
              "not placed" not in unf[0] and "Trials: 1 finished, 2 failed, 1 unfinished" in md,
              "md: a trial without results and failed.txt is unfinished, placed: %s" % unf)

        # 2. trials.tsv
        tsv = os.path.join(run, "trials.tsv")
        check(os.path.exists(tsv), "RUN_DIR/trials.tsv exists")
        table = read_tsv(tsv) if os.path.exists(tsv) else []
        check(len(table) == 4, "trials.tsv: 4 rows (%d)" % len(table))
        header = open(tsv).readline().rstrip("\n").split("\t") if table else []
        check(header[:5] == ["trial_id", "dataset", "method", "seed", "eval.val_fraction"] and
              header[-8:] == ["status", "retries", "final_acc", "avg_acc", "val_acc", "seconds",
                              "message", "path"], "trials.tsv: header %s" % header)
        for r in table:
            tid = r["trial_id"]
            check(r["path"] == "trials/" + tid and os.path.isdir(os.path.join(run, r["path"])),
                  "trials.tsv %s: path" % tid[:8])
            check(r["dataset"] == "synthetic" and r["method"] == "simplecil" and
                  r["eval.val_fraction"] in ("0", "0.0", "0.25"),
                  "trials.tsv %s: dataset, method, grid value %r" % (tid[:8],
                                                                     r["eval.val_fraction"]))
            if tid in failed:
                check(r["status"] == "failed" and r["seed"] == "2" and
                      "fault injection: numeric on attempt 1" in r["message"] and
                      r["final_acc"] == "", "trials.tsv %s: failed with its message" % tid[:8])
            else:
                with h5py.File(os.path.join(run, "trials", tid, "trial.h5"), "r") as f:
                    want = (float(f.attrs["final_acc"]), float(f.attrs["avg_acc"]))
                check(r["status"] == "finished" and r["seed"] == "1" and
                      (float(r["final_acc"]), float(r["avg_acc"])) == want,
                      "trials.tsv %s: finished, accuracies exactly trial.h5's %s" % (tid[:8],
                                                                                     want))

        # 3. file names against analysis/SCHEMA.md
        run_names, trial_names = (schema_names("Files of a run directory"),
                                  schema_names("Files of a trial directory"))
        check(len(run_names) >= 6 and len(trial_names) >= 6,
              "analysis/SCHEMA.md: both tables parsed")
        for name in os.listdir(run):
            check(listed(name, run_names), "run dir: %s is in analysis/SCHEMA.md's table" % name)
        for tid, must in ((finished[0], {"trial.h5", "trial.cfg"}),
                          (failed[0], {"failed.txt", "trial.cfg"})):
            have = set(os.listdir(os.path.join(run, "trials", tid)))
            for name in sorted(have):
                check(listed(name, trial_names),
                      "trial dir: %s is in analysis/SCHEMA.md's table" % name)
            check(must <= have and all(listed(n, trial_names) for n in must),
                  "trial dir %s holds and analysis/SCHEMA.md lists %s" % (tid[:8], sorted(must)))

        # 4. retry: failed.txt goes, the trials finish, and what killed writers left in a
        # retried trial's directory (publish temporaries of the coordinator and of the trial)
        # is removed when its group takes it
        stale = ["trial.cfg.tmp.999999", "failed.txt.tmp.999999", "ckpt.h5.tmp.999999.reserve",
                 "trial.h5.tmp.999999"]
        for name in stale:
            open(os.path.join(run, "trials", failed[0], name), "w").close()
        rc, out = run_sweep([sweep, "run.dir=" + run, "sweep.retry_failed=true"], 2, a.mpiexec,
                            a.safecl, {}, log=os.path.join(tmp, "sweep2.log"))
        check(rc == 0, "the retry sweep exits 0 (rc %s)" % rc)
        for tid in failed:
            d = os.path.join(run, "trials", tid)
            check(not os.path.exists(os.path.join(d, "failed.txt")) and
                  os.path.exists(os.path.join(d, "trial.h5")),
                  "%s: retried: trial.h5, no failed.txt" % tid[:8])
        left = [n for n in stale if os.path.exists(os.path.join(run, "trials", failed[0], n))]
        check(not left, "a killed writer's temporaries are removed when the trial is taken: %s"
              % left)
        table = read_tsv(tsv)
        check([r["status"] for r in table] == ["finished"] * 4 and
              all(r["message"] == "" for r in table), "trials.tsv: all finished after the retry")
    return finish("test_trial_files")


if __name__ == "__main__":
    sys.exit(main())
