"""test_paper_sweep.py: configs/sweeps/paper.cfg, the full comparison, planned on a machine without
the datasets (run from an empty directory, so data/ and weights/ do not exist).

1. --count is 204: seven benchmarks x their methods (ten; eight on DomainNet, where EASE and SLCA
   refuse a domain-incremental benchmark) x seeds 1993, 1994, 1995.
2. --summary prints its key=value plan, every trial failed in planning (failed=204, to_run=0),
   and --list names each one's missing data path.
3. Each benchmark's trials layer its backbone (docs/methods.md a.1: IN21K for CIFAR-100 and
   OmniBenchmark, IN1K for the rest), its SAFE file, and RanPAC and APER with its PET.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orch_util import REPO, check, finish  # noqa: E402

PAPER = os.path.join(REPO, "configs", "sweeps", "paper.cfg")
# dataset -> (backbone file, PET of SAFE/APER/RanPAC, SAFE file)
EXPECT = {
    "cifar100": ("vit_b16_in21k", "adapter", "safe_cifar100"),
    "imagenet-r": ("vit_b16_in1k", "ssf", "safe_imagenet_r"),
    "imagenet-a": ("vit_b16_in1k", "ssf", "safe_imagenet_a"),
    "cub200": ("vit_b16_in1k", "adapter", "safe_cub200"),
    "omnibenchmark": ("vit_b16_in21k", "vpt_deep", "safe_omnibenchmark"),
    "vtab": ("vit_b16_in1k", "ssf", "safe_vtab"),
    "domainnet": ("vit_b16_in1k", "adapter", "safe_domainnet"),
}
METHODS = {"simplecil", "aper", "ranpac", "safe", "l2p", "dualprompt", "coda_prompt", "slca",
           "ease", "lae"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    a = ap.parse_args()
    safecl = os.path.abspath(a.safecl)
    with tempfile.TemporaryDirectory(prefix="safecl_paper_") as cwd:
        def sweep(*args):
            return subprocess.run([safecl, "sweep"] + list(args), cwd=cwd, capture_output=True,
                                  text=True, timeout=600)

        p = sweep("--count", PAPER)
        check(p.returncode == 0 and p.stdout.strip() == "204", "--count: %s %s"
              % (p.stdout.strip(), p.stderr[-300:]))
        p = sweep("--summary", PAPER)
        kv = dict(line.split("=", 1) for line in p.stdout.split())
        check(p.returncode == 0 and kv.get("trials") == "204" and kv.get("failed") == "204" and
              kv.get("to_run") == "0" and "expected_seconds" in kv,
              "--summary without the data: %s" % kv)
        p = sweep("--list", PAPER)
        rows = [line.split(None, 5) for line in p.stdout.splitlines()]
        pairs = {}
        for r in rows:
            ds, method = r[4].split("/")
            pairs.setdefault(ds, {}).setdefault(method, set()).add(r[5].split()[0])
        check(p.returncode == 0 and len(rows) == 204 and set(pairs) == set(EXPECT),
              "--list: 204 trials over the seven benchmarks: %s" % sorted(pairs))
        for ds, methods in pairs.items():
            want = METHODS - ({"ease", "slca"} if ds == "domainnet" else set())
            check(set(methods) == want and
                  all(s == {"seed=1993", "seed=1994", "seed=1995"} for s in methods.values()),
                  "%s: %d methods x seeds 1993-1995" % (ds, len(methods)))
        check(all(r[3] == "failed" and "error:" in r[5] and " data/" in r[5] for r in rows),
              "every trial fails in planning, naming its missing data/ path")
        for i, r in enumerate(rows):
            ds, method = r[4].split("/")
            if method not in ("safe", "ranpac", "aper") or r[5].split()[0] != "seed=1993":
                continue
            args = sweep("--trial", str(i), PAPER, "run.dir=" + cwd).stdout.splitlines()
            backbone, pet, safe = EXPECT[ds]
            files = [os.path.basename(x) for x in args if x.endswith(".cfg")]
            if method == "ranpac":
                has_pet = pet == "adapter" or "method.pet=" + pet in args
            elif method == "aper":
                has_pet = "aper_%s.cfg" % {"vpt_deep": "vpt"}.get(pet, pet) in files
            else:
                has_pet = safe + ".cfg" in files
            check(backbone + ".cfg" in files and has_pet,
                  "%s/%s: %s, %s" % (ds, method, backbone, pet))
    return finish("test_paper_sweep")


if __name__ == "__main__":
    sys.exit(main())
