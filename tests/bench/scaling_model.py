#!/usr/bin/env python3
"""scaling_model.py: predicted parallel efficiency of one data-parallel trial at G ranks.

The model prices the four kinds of work of a trial on a group of G ranks, one core each, from
rates measured on the development machine (defaults below, README "Data-parallel trials"), and
network constants that cannot be measured on one node (assumed, given on the command line):

  training step   B_global images; each rank forwards and backpropagates ceil(B/G) of them
                  (the slowest rank sets the pace; small shards cost more per image, measured
                  SHARD_FACTOR), then per pass one allgather of the B x D
                  features (the head and loss run on the gathered batch, replicated: O(B C D),
                  negligible) and one allreduce of the P trainable floats per step:
                  T_step(G) = ceil(B/G) * t_train + passes * T_allgather(G) + T_allreduce(G)
  feature passes  N images through the frozen / adapted networks, sharded evenly:
                  T = ceil(N/G) * t_infer + T_allgather of the predictions (small)
  ridge solve     eigendecomposition search + Cholesky solve of order M, per session and learner,
                  on ScaLAPACK: T = W_solve / (G * e_solve(G)), e_solve from the measured 2-rank
                  ScaLAPACK/LAPACK ratio, decaying as the local block count per rank shrinks
  collectives     Rabenseifner allreduce 2 log2(G) alpha + 2 (G-1)/G S / beta;
                  ring allgather (G-1) alpha + (G-1)/G S / beta

Efficiency E(G) = T(1) / (G * T(G)). The workload is SAFE on CIFAR-100 as released (10 sessions
of 5,000 training images, batch 48, 20 + 9 x 15 epochs, two learners, M = 10,000).
Usage: python3 tests/bench/scaling_model.py [--t-train S] [--t-infer S] [--alpha S] [--beta B/s]
"""
import argparse
import math


# Per-image training cost against the shard size, relative to 8+ images (measured, 1 core,
# ViT-B/16 + adapter, `safecl bench train --batch b --threads 1`: 0.536, 0.482, 0.459, 0.440 s).
SHARD_FACTOR = {1: 1.218, 2: 1.095, 3: 1.07, 4: 1.043, 5: 1.03, 6: 1.02, 7: 1.01}


def allreduce(g, nbytes, alpha, beta):
    return 0.0 if g == 1 else 2 * math.log2(g) * alpha + 2 * (g - 1) / g * nbytes / beta


def allgather(g, nbytes, alpha, beta):
    return 0.0 if g == 1 else (g - 1) * alpha + (g - 1) / g * nbytes / beta


def trial_seconds(g, a):
    B, D, P = a.batch, 768, a.pet_params
    n_train, sessions, n_test_avg = 5000, 10, 5500
    # SAFE session 1: slow learner, two training passes (CE, transfer loss) + one frozen forward;
    # later sessions: one training pass of the fast learner + one slow-learner forward
    steps = math.ceil(n_train / B)
    per_rank = math.ceil(B / g)
    t_train = a.t_train * SHARD_FACTOR.get(per_rank, 1.0)
    comm_1 = 3 * allgather(g, B * D * 4, a.alpha, a.beta) + allreduce(g, P * 4, a.alpha, a.beta)
    comm_l = 2 * allgather(g, B * D * 4, a.alpha, a.beta) + allreduce(g, P * 4, a.alpha, a.beta)
    step_1 = per_rank * (2 * t_train + a.t_infer) + comm_1
    step_l = per_rank * (t_train + a.t_infer) + comm_l
    train = steps * (a.epochs_first * step_1 + (sessions - 1) * a.epochs_later * step_l)
    # features: every session's training images and the test images seen so far, 2 networks
    imgs = sessions * 2 * (n_train + n_test_avg)
    features = math.ceil(imgs / g) * a.t_infer + sessions * 4 * allgather(g, 4 * 10000, a.alpha,
                                                                            a.beta)
    # ridge: per session and learner one search (eigendecomposition) and one solve at M
    blocks_per_rank = (a.m / 64) ** 2 / g
    e_solve = a.e_solve2 if g > 1 else 1.0
    if blocks_per_rank < 64:  # few blocks per rank: ScaLAPACK's panels starve
        e_solve *= blocks_per_rank / 64
    solve = sessions * 2 * a.w_solve / (g * e_solve)
    return train, features, solve


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t-train", type=float, default=0.450,
                    help="core-seconds per image of one training pass (measured: 3.60 s for 16 "
                         "images on 2 cores, ViT-B/16 + adapter)")
    ap.add_argument("--t-infer", type=float, default=0.216,
                    help="core-seconds per image of one frozen/adapted forward (9.25 img/s, 2 cores)")
    ap.add_argument("--w-solve", type=float, default=400.0,
                    help="core-seconds of one search + solve at M (measured 12.6 s on 2 cores at "
                         "M = 4000, scaled by M^3 to M = 10000)")
    ap.add_argument("--e-solve2", type=float, default=0.93,
                    help="ScaLAPACK efficiency against LAPACK at 2 ranks (measured 12.6 / 13.5)")
    ap.add_argument("--alpha", type=float, default=5e-6, help="network latency (s), assumed")
    ap.add_argument("--beta", type=float, default=10e9, help="network bandwidth (B/s), assumed")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--pet-params", type=int, default=1189632)
    ap.add_argument("--m", type=int, default=10000)
    ap.add_argument("--epochs-first", type=int, default=20)
    ap.add_argument("--epochs-later", type=int, default=15)
    a = ap.parse_args()
    t1 = sum(trial_seconds(1, a))
    print("SAFE on CIFAR-100 (released config), one trial: %.0f core-hours on 1 rank" % (t1 / 3600))
    print("| ranks | training | features | ridge | trial wall time | efficiency | "
          "training-step efficiency |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for g in (1, 2, 8, 16, 48, 64, 512):
        tr, fe, so = trial_seconds(g, a)
        tr1 = trial_seconds(1, a)[0]
        print("| %d | %.2f h | %.2f h | %.2f h | %.2f h | %.3f | %.3f |" % (
            g, tr / 3600, fe / 3600, so / 3600, (tr + fe + so) / 3600, t1 / (g * (tr + fe + so)),
            tr1 / (g * tr)))


if __name__ == "__main__":
    main()
