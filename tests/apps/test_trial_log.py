#!/usr/bin/env python3
"""test_trial_log.py: what `safecl train`'s log says about the sessions.

1. The start line says what the session layout means: "4 sessions of 2 classes each (B0 Inc2),
   8 classes in all" for equal sessions, "a first of 4 classes, then 2 per session (B4 Inc2)"
   for a larger first one, and "one per domain (...)" for DomainNet.
2. A DomainNet session's line names its domain: "session 2/3 (domain: sketch)".
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_trial import check, failures, make_domainnet  # noqa: E402

TINY = ["backbone.arch=vit_tiny_patch16_224", "eval.batch=8", "method.name=simplecil",
        "threads=1"]


def train(safecl, args):
    p = subprocess.run([safecl, "train"] + TINY + args, capture_output=True, text=True,
                       timeout=600)
    check(p.returncode == 0, "safecl train %s exits 0 (%s)" % (args[-1], p.stderr[-300:]))
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    safecl = ap.parse_args().safecl
    with tempfile.TemporaryDirectory(prefix="trial_log_") as tmp:
        synthetic = ["dataset.format=synthetic", "dataset.synthetic.classes=8",
                     "dataset.synthetic.train_per_class=2", "dataset.synthetic.test_per_class=1"]
        log = train(safecl, synthetic + ["dataset.init_cls=2", "dataset.increment=2",
                                         "run.dir=" + os.path.join(tmp, "b0")])
        check(re.search(r"4 sessions of 2 classes each \(B0 Inc2\), 8 classes in all", log),
              "equal sessions: '4 sessions of 2 classes each (B0 Inc2), 8 classes in all'")
        check("sessions of 8 classes" not in log, "no 'sessions of <all classes>'")
        log = train(safecl, synthetic + ["dataset.init_cls=4", "dataset.increment=3",
                                         "run.dir=" + os.path.join(tmp, "b4")])
        check("3 sessions: a first of 4 classes, then 3 per session (B4 Inc3), 1 in the last, "
              "8 classes in all" in log, "a larger first session and a short last one named")
        check(re.search(r"session 2/3: classes \[4, 7\)", log), "class sessions name their classes")

        root = os.path.join(tmp, "DomainNet")
        domains = ["real", "sketch", "clipart"]
        make_domainnet(root, np.random.default_rng(3), domains, classes=2, per=2)
        log = train(safecl, ["dataset.format=domainnet", "dataset.root=" + root,
                             "dataset.domains=" + ",".join(domains), "dataset.classes=2",
                             "dataset.shuffle=false", "dataset.resize=224",
                             "run.dir=" + os.path.join(tmp, "dil")])
        check("3 sessions, one per domain (real,sketch,clipart), each with all 2 classes" in log,
              "DomainNet: the start line names the domains")
        for t, d in enumerate(domains):
            check(re.search(r"session %d/3 \(domain: %s\): " % (t + 1, d), log),
                  "DomainNet: session %d's line names its domain %s" % (t + 1, d))
    if failures:
        print("test_trial_log: %d failure(s):\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("test_trial_log: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
