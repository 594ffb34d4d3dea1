#!/usr/bin/python3
"""test_prompt_variant_ranks.py: the chunked steps of DualPrompt's coda variant and of L2P++ on one
rank and on a group of two (`safecl bench train`, ViT-Tiny, the shipped CIFAR configs, a batch of
18: chunks of 16 + 2 on one rank, 9 on each of two): the loss after two steps agrees.

Each rank sums its rows' gradients (head included) and its share of the key loss, and the group
sums both; L2P++'s key loss couples every query with every image's selection, so each rank needs
the global selection counts. A missing or doubled sum over the group changes the second step's
loss at order 1 (the key loss dominates it). The bound: the two runs add the same fp32 gradient
terms in another order (relative differences ~1e-6), and after one Adam step (each element moved
by at most lr = 0.001) the loss differs by far less than 1e-3 of itself. Exits 1 on failure."""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {"dualprompt": "dualprompt_coda.cfg", "l2p": "l2p_plusplus.cfg"}


def loss(args, method, ranks):
    cmd = [args.mpiexec, "-n", str(ranks), "--oversubscribe", args.safecl, "bench", "train",
           "--arch", "vit_tiny_patch16_224", "--method", method, "--config",
           os.path.join(HERE, "..", "..", "configs", "methods", CONFIGS[method]),
           "--batch", "18", "--iters", "2", "--warmup", "0", "--threads", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"ranks=%d .*loss=([0-9.]+)" % ranks, p.stdout + p.stderr)
    if p.returncode or not m:
        print(p.stdout + p.stderr)
        return None
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--mpiexec", required=True)
    args = ap.parse_args()
    bad = 0
    for method in CONFIGS:
        one, two = loss(args, method, 1), loss(args, method, 2)
        ok = one is not None and two is not None and abs(one - two) <= 1e-3 * abs(one)
        print("%s %s: loss %s on 1 rank, %s on 2" % ("ok  " if ok else "FAIL", CONFIGS[method],
                                                     one, two))
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
