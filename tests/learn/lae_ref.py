#!/usr/bin/python3
"""lae_ref.py: LAE, safecl against a PyTorch re-implementation written here from docs/methods.md l,
on a small random ViT over three sessions of two epochs of two steps each.

lae_driver trains through the method interface; this script starts from the driver's initial
head and prefix, and every later session from safecl's state after the previous one (head and
both experts: an fp32 difference does not compound over sessions, and an online prefix that
safecl re-initialised would show), and repeats every step in float64: the prefix (tests/model/pet_ref.py with LAE's
options: after the class token, compensated, learnable scales) at blocks [0, layers); one linear
head over all classes, the logits sliced to the seen classes and the old ones set to -inf before
the cross-entropy; torch.optim.Adam created afresh every session over head and prefix, with
zero_grad(set_to_none=True), so that a prefix frozen for the session's first epochs (no gradient)
takes no Adam step and starts its own step count when it thaws; after every optimizer step the
offline expert <- decay x offline + (1 - decay) x online over every prefix tensor, the scales
included. Two cases: the authors' switches (offline expert born at session 2 as a copy of the
trained online one; no freezing in session 1; head N(0, 0.001^2)) and PILOT's (offline expert the
untrained prefix, EMA from the first step; freezing in every session; kaiming-uniform head). The
EMA decay is 0.9 here so that the offline expert moves visibly.

Checks, with bounds the reference accumulates along its own trajectory:
  - every trainable element after every session: |d| <= tol + 1e-6 |p|, where each Adam step
    adds lr x (1e-3 + min(2, 1e-5 max|g| / (sqrt(v_hat) + eps))) to the element's tol: an
    Adam update m_hat / (sqrt(v_hat) + eps) is off by about the gradient's error over
    sqrt(v_hat) + eps, and an fp32 gradient element is off by ~1e-6 of its tensor's largest
    (tests/nn's finite differences; 10x margin), which normalisation amplifies without limit
    where an element's own gradients are that small (at most 2 lr: a flipped sign); the 1e-3
    covers the gradient's relative error where it is not. The offline expert's tol is the EMA
    of the online one's.
  - every step's CE: |d| <= 1e-5 |L| (fp32 sums through three blocks against float64) + sum
    |dL/dp| tol over the trainable elements (the first-order effect of the parameters' own
    deviations);
  - the network count (one before the offline expert exists); both experts' test logits
    computed from safecl's own parameters (1e-4 of the largest); the ensemble's predictions
    (element-wise max of the two softmaxes) equal to the reference's on those logits wherever
    its top two differ by more than 1e-4; old head rows bit-identical across each session
    (docs/methods.md o.8).
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
import pet_ref  # noqa: E402
import vit_ref  # noqa: E402

D, DEPTH, HEADS, S, P, MLP = 32, 3, 2, 32, 16, 64
T, C, B, E, K, NT, LR = 3, 6, 4, 2, 2, 10, 0.01
LP, LAYERS, FREEZE, DECAY = 3, 2, 1, 0.9
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def pad16(n):
    return (n + 15) // 16 * 16


def setup(tmp):
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=DEPTH,
                                                        heads=HEADS, mlp_ratio=MLP / D), 0)
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
    g = np.random.RandomState(1)
    n = T * E * K * B
    images = g.rand(n, 3, S, S).astype(np.float32)
    test = g.rand(NT, 3, S, S).astype(np.float32)
    labels = np.zeros(n, np.int64)
    idx = np.zeros((T, E * K * B), np.int64)
    per = K * B  # images of a session, shuffled again every epoch
    for t in range(T):
        own = np.arange(t * per, (t + 1) * per)
        labels[own] = t * (C // T) + g.randint(0, C // T, size=per)
        idx[t] = np.concatenate([g.permutation(own) for _ in range(E)])
    images.tofile(os.path.join(tmp, "img.bin"))
    test.tofile(os.path.join(tmp, "timg.bin"))
    labels.tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    return vit, images, test, labels, idx.reshape(T, E, K, B)


def run_driver(args, tmp, case):
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [args.driver, "--width", str(D), "--depth", str(DEPTH), "--heads", str(HEADS),
           "--img", str(S), "--patch", str(P), "--mlp", str(MLP),
           "--weights", os.path.join(tmp, "w.safetensors"),
           "--images", os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"),
           "--batches", os.path.join(tmp, "idx.bin"),
           "--test-images", os.path.join(tmp, "timg.bin"), "--n-test", str(NT),
           "--sessions", str(T), "--classes", str(C), "--batch", str(B), "--epochs", str(E),
           "--steps", str(K), "--freeze", str(FREEZE), "--length", str(LP), "--layers",
           str(LAYERS), "--lr", str(LR), "--ema-decay", str(DECAY), "--ema-init", case,
           "--freeze-first", "1" if case == "pilot" else "0", "--head-init", case, "--out", out]
    subprocess.run(cmd, check=True)
    rd = lambda name, dt: np.fromfile(os.path.join(out, name), dt)  # noqa: E731
    tensors = []
    with open(os.path.join(out, "tensors.txt")) as f:
        for line in f:
            name, off, n = line.split()
            tensors.append((name, int(off), int(n)))
    return dict(tensors=tensors, head=rd("head.bin", np.float32).reshape(T + 1, -1),
                online=rd("online.bin", np.float32).reshape(T + 1, -1),
                offline=rd("offline.bin", np.float32).reshape(T + 1, -1),
                losses=rd("losses.bin", np.float64), nets=rd("nets.bin", np.int64),
                logits=rd("logits.bin", np.float32).reshape(T, 2, NT, C),
                preds=rd("preds.bin", np.int32).reshape(T, 3, NT))


def masked_ce(logits, y, k_old, k_seen):
    logits = logits[:, :k_seen].clone()
    logits[:, :k_old] = float("-inf")
    return F.cross_entropy(logits, y)


class Lae:
    def __init__(self, vit, c, case):
        self.case = case
        self.model = pet_ref.PetViT(vit, ["prefix"], prefix_len=LP,
                                    prefix_layers=list(range(LAYERS)), prefix_after_cls=True,
                                    prefix_compensate=True, prefix_scales=True).double()
        self.params = self.model.pet_parameters()
        self.layout = {name: (off, n) for name, off, n in c["tensors"]}
        with torch.no_grad():
            for name, p in self.params.items():
                off, n = self.layout[name]
                p.copy_(torch.from_numpy(c["online"][0, off:off + n].astype(np.float64))
                        .reshape(p.shape))
        self.count = c["online"].shape[1]
        self.head_b = pad16(C * D)
        h = c["head"][0].astype(np.float64)
        self.W = torch.from_numpy(h[:C * D].reshape(C, D).copy()).requires_grad_(True)
        self.b = torch.from_numpy(h[self.head_b:self.head_b + C].copy()).requires_grad_(True)
        self.offline = ({n: p.detach().clone() for n, p in self.params.items()}
                        if case == "pilot" else None)
        self.tol = {id(p): torch.zeros_like(p) for p in [self.W, self.b] + list(self.params.values())}
        self.offline_tol = ({n: torch.zeros_like(p) for n, p in self.params.items()}
                            if case == "pilot" else None)

    def load(self, c, t):
        """safecl's head and experts after session t (0: at create) into the model."""
        h = c["head"][t].astype(np.float64)
        on = {n: torch.from_numpy(c["online"][t, o:o + k].astype(np.float64)).reshape(
            self.params[n].shape) for n, (o, k) in self.layout.items()}
        off = {n: torch.from_numpy(c["offline"][t, o:o + k].astype(np.float64)).reshape(
            self.params[n].shape) for n, (o, k) in self.layout.items()}
        with torch.no_grad():
            self.W.copy_(torch.from_numpy(h[:C * D].reshape(C, D)))
            self.b.copy_(torch.from_numpy(h[self.head_b:self.head_b + C]))
            for n, p in self.params.items():
                p.copy_(on[n])
        return off

    def flat(self, tensors):
        out = np.zeros(self.count)
        for name, x in tensors.items():
            off, n = self.layout[name]
            out[off:off + n] = x.detach().numpy().reshape(-1)
        return out

    def head_flat(self, count):
        out = np.zeros(count)
        out[:C * D] = self.W.detach().numpy().reshape(-1)
        out[self.head_b:self.head_b + C] = self.b.detach().numpy()
        return out

    def logits(self, x, offline=None):
        """Logits of the online expert, or of the prefix values `offline` (name -> tensor)."""
        with torch.no_grad():
            if offline is not None:
                saved = {n: p.detach().clone() for n, p in self.params.items()}
                for n, p in self.params.items():
                    p.copy_(offline[n])
            out = (self.model(x) @ self.W.T + self.b).numpy()
            if offline is not None:
                for n, p in self.params.items():
                    p.copy_(saved[n])
        return out

    def grow_tol(self, opt, params):
        """After an Adam step: every stepped element's tol grows by the bound of that step."""
        for p in params:
            if p.grad is None:
                continue
            st = opt.state[p]
            step = float(st["step"])
            vhat = st["exp_avg_sq"] / (1.0 - 0.999 ** step)
            noise = 1e-5 * p.grad.abs().max() / (vhat.sqrt() + 1e-8)
            # an element whose gradient is exactly 0 (the head rows outside the session's
            # columns) is exactly 0 in fp32 too: its Adam update is exactly 0
            self.tol[id(p)] += LR * (1e-3 + torch.clamp(noise, max=2.0)) * (p.grad != 0)

    def session(self, t, images, labels, idx):
        k_old, k_seen = t * C // T, (t + 1) * C // T
        if self.offline is None and t > 0:
            self.offline = {n: p.detach().clone() for n, p in self.params.items()}
            self.offline_tol = {n: self.tol[id(p)].clone() for n, p in self.params.items()}
        pets = list(self.params.values())
        opt = torch.optim.Adam([self.W, self.b] + pets, lr=LR)
        losses, loss_tols = [], []
        for e in range(E):
            frozen = e < FREEZE and (t > 0 or self.case == "pilot")
            for p in pets:
                p.requires_grad_(not frozen)
            for k in range(K):
                x = torch.from_numpy(images[idx[t, e, k]]).double()
                y = torch.from_numpy(labels[idx[t, e, k]])
                ce = masked_ce(self.model(x) @ self.W.T + self.b, y, k_old, k_seen)
                opt.zero_grad(set_to_none=True)
                ce.backward()
                everything = [self.W, self.b] + pets
                loss_tols.append(1e-5 * abs(ce.item()) + sum(
                    float((p.grad.abs() * self.tol[id(p)]).sum())
                    for p in everything if p.grad is not None))
                opt.step()
                self.grow_tol(opt, everything)
                losses.append(ce.item())
                if self.offline is not None:
                    with torch.no_grad():
                        for n, p in self.params.items():
                            self.offline[n] = self.offline[n] * DECAY + p * (1.0 - DECAY)
                            self.offline_tol[n] = (self.offline_tol[n] * DECAY
                                                   + self.tol[id(p)] * (1.0 - DECAY))
        for p in pets:
            p.requires_grad_(True)
        return losses, loss_tols


def compare(name, got, ref, atol, rtol):
    err = np.abs(np.asarray(got, np.float64) - ref)
    bound = atol + rtol * np.abs(ref)
    ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1.0), np.where(err > 0, np.inf, 0))
    ok = bool(np.all(np.isfinite(got)) and np.all(err <= bound))
    print("  %s %-34s max|d| %.2e, worst |d| / tol %.3f" % ("ok  " if ok else "FAIL", name,
                                                            err.max(), ratio.max()))
    if not ok:
        fail(name)


def ensemble(on, off):
    def softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    p = softmax(on) if off is None else np.maximum(softmax(on), softmax(off))
    srt = np.sort(p, axis=1)
    return p.argmax(axis=1), srt[:, -1] - srt[:, -2]


def case(args, tmp, name, vit, images, test, labels, idx):
    print("case %s" % name)
    c = run_driver(args, tmp, name)
    ref = Lae(vit, c, name)
    tx = torch.from_numpy(test).double()
    rows, row_tols = [], []
    for t in range(T):
        if t > 0:  # each session from safecl's state after the previous one
            off = ref.load(c, t)
            if ref.offline is not None:
                ref.offline = off
                ref.offline_tol = {n: torch.zeros_like(x) for n, x in off.items()}
            for x in ref.tol.values():
                x.zero_()
        got, tols = ref.session(t, images, labels, idx)
        rows += got
        row_tols += tols
        k_old, k_seen = t * C // T, (t + 1) * C // T
        hcount = c["head"].shape[1]
        htol = np.zeros(hcount)
        htol[:C * D] = ref.tol[id(ref.W)].numpy().reshape(-1)
        htol[ref.head_b:ref.head_b + C] = ref.tol[id(ref.b)].numpy()
        compare("session %d head" % (t + 1), c["head"][t + 1], ref.head_flat(hcount), htol, 1e-6)
        ontol = ref.flat({n: ref.tol[id(p)] for n, p in ref.params.items()})
        compare("session %d online prefix" % (t + 1), c["online"][t + 1], ref.flat(ref.params),
                ontol, 1e-6)
        noisy = int(np.sum(ontol > 10 * E * K * LR * 1e-3))
        print("    largest tol: head %.2e, online %.2e (%d of %d prefix floats with a gradient at "
              "the fp32 noise floor)" % (htol.max(), ontol.max(), noisy, ontol.size))
        live = ref.offline is not None
        if live:
            compare("session %d offline prefix" % (t + 1), c["offline"][t + 1],
                    ref.flat(ref.offline), ref.flat(ref.offline_tol), 1e-6)
        want_nets = 2 if live else 1
        if c["nets"][t] != want_nets:
            fail("session %d: %d networks, expected %d" % (t + 1, c["nets"][t], want_nets))
        h0, h1 = c["head"][t], c["head"][t + 1]
        hb = ref.head_b
        same = (np.array_equal(h0[:k_old * D], h1[:k_old * D])
                and np.array_equal(h0[hb:hb + k_old], h1[hb:hb + k_old]))
        print("  session %d: old head rows bit-identical: %s" % (t + 1, same))
        if not same:
            fail("session %d moved old head rows" % (t + 1))
        theirs_off = ref.load(c, t + 1)  # the logits of safecl's own parameters
        on = ref.logits(tx)
        scale = np.abs(on).max()
        compare("session %d online logits" % (t + 1), c["logits"][t, 0], on, 1e-4 * scale, 0.0)
        off = ref.logits(tx, theirs_off) if live else None
        if live:
            compare("session %d offline logits" % (t + 1), c["logits"][t, 1], off,
                    1e-4 * scale, 0.0)
        # the predictors over the seen classes: ensemble, online, offline (online without one)
        pred, gap = ensemble(on[:, :k_seen], None if off is None else off[:, :k_seen])
        clear = gap > 1e-4
        bad = int(np.sum((c["preds"][t, 0] != pred) & clear))
        on_pred = on[:, :k_seen].argmax(axis=1)
        off_pred = (off if live else on)[:, :k_seen].argmax(axis=1)
        bad += int(np.sum(c["preds"][t, 1] != on_pred)) + int(np.sum(c["preds"][t, 2] != off_pred))
        print("  session %d: predictions differing from the reference: %d (%d of %d ensemble "
              "rows decided by more than 1e-4)" % (t + 1, bad, int(clear.sum()), NT))
        if bad:
            fail("session %d predictions" % (t + 1))
    rows, row_tols = np.asarray(rows), np.asarray(row_tols)
    d = np.abs(c["losses"] - rows)
    print("  losses: %d steps, worst |d| %.2e (rel %.2e), worst |d| / tol %.2f" % (
        len(rows), d.max(), (d / np.abs(rows)).max(), (d / row_tols).max()))
    if not np.all(d <= row_tols):
        fail("%s losses beyond their bound" % name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, test, labels, idx = setup(tmp)
        vit = vit.double().eval()
        for name in ("authors", "pilot"):
            case(args, tmp, name, vit, images, test, labels, idx)
    print("FAILED: %d" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
