"""test_sweep_paths.py: a sweep file in a user's own project directory, away from the checkout.

Every relative path a sweep file holds resolves against the sweep file's directory, whatever the
current directory (docs/architecture.md 6):
1. --list run from three directories (the project, the sweep's folder with a relative sweep path,
   an unrelated one) prints the same trials, ids and statuses; a relative dataset.root that does
   not exist fails only its own trials, with the absolute path it was resolved to.
2. The sweep itself, run from yet another directory without run.dir on the command line, writes to
   the run.dir the file names (relative to it), finishes the trials --list planned under the same
   ids, reads the relative weights and folder dataset (the stored config holds their absolute
   paths), and exits 3 because one trial failed; `safecl status` lists the failure.
3. A dataset entry with its own base files and methods list layers those files and runs those
   methods for its trials only, and the sweep.cfg the run directory records reads back to the
   same plan.
4. The identity: a trial whose weights the file names relatively has the id of the same trial
   with the absolute path (the path is made absolute before hashing), so moving the project gives
   it a new id; dataset.root is outside the identity, so the folder trial keeps its id.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "model"))
from orch_util import REPO, check, finish, finished_trials  # noqa: E402
import vit_ref  # noqa: E402

SWEEP = """sweep = {
  name = "paths";
  base = ["../cfg/tiny.cfg"];
  datasets = ( "../cfg/synthetic.cfg",
               { file = "../cfg/synthetic.cfg";
                 base = ["../cfg/backbone7.cfg"];
                 overrides = ["dataset.name=shapes", "dataset.format=folder",
                              "dataset.root=../data/shapes", "dataset.init_cls=2"]; },
               { file = "../cfg/synthetic.cfg";
                 overrides = ["dataset.name=gone", "dataset.format=folder",
                              "dataset.root=./../data/absent"];
                 methods = ["../cfg/simplecil.cfg"]; } );
  methods = [ "../cfg/simplecil.cfg", "../cfg/ncm.cfg" ];
  seeds = [1];
  overrides = ["backbone.weights=../weights/tiny.safetensors", "dataset.synthetic.classes=4",
               "dataset.synthetic.train_per_class=2", "dataset.synthetic.test_per_class=2",
               "dataset.synthetic.size=32", "dataset.init_cls=2", "dataset.increment=2",
               "eval.batch=8", "threads=1"];
};
run = { dir = "../run"; };
"""


def make_project(proj):
    os.makedirs(os.path.join(proj, "sweeps"))
    os.makedirs(os.path.join(proj, "cfg"))
    os.makedirs(os.path.join(proj, "weights"))
    with open(os.path.join(proj, "cfg", "tiny.cfg"), "w") as f:
        f.write('backbone = { arch = "vit_tiny_patch16_224"; };\n')
    with open(os.path.join(proj, "cfg", "backbone7.cfg"), "w") as f:  # a dataset's own base file
        f.write('backbone = { seed = 7; };\n')
    shutil.copy(os.path.join(REPO, "configs/datasets/synthetic.cfg"), os.path.join(proj, "cfg"))
    shutil.copy(os.path.join(REPO, "configs/methods/simplecil.cfg"), os.path.join(proj, "cfg"))
    with open(os.path.join(proj, "cfg", "ncm.cfg"), "w") as f:  # a second method: SimpleCIL at another sigma
        f.write('method = { name = "simplecil"; head = { sigma0 = 2.0; }; };\n')
    model = vit_ref.create("vit_tiny_patch16_224")
    vit_ref.init_random(model, 5)
    vit_ref.write_safetensors(os.path.join(proj, "weights", "tiny.safetensors"),
                              {k: v.detach().numpy() for k, v in model.state_dict().items()})
    rng = np.random.default_rng(3)
    for split in ("train", "test"):
        for c in ("a", "b"):
            d = os.path.join(proj, "data", "shapes", split, c)
            os.makedirs(d)
            for k in range(2):
                img = rng.integers(0, 255, size=(40, 40, 3)).astype(np.uint8)
                Image.fromarray(img).save(os.path.join(d, "%d.png" % k))
    with open(os.path.join(proj, "sweeps", "paths.cfg"), "w") as f:
        f.write(SWEEP)


def run(cmd, cwd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=e, timeout=600)


def listing(safecl, sweep, cwd):
    p = run([safecl, "sweep", "--list", sweep], cwd)
    rows = [line.split(None, 4) for line in p.stdout.splitlines() if line.strip()]
    return p, [r[:2] + r[3:] for r in rows]  # without the expected seconds (measured rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", required=True)
    a = ap.parse_args()
    safecl = os.path.abspath(a.safecl)
    tmp = tempfile.mkdtemp(prefix="safecl_paths_")
    try:
        proj = os.path.join(tmp, "proj")
        make_project(proj)
        other = os.path.join(tmp, "elsewhere")
        os.makedirs(other)
        sweep = os.path.join(proj, "sweeps", "paths.cfg")

        # 1. the same plan from three directories
        outs = [listing(safecl, sweep, proj), listing(safecl, "paths.cfg",
                                                      os.path.join(proj, "sweeps")),
                listing(safecl, sweep, other)]
        for p, _ in outs:
            if p.returncode != 0:
                print(p.stdout[-2000:], p.stderr[-2000:])
        rows = outs[0][1]
        check(all(p.returncode == 0 for p, _ in outs) and len(rows) == 5,
              "--list plans 5 trials (2 datasets x 2 methods + 1 own method): %d" % len(rows))
        check(outs[1][1] == outs[0][1] == outs[2][1],
              "--list prints the same from the project, the sweep's folder and elsewhere")
        failed = [r for r in rows if len(r) > 2 and r[2] == "failed"]
        absent = os.path.join(proj, "sweeps", "..", "data", "absent")
        check(len(failed) == 1 and absent in outs[2][0].stdout,
              "the missing relative dataset.root fails its own trial, named as %s: %s"
              % (absent, [r[-1][-200:] for r in failed]))
        ids = sorted(r[1] for r in rows if len(r) > 2 and r[2] != "failed")
        check(len(ids) == 4, "4 trials to run: %s" % ids)

        # 2. the job, from another directory, with run.dir from the file
        env = {"OMPI_MCA_mpi_yield_when_idle": "1", "SAFECL_PROGRESS_INTERVAL": "0"}
        p = run([a.mpiexec, "-np", "2", "--oversubscribe", safecl, "sweep", sweep], other, env)
        run_dir = os.path.join(proj, "run")
        check(p.returncode == 3, "the sweep exits 3: every trial ended, one failed (got %d)"
              % p.returncode)
        if p.returncode != 3:
            print(p.stdout[-3000:], p.stderr[-3000:])
        done = sorted(finished_trials(run_dir)) if os.path.isdir(run_dir) else []
        check(done == ids, "the run directory is the file's ../run, holding the 4 planned ids")
        check(not os.path.exists(os.path.join(other, "run")), "nothing written in the job's cwd")
        s = run([safecl, "status", run_dir], other)
        check(s.returncode == 0 and "1 failed" in s.stdout and "absent" in s.stdout,
              "status lists the failed trial with its message:\n" + s.stdout[-800:])
        import h5py
        stored = []
        for t in done:
            with h5py.File(os.path.join(run_dir, "trials", t, "trial.h5"), "r") as f:
                cfg = f.attrs.get("config")
                stored.append(cfg.decode() if isinstance(cfg, bytes) else str(cfg))
        weights = os.path.join(proj, "sweeps", "..", "weights", "tiny.safetensors")
        check(stored and all(weights in c for c in stored),
              "each trial's stored config holds the absolute weights path %s" % weights)
        shapes = os.path.join(proj, "sweeps", "..", "data", "shapes")
        check(sum(shapes in c for c in stored) == 2,
              "the folder trials read %s" % shapes)

        # 3. a dataset's own base files and methods; the recorded sweep.cfg reads back to the
        # same plan
        args = [run([safecl, "sweep", "--trial", str(i), sweep], other).stdout for i in range(4)]
        own = os.path.join(proj, "cfg", "backbone7.cfg")
        check([own in x for x in args] == [False, False, True, True],
              "the shapes entry's own base file is layered into its trials only")
        c1 = run([safecl, "sweep", "--count", sweep], other)
        c2 = run([safecl, "sweep", "--count", os.path.join(run_dir, "sweep.cfg")], other)
        check(c1.stdout.strip() == "5" and c2.stdout.strip() == "5",
              "--count 5 from the file and from the recorded sweep.cfg: %s / %s %s"
              % (c1.stdout.strip(), c2.stdout.strip(), c2.stderr[-400:]))
        l2 = run([safecl, "sweep", "--list", os.path.join(run_dir, "sweep.cfg")], other)
        ids2 = sorted(line.split()[1] for line in l2.stdout.splitlines()
                      if line.split()[3] != "failed")
        check(ids2 == ids, "the recorded sweep.cfg plans the same ids")

        # bad nesting is refused naming the file and line
        bad = os.path.join(proj, "sweeps", "bad.cfg")
        for body, needle in [
                ('methods = ( { file = "../cfg/simplecil.cfg"; methods = ["../cfg/ncm.cfg"]; } );',
                 "bad.cfg:2: unknown key 'methods' in an entry (file, overrides, grid, points)"),
                ('datasets = ( { file = "../cfg/synthetic.cfg"; methods = []; } );',
                 "bad.cfg:2: a dataset's methods list is empty"),
                ('datasets = ( { file = "../cfg/synthetic.cfg"; base = ["../cfg/none.cfg"]; } );',
                 "cannot read '../cfg/none.cfg' (%s/sweeps/../cfg/none.cfg)" % proj)]:
            with open(bad, "w") as f:
                f.write('sweep = {\n  %s\n};\n' % body)
            p = run([safecl, "sweep", "--count", bad], other)
            check(p.returncode == 1 and needle in p.stderr,
                  "refused: %s (%s)" % (needle, p.stderr.strip()[-300:]))

        # 4. identity: relative weights = the absolute path; a moved project
        absw = sweep.replace("paths.cfg", "abs.cfg")
        with open(absw, "w") as f:
            f.write(SWEEP.replace("../weights/tiny.safetensors", weights))
        _, rows_abs = listing(safecl, absw, other)
        check(sorted(r[1] for r in rows_abs) == sorted(r[1] for r in rows),
              "the ids equal those of the same sweep with the absolute weights path")
        moved = os.path.join(tmp, "moved")
        shutil.copytree(proj, moved, ignore=shutil.ignore_patterns("run"))
        _, rows_moved = listing(safecl, os.path.join(moved, "sweeps", "paths.cfg"), other)
        check(len(rows_moved) == 5 and not {r[1] for r in rows_moved} & {r[1] for r in rows},
              "moved, the relative weights path names another file: every id is new")
        _, rows_mabs = listing(safecl, os.path.join(moved, "sweeps", "abs.cfg"), other)
        ok_ids = lambda rs: {r[1] for r in rs if r[2] != "failed"}
        check(len(rows_mabs) == 5 and len(ok_ids(rows_abs)) == 4 and
              ok_ids(rows_mabs) == ok_ids(rows_abs),
              "moved with the weights named absolutely: the same ids (dataset.root is outside "
              "the identity)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish("test_sweep_paths")


if __name__ == "__main__":
    sys.exit(main())
