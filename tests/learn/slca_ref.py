#!/usr/bin/python3
"""slca_ref.py: SLCA, safecl against a PyTorch re-implementation written here from
docs/methods.md k, on a small random ViT over two sessions of two classes.

slca_driver trains through the method interface; this script repeats everything in float64 the
way the reference code writes it: the whole ViT trains (the authors' fresh final LayerNorm,
gamma 1 and beta 0, replaces the file's); one nn.Linear head per session, logits = the heads'
outputs side by side; CE of logits[:, K_old:] against y - K_old; torch.optim.SGD created afresh
every session with two groups (backbone at lr x bcb_lrscale, the session's head at lr; momentum
0.9, weight decay 5e-4) and MultiStepLR([milestone], 0.1) stepped per epoch. The statistics of a
session's classes are torch.mean and torch.cov of the driver's features + 1e-4 I; the alignment
of session 2 is SGD (lr 0.01, momentum 0.9, weight decay 5e-4) over every head with
CosineAnnealingLR(T_max = CA epochs), fed the driver's samples in its shuffled order, K_seen
mini-batches per epoch, logits divided by the mean of the per-session norms (+ 1e-7) and by tau.

Checks and their bounds (u = 2^-24; every C value is a chain of float32 dot products of length
at most 3 x 17 x 64 = 3264 over two blocks, whose rounding of random sign is about sqrt(3264) u
= 3.4e-6 of the summed magnitudes, times a ratio of magnitudes to result of ~10: 1e-4):
  - the C backbone copy at create equals the file's weights with the final LayerNorm (1, 0), bit
    for bit, at the offsets the copy's tensor table names;
  - every step's CE: |d| <= 1e-4 |ref| (the features' relative error, above);
  - the change of every backbone tensor and of the heads over each session's training:
    max |d| <= 2e-3 max |ref change| + 4 x 2^-23 max |p| per tensor: 4 SGD steps, each update
    carrying the gradient's relative error (1e-4) plus the drift of the trajectory it accumulates
    (a few times 1e-4), and each float32 store of the parameter rounding by up to an ulp (which
    dominates for LayerNorm weights near 1 that move by 1e-5);
  - the network's features of the training and test images: |d| <= 1e-4 (1 + |ref|);
  - the statistics, recomputed here in float64 from the driver's own features: means and
    covariances within 2 u of the largest (the C code sums in double and rounds once); classes of
    earlier sessions bit-identical to their previous values;
  - the aligned heads, from the driver's raw heads and samples: the change over the alignment
    within 1e-3 of its largest (8 float32 steps on 8 x 32 GEMMs);
  - the logits of the aligned heads on the driver's test features within 1e-4 (1 + |ref|), and
    the predictions their argmax;
  - docs/methods.md o.6: the raw heads after the fit and the prediction are bit-identical to
    those at the end of training (the alignment works on a copy), the next session starts from
    them (old rows bit-identical after its training), session 1's aligned heads are its raw ones.
Exits 1 on any failure."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
import vit_ref  # noqa: E402

D, DEPTH, HEADS, S, P, MLP = 32, 2, 2, 32, 16, 64
T, C, B, E, K, NT = 2, 4, 4, 2, 2, 6
LR, BCB, MILESTONE, CA_EPOCHS, CA_N, TAU, WD = 0.05, 0.1, 1, 2, 8, 0.1, 5e-4
N = T * E * K * B // E  # each session's images appear once per epoch
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def check(name, got, ref, atol, rtol_max=None):
    """|got - ref| <= atol (array or scalar) or, with rtol_max, <= rtol_max * max|ref|."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    d = np.abs(got - ref)
    bound = atol if rtol_max is None else rtol_max * np.max(np.abs(ref)) + 1e-30
    ok = bool(np.all(d <= bound))
    print("  %-40s worst |d| %.3e  (max|ref| %.3e)%s" % (name, d.max(), np.abs(ref).max(),
                                                          "" if ok else "  FAIL"))
    if not ok:
        fail(name)


def setup(tmp):
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=DEPTH,
                                                        heads=HEADS, mlp_ratio=MLP / D), 0)
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
    g = np.random.RandomState(1)
    images = g.rand(N, 3, S, S).astype(np.float32)
    test = g.rand(NT, 3, S, S).astype(np.float32)
    per = N // T
    labels = np.concatenate([t * (C // T) + np.arange(per) % (C // T) for t in range(T)])
    idx = np.stack([np.stack([g.permutation(per) + t * per for _ in range(E)])
                    for t in range(T)]).astype(np.int64)  # (T, E, per) = (T, E, K * B)
    images.tofile(os.path.join(tmp, "img.bin"))
    test.tofile(os.path.join(tmp, "timg.bin"))
    labels.astype(np.int64).tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    return vit.double(), images, test, labels, idx.reshape(T, E, K, B)


def run_driver(args, tmp):
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [args.driver, "--width", str(D), "--depth", str(DEPTH), "--heads", str(HEADS),
           "--img", str(S), "--patch", str(P), "--mlp", str(MLP),
           "--weights", os.path.join(tmp, "w.safetensors"),
           "--images", os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"),
           "--batches", os.path.join(tmp, "idx.bin"),
           "--test-images", os.path.join(tmp, "timg.bin"), "--n-test", str(NT),
           "--n-images", str(N), "--sessions", str(T), "--classes", str(C), "--batch", str(B),
           "--epochs", str(E), "--steps", str(K), "--lr", str(LR), "--bcb-lrscale", str(BCB),
           "--milestone", str(MILESTONE), "--ca-epochs", str(CA_EPOCHS),
           "--ca-samples", str(CA_N), "--tau", str(TAU), "--out", out]
    subprocess.run(cmd, check=True)
    return out


class Out:
    def __init__(self, out):
        self.out = out
        self.tensors = []
        with open(os.path.join(out, "tensors.txt")) as f:
            for line in f:
                name, off, n = line.split()
                self.tensors.append((name, int(off), int(n)))
        last = self.tensors[-1]
        self.P = (last[1] + last[2] + 15) // 16 * 16
        self.H = (C * D + 15) // 16 * 16 + (C + 15) // 16 * 16
        self.hb = (C * D + 15) // 16 * 16

    def f32(self, name):
        return np.fromfile(os.path.join(self.out, name), np.float32)

    def split(self, flat):
        """backbone dict (timm names), W (C, D), b (C) of a [copy | heads] record."""
        bb = {n[len("backbone."):]: flat[o:o + k] for n, o, k in self.tensors}
        h = flat[self.P:self.P + self.H]
        return bb, h[:C * D].reshape(C, D), h[self.hb:self.hb + C]

    def heads(self, flat):
        return flat[:C * D].reshape(C, D), flat[self.hb:self.hb + C]


def lognorm_ce(z, y, bounds, tau):
    norms = torch.cat([torch.norm(z[:, a:b], p=2, dim=-1, keepdim=True) + 1e-7
                       for a, b in zip(bounds[:-1], bounds[1:])], dim=-1)
    return F.cross_entropy(z / norms.mean(dim=-1, keepdim=True) / tau, y)


def align(W, b, samples, perms, t, bounds):
    """The alignment of session t from heads W, b (numpy) on the driver's samples."""
    Ks = bounds[t + 1]
    heads = [(torch.tensor(W[a:c], dtype=torch.float64, requires_grad=True),
              torch.tensor(b[a:c], dtype=torch.float64, requires_grad=True))
             for a, c in zip(bounds[:t + 1], bounds[1:t + 2])]
    opt = torch.optim.SGD([p for h in heads for p in h], lr=0.01, momentum=0.9, weight_decay=WD)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=CA_EPOCHS)
    for e in range(CA_EPOCHS):
        x = torch.from_numpy(samples[e].astype(np.float64))[torch.from_numpy(perms[e])]
        y = torch.from_numpy(perms[e] // CA_N)
        for j in range(Ks):
            inp, tgt = x[j * CA_N:(j + 1) * CA_N], y[j * CA_N:(j + 1) * CA_N]
            z = torch.cat([inp @ w.T + bb for w, bb in heads], dim=1)[:, :Ks]
            loss = lognorm_ce(z, tgt, bounds[:t + 2], TAU)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    Wa, ba = W.astype(np.float64).copy(), b.astype(np.float64).copy()
    for (w, bb), a, c in zip(heads, bounds[:t + 1], bounds[1:t + 2]):
        Wa[a:c], ba[a:c] = w.detach().numpy(), bb.detach().numpy()
    return Wa, ba


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, test, labels, idx = setup(tmp)
        o = Out(run_driver(args, tmp))
        init = o.f32("init.bin")
        bb0, W0, b0 = o.split(init)
        sd = {k: v.detach().numpy().astype(np.float32) for k, v in vit.state_dict().items()}
        sd["norm.weight"], sd["norm.bias"] = np.ones(D, np.float32), np.zeros(D, np.float32)
        same = set(bb0) == set(sd) and all(np.array_equal(bb0[k], sd[k].reshape(-1)) for k in sd)
        print("  backbone copy at create = the file's weights, fresh final LayerNorm: %s" % same)
        if not same:
            fail("backbone copy at create")
        with torch.no_grad():
            for k, v in vit.named_parameters():
                v.copy_(torch.from_numpy(bb0[k].reshape(v.shape).astype(np.float64)))
        heads = [(torch.tensor(W0[t * 2:(t + 1) * 2].astype(np.float64), requires_grad=True),
                  torch.tensor(b0[t * 2:(t + 1) * 2].astype(np.float64), requires_grad=True))
                 for t in range(T)]
        losses_c = np.fromfile(os.path.join(o.out, "losses.bin"), np.float64)
        losses_r, bounds, prev_stats, prev_raw = [], [0], None, None
        x_all = torch.from_numpy(images.astype(np.float64))
        for t in range(T):
            lo, hi = t * C // T, (t + 1) * C // T
            bounds.append(hi)
            print("session %d" % (t + 1))
            start = {k: v.detach().clone() for k, v in vit.named_parameters()}
            hstart = [p.detach().clone() for p in heads[t]]
            opt = torch.optim.SGD([{"params": list(vit.parameters()), "lr": LR * BCB},
                                   {"params": list(heads[t]), "lr": LR}],
                                  lr=LR, momentum=0.9, weight_decay=WD)
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[MILESTONE], gamma=0.1)
            for e in range(E):
                for k in range(K):
                    bi = torch.from_numpy(idx[t, e, k])
                    feat = vit(x_all[bi])
                    z = torch.cat([feat @ w.T + b for w, b in heads[:t + 1]], dim=1)
                    loss = F.cross_entropy(z[:, lo:], torch.from_numpy(labels[idx[t, e, k]]) - lo)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses_r.append(loss.item())
                sched.step()
            n_steps = E * K
            check("CE of every step", losses_c[t * n_steps:(t + 1) * n_steps],
                  losses_r[t * n_steps:], 1e-4 * np.abs(losses_r[t * n_steps:]))
            trained = o.f32("s%d_trained.bin" % t)
            bbt, Wt, bt = o.split(trained)
            worst = (0.0, "")
            for name, v in vit.named_parameters():
                ref = (v.detach() - start[name]).numpy().reshape(-1)
                before = bb_prev(o, t, name)
                got = bbt[name].astype(np.float64) - before
                # each step's float32 store of p - lr d rounds by up to one ulp of |p|
                ulps = n_steps * 2.0 ** -23 * np.abs(before).max()
                r = max(np.abs(got - ref).max() - ulps, 0.0) / max(np.abs(ref).max(), 1e-30)
                worst = max(worst, (r, name))
                if r > 2e-3:
                    fail("session %d: change of %s, relative error %.3e" % (t + 1, name, r))
            print("  %-40s worst relative error %.3e beyond the ulps (%s)" % ("backbone changes",
                                                              worst[0], worst[1]))
            Wp, bp = o.heads(o.f32("init.bin")[o.P:]) if t == 0 else prev_raw
            check("head change (session rows)",
                  np.concatenate([(Wt[lo:hi] - Wp[lo:hi]).reshape(-1), bt[lo:hi] - bp[lo:hi]]),
                  np.concatenate([(heads[t][0].detach() - hstart[0]).numpy().reshape(-1),
                                  (heads[t][1].detach() - hstart[1]).numpy()]), 0, 2e-3)
            if t > 0:
                same = np.array_equal(Wt[:lo], prev_raw[0][:lo]) and \
                    np.array_equal(bt[:lo], prev_raw[1][:lo])
                print("  o.6: earlier heads bit-identical through the training: %s" % same)
                if not same:
                    fail("session %d: earlier heads moved in training" % (t + 1))
            sel = np.where((labels >= lo) & (labels < hi))[0]
            feat_c = o.f32("s%d_feat.bin" % t).reshape(len(sel), D).astype(np.float64)
            with torch.no_grad():
                feat_r = vit(x_all[torch.from_numpy(sel)]).numpy()
            check("features of the training images", feat_c, feat_r, 1e-4 * (1 + np.abs(feat_r)))
            st = o.f32("s%d_stats.bin" % t)
            mean_c, cov_c = st[:C * D].reshape(C, D), st[C * D:].reshape(C, D, D)
            for c in range(lo, hi):
                fc = torch.from_numpy(feat_c[labels[sel] == c])
                mu = fc.mean(dim=0).numpy()
                cov = (torch.cov(fc.T) + 1e-4 * torch.eye(D)).numpy()
                check("class %d mean" % c, mean_c[c], mu, 0, 2 ** -23)
                check("class %d covariance + 1e-4 I" % c, cov_c[c], cov, 0, 2 ** -23)
            if prev_stats is not None:
                same = np.array_equal(mean_c[:lo], prev_stats[0][:lo]) and \
                    np.array_equal(cov_c[:lo], prev_stats[1][:lo])
                print("  earlier classes' statistics bit-identical: %s" % same)
                if not same:
                    fail("session %d: earlier statistics changed" % (t + 1))
            prev_stats = (mean_c, cov_c)
            Wa_c, ba_c = o.heads(o.f32("s%d_aligned.bin" % t))
            raw = o.f32("s%d_raw_after.bin" % t)
            same = np.array_equal(raw, trained[o.P:])
            print("  o.6: raw heads after fit and prediction = after training: %s" % same)
            if not same:
                fail("session %d: the raw heads changed in fit or predict" % (t + 1))
            prev_raw = o.heads(raw)
            if t == 0:
                same = np.array_equal(o.f32("s0_aligned.bin"), raw)
                print("  session 1: aligned heads = raw heads: %s" % same)
                if not same:
                    fail("session 1 was aligned")
                Wa, ba = Wa_c.astype(np.float64), ba_c.astype(np.float64)
            else:
                Ks = hi
                samples = o.f32("s%d_samples.bin" % t).reshape(CA_EPOCHS, Ks * CA_N, D)
                perms = np.fromfile(os.path.join(o.out, "s%d_perm.bin" % t),
                                    np.int64).reshape(CA_EPOCHS, Ks * CA_N)
                Wa, ba = align(Wt, bt, samples, perms, t, bounds)
                check("aligned heads: change of W", Wa_c[:Ks] - Wt[:Ks], Wa[:Ks] - Wt[:Ks], 0,
                      1e-3)
                check("aligned heads: change of b", ba_c[:Ks] - bt[:Ks], ba[:Ks] - bt[:Ks], 0,
                      1e-3)
                moved = not np.array_equal(Wa_c[:Ks], Wt[:Ks])
                print("  the alignment moved the heads: %s" % moved)
                if not moved:
                    fail("session %d: the alignment did not move the heads" % (t + 1))
            tt = o.f32("s%d_test.bin" % t)
            tf_c = tt[:NT * D].reshape(NT, D).astype(np.float64)
            lg_c = tt[NT * D:].reshape(NT, hi)
            with torch.no_grad():
                tf_r = vit(torch.from_numpy(test.astype(np.float64))).numpy()
            check("features of the test images", tf_c, tf_r, 1e-4 * (1 + np.abs(tf_r)))
            lg_r = tf_c @ Wa[:hi].T + ba[:hi]
            check("aligned logits of the seen classes", lg_c, lg_r, 1e-4 * (1 + np.abs(lg_r)))
            pred = np.fromfile(os.path.join(o.out, "s%d_pred.bin" % t), np.int32)
            if not np.array_equal(pred, np.argmax(lg_c, axis=1)):
                fail("session %d: predictions are not the argmax of the aligned logits" % (t + 1))
            with torch.no_grad():  # the next session starts from the driver's raw heads
                for w, b_, a, c in ((heads[i][0], heads[i][1], i * 2, i * 2 + 2)
                                    for i in range(T)):
                    w.copy_(torch.from_numpy(prev_raw[0][a:c].astype(np.float64)))
                    b_.copy_(torch.from_numpy(prev_raw[1][a:c].astype(np.float64)))
            BB_PREV[0] = bbt
    if FAILURES:
        print("slca_ref: %d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("slca_ref: all checks passed")


BB_PREV = [None]


def bb_prev(o, t, name):
    """The driver's backbone tensor before session t's training."""
    if t == 0:
        return o.split(o.f32("init.bin"))[0][name].astype(np.float64)
    return BB_PREV[0][name].astype(np.float64)


if __name__ == "__main__":
    main()
