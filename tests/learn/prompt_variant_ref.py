#!/usr/bin/python3
"""prompt_variant_ref.py: DualPrompt's and L2P's variants, safecl against a PyTorch
re-implementation written here from docs/methods.md g.1 and h.1, on a small random ViT over three
sessions of three steps each.

Three cases. "coda": method.dualprompt_variant = coda, the re-implementation in CODA-Prompt's code
(GT-RIPL/CODA-Prompt models/zoo.py:206-312, learners/prompt.py:31-50) written as that code does:
G-prompts of 3 prefix tokens at block 0, E-prompts of 4 at blocks 1-2, a key set per E-block;
the query and the keys normalised by F.normalize; training uses slot t of every E-block and adds
sum over images and E-blocks of (1 - cos(q, K_l[t])) to the mean CE over the session's classes;
no slot copy; at test every E-block picks its own top-1 slot per image; Adam under the CODA
schedule lr0 cos(99 pi e / (200 (E - 1))) (each step is an epoch here), created afresh every
session; a batch of 18 images, so the method's chunks of 16 rows are exercised. "pilot_lg":
the PILOT variant with G-prompts (3 tokens) shorter than the E-prompts (4), which ride the
trainer's shared prefixes: slot t copied from t - 1 at the session start, CE minus 0.1 x the
mean query-key similarity, constant learning rate, a key set shared by the E-blocks.
"plusplus": method.l2p_variant = plusplus, CODA's L2P++ (zoo.py:244-282, 321-339): a pool of 5
prompts of 4 tokens, each image's own top-2 (no vote) as prefixes at block 0 (first 2 tokens of
each selected prompt keys, last 2 values), the class token's feature, and the key loss written
literally as CODA's code has it, (1 - cos_sim[:, k_idx]).sum() with k_idx (B, 2), i.e. a
(B, B, 2) block, added to the mean CE; CODA's schedule.

Checks: every loss term (relative 1e-5: fp32 sums over a few hundred terms through three blocks
against float64); every trainable tensor after every session (|d| <= steps x lr x 1e-3 + 1e-6 of
the largest: Adam moves an element by at most lr per step and the update's error is at most lr
times the gradient's relative error, ~1e-4 in fp32); the test logits (1e-4 of the largest); that
old head rows and the E-slots of other sessions are bit-identical across each session; that the
test logits do not depend on the order and batch size (1, 7, 64) of the test images (argmaxes
identical, logits within 1e-5 of the largest); and that the coda variant refuses more sessions
than slots with a message naming method.prompt.pool, L2P++ an odd prompt length naming
method.prompt.length. For L2P++ the old head rows only are checked as frozen (which pool entries
a session trains depends on the selection). Exits 1 on any failure."""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prompt_ref  # noqa: E402
import vit_ref  # noqa: E402

D, DEPTH, HEADS, S, P, MLP = 32, 3, 2, 32, 16, 64
T, C, B, K, NT, LR = 3, 6, 18, 3, 10, 0.01
CASES = {
    "coda": dict(method="dualprompt", variant="coda", M=3, L=4, Lg=3, G=1, E=2, k=1, pull=0.1),
    "pilot_lg": dict(method="dualprompt", variant="pilot", M=3, L=4, Lg=3, G=1, E=2, k=1,
                     pull=0.1),
    "plusplus": dict(method="l2p", variant="plusplus", M=5, L=4, Lg=0, G=0, E=0, k=2, pull=0.1),
}
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


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


def driver_cmd(args, tmp, h, out, sessions=T):
    return [args.driver, "--method", h["method"], "--variant", h["variant"], "--topk", str(h["k"]),
            "--width", str(D), "--depth", str(DEPTH), "--heads", str(HEADS), "--img", str(S),
            "--patch", str(P), "--mlp", str(MLP), "--weights", os.path.join(tmp, "w.safetensors"),
            "--images", os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"),
            "--batches", os.path.join(tmp, "idx.bin"),
            "--test-images", os.path.join(tmp, "timg.bin"), "--n-test", str(NT),
            "--sessions", str(sessions), "--classes", str(C), "--batch", str(B),
            "--steps", str(K), "--pool", str(h["M"]), "--length", str(h["L"]),
            "--g-length", str(h["Lg"]), "--g-layers", str(h["G"]), "--e-layers", str(h["E"]),
            "--lr", str(LR), "--pull", str(h["pull"]), "--out", out]


def run_driver(args, tmp, h):
    out = tempfile.mkdtemp(dir=tmp)
    subprocess.run(driver_cmd(args, tmp, h, out), check=True)
    rd = lambda name, dt: np.fromfile(os.path.join(out, name), dt)  # noqa: E731
    return (rd("params.bin", np.float32), rd("losses.bin", np.float64).reshape(-1, 3),
            rd("logits.bin", np.float32).reshape(T, NT, C),
            rd("invariance.bin", np.float64).reshape(3, 2))


def layout(numels):
    """Offsets of prompt.h's flat array: W (C, D), b (C), then the method tensors, each padded to
    16 floats."""
    pad16 = lambda n: (n + 15) // 16 * 16  # noqa: E731
    head_b = pad16(C * D)
    at = head_b + pad16(C)
    offs = []
    for n in numels:
        offs.append(at)
        at += pad16(n)
    return head_b, offs, at


def coda_lr(e, E):
    """CODA's utils/schedulers.py CosineSchedule, per epoch e of E."""
    return LR if E <= 1 else LR * math.cos(99 * math.pi * e / (200 * (E - 1)))


class DualPrompt:
    """Flat layout of prompt.h: W (C, D), b (C), G (G, 2, Lg, D), E (E, 2, M, L, D), keys
    (NK, M, D); the coda variant has a key set per E-block (NK = E)."""

    def __init__(self, h, init, vit):
        self.h, self.vit, self.coda = h, vit, h["variant"] == "coda"
        nk = h["E"] if self.coda else 1
        self.shapes = [(h["G"], 2, h["Lg"], D), (h["E"], 2, h["M"], h["L"], D), (nk, h["M"], D)]
        self.head_b, self.offs, self.count = layout([int(np.prod(s)) for s in self.shapes])
        t = lambda o, s: torch.from_numpy(  # noqa: E731
            init[o:o + int(np.prod(s))].astype(np.float64).reshape(s).copy()).requires_grad_(True)
        self.W = t(0, (C, D))
        self.b = t(self.head_b, (C,))
        self.tensors = [t(o, s) for o, s in zip(self.offs, self.shapes)]

    def flat(self):
        out = np.zeros(self.count)
        out[:C * D] = self.W.detach().numpy().reshape(-1)
        out[self.head_b:self.head_b + C] = self.b.detach().numpy()
        for o, x in zip(self.offs, self.tensors):
            out[o:o + x.numel()] = x.detach().numpy().reshape(-1)
        return out

    def norm(self, x):
        # CODA's code: F.normalize (norm clamped at 1e-12); PILOT's: eps on the squared norm
        return F.normalize(x, dim=-1) if self.coda else prompt_ref.normalize(x)

    def query(self, x):
        with torch.no_grad():
            return self.norm(self.vit(x))

    def ids(self, qn, train_t):
        """(E, B) slot per E-block and image."""
        n, E = qn.shape[0], self.h["E"]
        if train_t is not None:
            return np.full((E, n), train_t)
        kn = self.norm(self.tensors[2]).detach()
        sets = [prompt_ref.topk(qn @ kn[s].T, 1)[:, 0] for s in range(kn.shape[0])]
        return np.stack([sets[j if self.coda else 0] for j in range(E)])

    def features(self, x, ids):
        g, e = self.tensors[0], self.tensors[1]
        n = x.shape[0]
        pre = {l: (g[l, 0].expand(n, -1, -1), g[l, 1].expand(n, -1, -1))
               for l in range(self.h["G"])}
        for j in range(self.h["E"]):
            raw = e[j][:, torch.from_numpy(ids[j])]  # (2, B, L, D)
            pre[self.h["G"] + j] = (raw[0], raw[1])
        return prompt_ref.cls_features(self.vit, x, pre)

    def step(self, opt, x, y, t, k_old, k_seen):
        qn = self.query(x)
        ids = self.ids(qn, t)
        feat = self.features(x, ids)
        ce = prompt_ref.masked_ce(feat @ self.W.T + self.b, y, k_old, k_seen)
        kn = self.norm(self.tensors[2])
        if self.coda:  # zoo.py:259-263, summed over E-blocks by vit.py:186-192
            key = sum((1.0 - qn @ kn[j, t]).sum() for j in range(self.h["E"]))
            loss = ce + key
        else:  # PILOT: minus pull x the mean similarity to the used key
            key = (qn @ kn[0, t]).sum() / x.shape[0]
            loss = ce - self.h["pull"] * key
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss.item(), ce.item(), key.item()]

    def logits(self, x):
        with torch.no_grad():
            return (self.features(x, self.ids(self.query(x), None)) @ self.W.T + self.b).numpy()


class L2PPlus:
    """Flat layout: W (C, D), b (C), pool (M, L, D), keys (M, D)."""

    def __init__(self, h, init, vit):
        self.h, self.vit, self.coda = h, vit, True
        self.shapes = [(h["M"], h["L"], D), (h["M"], D)]
        self.head_b, self.offs, self.count = layout([int(np.prod(s)) for s in self.shapes])
        t = lambda o, s: torch.from_numpy(  # noqa: E731
            init[o:o + int(np.prod(s))].astype(np.float64).reshape(s).copy()).requires_grad_(True)
        self.W = t(0, (C, D))
        self.b = t(self.head_b, (C,))
        self.tensors = [t(o, s) for o, s in zip(self.offs, self.shapes)]

    flat = DualPrompt.flat

    def select(self, x):
        with torch.no_grad():
            q = F.normalize(self.vit(x), dim=1)
        cos_sim = q @ F.normalize(self.tensors[1], dim=1).T
        return cos_sim, prompt_ref.topk(cos_sim, self.h["k"])

    def features(self, x, k_idx):
        P_ = self.tensors[0][torch.from_numpy(k_idx)]  # (B, k, L, D)
        i, n = self.h["L"] // 2, x.shape[0]
        pre = {0: (P_[:, :, :i, :].reshape(n, -1, D), P_[:, :, i:, :].reshape(n, -1, D))}
        return prompt_ref.cls_features(self.vit, x, pre)

    def step(self, opt, x, y, t, k_old, k_seen):
        cos_sim, k_idx = self.select(x)
        ce = prompt_ref.masked_ce(self.features(x, k_idx) @ self.W.T + self.b, y, k_old, k_seen)
        key = (1.0 - cos_sim[:, torch.from_numpy(k_idx)]).sum()  # (B, B, k), zoo.py:267
        loss = ce + key
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss.item(), ce.item(), key.item()]

    def logits(self, x):
        with torch.no_grad():
            return (self.features(x, self.select(x)[1]) @ self.W.T + self.b).numpy()


def case(args, tmp, name, h, vit, images, test, labels, idx):
    print(name)
    params, losses, logits, inv = run_driver(args, tmp, h)
    count = params.size // (1 + 2 * T)
    params = params.reshape(1 + 2 * T, count)
    l2p = h["method"] == "l2p"
    ref = (L2PPlus if l2p else DualPrompt)(h, params[0], vit)
    if ref.count != count:
        fail("%s: flat array of %d floats, the layout rule gives %d" % (name, count, ref.count))
        return
    rows, steps, mixed_total = [], 0, 0
    tx = torch.from_numpy(test).double()
    for t in range(T):
        k_old, k_seen = t * C // T, (t + 1) * C // T
        if not ref.coda and 1 <= t < h["M"]:
            with torch.no_grad():
                ref.tensors[1][:, :, t] = ref.tensors[1][:, :, t - 1]
        begin, end = params[1 + 2 * t], params[2 + 2 * t]
        # the session start: nothing moves but (pilot) slot t, a bit-exact copy of slot t - 1
        o, shp = ref.offs[1], ref.shapes[1]
        prev = params[2 * t].copy()
        if not ref.coda and t >= 1 and not l2p:
            pe = prev[o:o + int(np.prod(shp))].reshape(shp)
            pe[:, :, t] = pe[:, :, t - 1]
        if not np.array_equal(begin, prev):
            fail("%s session %d: train_begin changed more than %s" % (
                name, t + 1, "nothing" if ref.coda else "the copy of slot t - 1 into slot t"))
        opt = torch.optim.Adam([ref.W, ref.b] + ref.tensors, lr=LR)
        for s in range(K):
            if ref.coda:
                for grp in opt.param_groups:
                    grp["lr"] = coda_lr(s, K)
            x = torch.from_numpy(images[idx[t, s]]).double()
            y = torch.from_numpy(labels[idx[t, s]])
            rows.append(ref.step(opt, x, y, t, k_old, k_seen))
            steps += 1
        compare("session %d parameters" % (t + 1), end, ref.flat(), steps * LR * 1e-3, 1e-6)
        eb = begin[o:o + int(np.prod(shp))].reshape(shp)
        ee = end[o:o + int(np.prod(shp))].reshape(shp)
        others = [m for m in range(h["M"]) if m != t]
        same = (np.array_equal(begin[:k_old * D], end[:k_old * D])
                and np.array_equal(begin[ref.head_b:ref.head_b + k_old],
                                   end[ref.head_b:ref.head_b + k_old])
                and (l2p or np.array_equal(eb[:, :, others], ee[:, :, others])))
        print("  session %d: old head rows%s bit-identical: %s" % (
            t + 1, "" if l2p else " and other E-slots", same))
        if not same:
            fail("%s session %d moved frozen parameters" % (name, t + 1))
        compare("session %d test logits" % (t + 1), logits[t], ref.logits(tx), 0.0, 1e-4)
        if not l2p:
            picks = ref.ids(ref.query(tx), None)
            mixed = int((picks != picks[:1]).any(axis=0).sum())
            print("  session %d: test images whose E-blocks pick different slots: %d of %d" % (
                t + 1, mixed, NT))
            mixed_total += mixed
    if ref.coda and not l2p and mixed_total == 0:  # the per-block selection must be exercised
        fail("coda: no test image picked different slots in different E-blocks")
    rows = np.asarray(rows)
    rel = np.abs(losses - rows) / np.maximum(np.abs(rows), np.abs(rows[:, :1]))
    print("  losses: %d steps, worst rel %.2e" % (len(rows), rel.max()))
    if not rel.max() <= 1e-5:
        fail("%s losses: rel %.2e > 1e-5" % (name, rel.max()))
    for (worst, changed), chunk in zip(inv, (1, 7, 64)):
        scale = np.abs(logits[T - 1]).max()
        print("  reversed test list in chunks of %2d: max |logit d| %.2e, %d argmaxes changed" % (
            chunk, worst, changed))
        if changed or not worst <= 1e-5 * scale:
            fail("%s: chunks of %d change the test predictions (%.2e, %d)" % (
                name, chunk, worst, changed))


def compare(name, got, ref, atol, rtol):
    err = np.abs(np.asarray(got, np.float64) - ref)
    bound = atol + rtol * np.abs(ref).max()
    at = int(np.argmax(err))
    print("  %-40s max |d| %.3e (bound %.1e, at %d: safecl %.9g torch %.9g)" % (
        name, err.max(), bound, at, np.asarray(got).reshape(-1)[at], ref.reshape(-1)[at]))
    if not err.max() <= bound:
        fail("%s: max |d| %.3e > %.1e" % (name, err.max(), bound))


def refusal(args, tmp, what, h, key, sessions=T):
    out = tempfile.mkdtemp(dir=tmp)
    r = subprocess.run(driver_cmd(args, tmp, h, out, sessions=sessions), capture_output=True,
                       text=True)
    ok = r.returncode == 3 and key in r.stderr
    print("%s: exit %d, %s" % (what, r.returncode, r.stderr.strip().splitlines()[-1:]))
    if not ok:
        fail("%s: not refused with a message naming %s" % (what, key))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, test, labels, idx = setup(tmp)
        for name, h in CASES.items():
            case(args, tmp, name, h, vit, images, test, labels, idx)
        # the coda variant trains slot t in session t; L2P++ halves a prompt into keys and values
        refusal(args, tmp, "coda variant, 4 sessions and 3 slots", CASES["coda"],
                "method.prompt.pool", sessions=CASES["coda"]["M"] + 1)
        refusal(args, tmp, "L2P++ with prompts of 3 tokens", dict(CASES["plusplus"], L=3),
                "method.prompt.length")
    print(("FAILED: %d" % len(FAILURES)) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
