#!/usr/bin/python3
"""prompt_ref.py: L2P and DualPrompt, safecl against a PyTorch re-implementation written here from
docs/methods.md f-h, on a small random ViT over three sessions of two steps each.

prompt_driver trains through the method interface; this script starts from the driver's initial
parameters and repeats every step in float64 the way PILOT writes it: the query is the frozen
model's class token; keys and queries are normalised with the eps on the squared norm; top-k per
image; L2P votes the selection over the training batch; the logits of all classes are sliced to
the seen classes and the old ones set to -inf before the cross-entropy; the loss subtracts 0.1 x
the summed query-key similarity; torch.optim.Adam is created afresh every session; DualPrompt
trains slot t while t < M (slot t copied from t - 1 at the session start) and matches keys with a
batch vote from t = M on. At test time the honest network is checked against per-image selection
and the pilot_diag network against PILOT's batch vote over consecutive batches of the training
batch size and, for DualPrompt, the literal reshape of the selected (2, B, ...) E-prompts to
(B, 2, ...).

Checks: the ids selected at every step; every loss term (relative 1e-5: fp32 sums over a few
hundred terms through three blocks against float64); every trainable tensor after every session
(|d| <= steps x lr x 1e-3 + 1e-6 |p|: Adam's step moves an element by at most lr, and the
update's error is at most lr times the gradient's relative error, ~1e-4 in fp32); the test logits
of both networks (1e-4 of the largest); that old head rows (and DualPrompt's other E-slots) are
bit-identical across each session (docs/methods.md o.8); and that the honest network's logits
do not depend on the order and batch size (1, 7, 64) of the test images: argmaxes identical,
logits within 1e-5 of the largest (the engine runs each image alone; only the query forward's
GEMM blocking may change with the batch). Exits 1 on any failure."""
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

D, DEPTH, HEADS, S, P, MLP = 32, 3, 2, 32, 16, 64
T, C, B, K, NT, LR, PULL = 3, 6, 4, 2, 10, 0.01, 0.1
L2P = dict(M=4, Lp=2, k=2, G=0, E=0)
DP = dict(M=2, Lp=2, k=1, G=1, E=2)
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def pad16(n):
    return (n + 15) // 16 * 16


def layout(numels):
    """Offsets of prompt.h's flat array: W (C, D), b (C), then the method tensors."""
    head_b = pad16(C * D)
    at = head_b + pad16(C)
    offs = []
    for n in numels:
        offs.append(at)
        at += pad16(n)
    return head_b, offs, at


def setup(tmp):
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=DEPTH,
                                                        heads=HEADS, mlp_ratio=MLP / D), 0)
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
    g = np.random.RandomState(1)
    n = T * K * B
    images = g.rand(n, 3, S, S).astype(np.float32)
    test = g.rand(NT, 3, S, S).astype(np.float32)
    labels = np.zeros(n, np.int64)
    idx = g.permutation(n).astype(np.int64).reshape(T, K * B)
    for t in range(T):
        labels[idx[t]] = t * (C // T) + g.randint(0, C // T, size=K * B)
    images.tofile(os.path.join(tmp, "img.bin"))
    test.tofile(os.path.join(tmp, "timg.bin"))
    labels.tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    return vit.double().eval().requires_grad_(False), images, test, labels, idx.reshape(T, K, B)


def run_driver(args, tmp, method, h):
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [args.driver, "--method", method, "--width", str(D), "--depth", str(DEPTH),
           "--heads", str(HEADS), "--img", str(S), "--patch", str(P), "--mlp", str(MLP),
           "--weights", os.path.join(tmp, "w.safetensors"),
           "--images", os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"),
           "--batches", os.path.join(tmp, "idx.bin"),
           "--test-images", os.path.join(tmp, "timg.bin"), "--n-test", str(NT),
           "--sessions", str(T), "--classes", str(C), "--batch", str(B), "--steps", str(K),
           "--pool", str(h["M"]), "--length", str(h["Lp"]), "--topk", str(h["k"]),
           "--g-layers", str(h["G"]), "--e-layers", str(h["E"]), "--lr", str(LR), "--out", out]
    subprocess.run(cmd, check=True)
    rd = lambda name, dt: np.fromfile(os.path.join(out, name), dt)  # noqa: E731
    return (rd("params.bin", np.float32), rd("losses.bin", np.float64).reshape(-1, 3),
            rd("ids.bin", np.int64), rd("logits.bin", np.float32).reshape(T, 2, NT, C),
            rd("invariance.bin", np.float64).reshape(3, 2))


# ---- the model ------------------------------------------------------------------------------

def normalize(x):
    """PILOT's l2_normalize: x * rsqrt(max(sum x^2, 1e-12))."""
    return x * torch.rsqrt(torch.clamp(torch.sum(x * x, dim=-1, keepdim=True), min=1e-12))


def attention(attn, x, pk=None, pv=None):
    b, n, d = x.shape
    h = attn.heads
    qkv = attn.qkv(x).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    if pk is not None:
        k = torch.cat([pk.reshape(b, -1, h, d // h).transpose(1, 2), k], dim=2)
        v = torch.cat([pv.reshape(b, -1, h, d // h).transpose(1, 2), v], dim=2)
    a = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
    return attn.proj((a @ v).transpose(1, 2).reshape(b, n, d))


def run_blocks(vit, x, prefixes):
    for i, blk in enumerate(vit.blocks):
        pk, pv = prefixes.get(i, (None, None))
        x = x + attention(blk.attn, blk.norm1(x), pk, pv)
        x = x + blk.mlp(blk.norm2(x))
    return vit.norm(x)


def l2p_features(vit, x, tokens):
    """[CLS, tokens, patches], CLS and tokens with pos[0]; the mean of the token outputs."""
    pe = vit.patch_embed(x)
    b, nt = x.shape[0], tokens.shape[1]
    pos = vit.pos_embed
    cls = vit.cls_token.expand(b, -1, -1) + pos[:, :1]
    h = torch.cat([cls, tokens + pos[:, :1], pe + pos[:, 1:]], dim=1)
    return run_blocks(vit, h, {})[:, 1:1 + nt].mean(dim=1)


def cls_features(vit, x, prefixes):
    pe = vit.patch_embed(x)
    h = torch.cat([vit.cls_token.expand(x.shape[0], -1, -1), pe], dim=1) + vit.pos_embed
    return run_blocks(vit, h, prefixes)[:, 0]


def topk(s, k):
    """Per row the k largest, ties to the lower id."""
    s = s.detach().numpy()
    return np.stack([np.lexsort((np.arange(s.shape[1]), -r))[:k] for r in s])


def vote(ids, M, k):
    counts = np.bincount(ids.reshape(-1), minlength=M)
    sel = np.lexsort((np.arange(M), -counts))[:k]
    return np.broadcast_to(sel, ids.shape).copy()


def masked_ce(logits, y, k_old, k_seen):
    logits = logits[:, :k_seen].clone()
    logits[:, :k_old] = float("-inf")
    return F.cross_entropy(logits, y)


# ---- the methods ----------------------------------------------------------------------------

class Method:
    def __init__(self, name, h, init, vit):
        self.name, self.h, self.vit = name, h, vit
        Mn, Lp, G, E = h["M"], h["Lp"], h["G"], h["E"]
        shapes = ([(Mn, Lp, D), (Mn, D)] if name == "l2p" else
                  [(G, 2, Lp, D), (E, 2, Mn, Lp, D), (Mn, D)])
        self.head_b, self.offs, self.count = layout([int(np.prod(s)) for s in shapes])
        self.shapes = shapes
        t = lambda o, s: torch.from_numpy(  # noqa: E731
            init[o:o + int(np.prod(s))].astype(np.float64).reshape(s).copy()).requires_grad_(True)
        self.W = t(0, (C, D))
        self.b = t(self.head_b, (C,))
        self.tensors = [t(o, s) for o, s in zip(self.offs, shapes)]

    def flat(self):
        out = np.zeros(self.count)
        out[:C * D] = self.W.detach().numpy().reshape(-1)
        out[self.head_b:self.head_b + C] = self.b.detach().numpy()
        for o, x in zip(self.offs, self.tensors):
            out[o:o + x.numel()] = x.detach().numpy().reshape(-1)
        return out

    def keys(self):
        return self.tensors[-1]

    def select(self, x, train_t=None, batch_vote=False):
        with torch.no_grad():
            qn = normalize(self.vit(x))
        kn = normalize(self.keys())
        M, k = self.h["M"], self.h["k"]
        if self.name == "dualprompt" and train_t is not None and train_t < M:
            ids = np.full((x.shape[0], 1), train_t)
        else:
            ids = topk(qn @ kn.detach().T, k)
            if batch_vote:
                ids = vote(ids, M, k)
        return qn, kn, ids

    def features(self, x, ids, reshape=False):
        if self.name == "l2p":
            pool = self.tensors[0]
            return l2p_features(self.vit, x, pool[torch.from_numpy(ids)].reshape(
                x.shape[0], -1, D))
        g, e = self.tensors[0], self.tensors[1]
        b = x.shape[0]
        pre = {l: (g[l, 0].expand(b, -1, -1), g[l, 1].expand(b, -1, -1))
               for l in range(self.h["G"])}
        for j in range(self.h["E"]):
            raw = e[j][:, torch.from_numpy(ids[:, 0])]  # (2, B, Lp, D)
            if reshape:
                raw = raw.reshape(b, 2, self.h["Lp"], D).transpose(0, 1)  # PILOT's reshape
            pre[self.h["G"] + j] = (raw[0], raw[1])
        return cls_features(self.vit, x, pre)

    def step(self, opt, x, y, t, k_old, k_seen):
        qn, kn, ids = self.select(x, train_t=t, batch_vote=True)
        feat = self.features(x, ids)
        ce = masked_ce(feat @ self.W.T + self.b, y, k_old, k_seen)
        sim = (kn[torch.from_numpy(ids)] * qn.unsqueeze(1)).sum() / x.shape[0]
        loss = ce - PULL * sim
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss.item(), ce.item(), sim.item()]

    def logits(self, x, pilot):
        with torch.no_grad():
            _, _, ids = self.select(x, batch_vote=pilot)
            return (self.features(x, ids, reshape=pilot and self.name == "dualprompt")
                    @ self.W.T + self.b).numpy()


def compare(name, got, ref, atol, rtol):
    err = np.abs(np.asarray(got, np.float64) - ref)
    bound = atol + rtol * np.abs(ref).max()
    at = int(np.argmax(err))
    print("  %-40s max |d| %.3e (bound %.1e, at %d: safecl %.9g torch %.9g)" % (
        name, err.max(), bound, at, np.asarray(got).reshape(-1)[at], ref.reshape(-1)[at]))
    if not err.max() <= bound:
        fail("%s: max |d| %.3e > %.1e" % (name, err.max(), bound))
    return err.max()


def case(args, tmp, method, h, vit, images, test, labels, idx):
    print(method)
    params, losses, ids, logits, inv = run_driver(args, tmp, method, h)
    count = params.size // (1 + 2 * T)
    params = params.reshape(1 + 2 * T, count)
    ref = Method(method, h, params[0], vit)
    k = h["k"]
    ids = ids.reshape(T, K, B, k)
    rows, steps = [], 0
    tx = torch.from_numpy(test).double()
    for t in range(T):
        k_old, k_seen = t * C // T, (t + 1) * C // T
        if method == "dualprompt" and 1 <= t < h["M"]:
            with torch.no_grad():
                ref.tensors[1][:, :, t] = ref.tensors[1][:, :, t - 1]
        begin, end = params[1 + 2 * t], params[2 + 2 * t]
        opt = torch.optim.Adam([ref.W, ref.b] + ref.tensors, lr=LR)
        for s in range(K):
            x = torch.from_numpy(images[idx[t, s]]).double()
            y = torch.from_numpy(labels[idx[t, s]])
            _, _, want = ref.select(x, batch_vote=method == "l2p")
            if not np.array_equal(np.sort(ids[t, s], axis=1), np.sort(want, axis=1)):
                fail("%s session %d step %d: ids %s, torch %s" % (method, t, s,
                                                                   ids[t, s].tolist(),
                                                                   want.tolist()))
            rows.append(ref.step(opt, x, y, t, k_old, k_seen))
            steps += 1
        compare("session %d parameters" % (t + 1), end, ref.flat(), steps * LR * 1e-3, 1e-6)
        # o.8: old head rows (and the other E-slots) bit-identical across the session
        same = np.array_equal(begin[:k_old * D], end[:k_old * D]) and np.array_equal(
            begin[ref.head_b:ref.head_b + k_old], end[ref.head_b:ref.head_b + k_old])
        if method == "dualprompt" and t < h["M"]:
            o, shp = ref.offs[1], ref.shapes[1]
            eb = begin[o:o + int(np.prod(shp))].reshape(shp)
            ee = end[o:o + int(np.prod(shp))].reshape(shp)
            others = [m for m in range(h["M"]) if m != t]
            same = same and np.array_equal(eb[:, :, others], ee[:, :, others])
        print("  session %d: old head rows%s bit-identical: %s" % (
            t + 1, " and other E-slots" if method == "dualprompt" else "", same))
        if not same:
            fail("%s session %d moved frozen parameters" % (method, t + 1))
        if method == "dualprompt":  # the diagnostic is a different computation
            honest = ref.logits(tx[:B], False)
            if np.allclose(honest, ref.logits(tx[:B], True), rtol=0, atol=1e-6):
                fail("dualprompt session %d: pilot_diag logits equal the honest ones" % (t + 1))
        for n, pilot in ((0, False), (1, True)):
            want = np.concatenate([ref.logits(tx[i:i + B], pilot) for i in range(0, NT, B)]) \
                if pilot else ref.logits(tx, False)
            compare("session %d %s logits" % (t + 1, "pilot_diag" if pilot else "honest"),
                    logits[t, n], want, 0.0, 1e-4)
    rows = np.asarray(rows)
    rel = np.abs(losses - rows) / np.maximum(np.abs(rows), np.abs(rows[:, :1]))
    print("  losses: %d steps, worst rel %.2e" % (len(rows), rel.max()))
    if not rel.max() <= 1e-5:
        fail("%s losses: rel %.2e > 1e-5" % (method, rel.max()))
    for (worst, changed), chunk in zip(inv, (1, 7, 64)):
        scale = np.abs(logits[T - 1, 0]).max()
        print("  reversed test list in chunks of %2d: max |logit d| %.2e, %d argmaxes changed" % (
            chunk, worst, changed))
        if changed or not worst <= 1e-5 * scale:
            fail("%s: chunks of %d change the honest predictions (%.2e, %d)" % (
                method, chunk, worst, changed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, test, labels, idx = setup(tmp)
        case(args, tmp, "l2p", L2P, vit, images, test, labels, idx)
        case(args, tmp, "dualprompt", DP, vit, images, test, labels, idx)
    print("FAILED: %d" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
