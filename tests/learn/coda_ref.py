#!/usr/bin/python3
"""coda_ref.py: CODA-Prompt over three sessions, safecl against a PyTorch re-implementation
written here from docs/methods.md i (the released code's forward: query = the frozen model's class
token, alpha = normalize(q * A_k) . normalize(K_k), P = sum_k alpha_k P_k over the components
[0, f) with [0, s) detached, prefix keys P[:Lp/2] and values P[Lp/2:] prepended at blocks
[g, g + e), logits of the seen classes with the old ones set to -inf, CE, the orthogonality
penalty when mu > 0, Adam re-created per session, lr0 cos(99 pi e / (200 (E - 1)))).

coda_driver trains through the method interface on a small random ViT (3 blocks, prompts at
blocks 1-2, 12 components, batches of 20 images, so a step runs in two chunks). Each session
starts the float64 reference from safecl's own parameters after train_begin (the Gram-Schmidt
draws come from safecl's counter RNG), then replays the session's steps. Checks, per session:
  - the first step's gradient of every tensor (read from Adam's first moment) against autograd,
    |got - ref| <= 2e-5 max|ref| per tensor: the fp32 forward and backward through three blocks
    carries ~1e-7 relative rounding per operation, amplified by the few dozen sums of a block to
    ~1e-6 (measured worst 1.7e-6, printed), a 10x margin;
  - every step's loss within 1e-5 relative (the same rounding, through the later steps' slightly
    different parameters);
  - the parameters after the session within 2e-3 lr of the reference per step taken: an Adam
    update lr m / (sqrt(v) + eps) of an element whose gradient has relative error d moves by
    ~lr d, and d is ~1e-4 even for elements whose gradient is 100x below their tensor's largest;
  - the logits of the predict network (evaluation path, safecl's end-of-session parameters)
    within 1e-5 of max|logit|;
  - what must not move does not (bitwise): the head rows of old and future classes and the
    components outside [s, f) during the session; and Gram-Schmidt at the next session start
    keeps the trained rows and the head, draws rows [s, f) orthonormal and orthogonal to
    [0, s), leaves rows [f, M) zero.
Runs twice: released settings (init gs, mu 0) and the paper-time ones (init ortho, mu 1e4 times
the paper's 1e-6). Exits 1 on any failure."""
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
T, C, B, E, K = 3, 6, 20, 2, 2  # sessions, classes, batch (two chunks of <= 16), epochs, steps
M, LP, G, EL, LR = 12, 4, 1, 2, 0.01  # components, prompt length, first block, blocks, lr
N_EVAL = 5
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILURES.append(msg)


def setup(tmp):
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=DEPTH,
                                                        heads=HEADS, mlp_ratio=MLP / D), 0)
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
    g = np.random.RandomState(1)
    n = T * E * K * B
    images = g.rand(n, 3, S, S).astype(np.float32)
    labels = np.zeros(n, np.int64)
    idx = g.permutation(n).astype(np.int64).reshape(T, E * K * B)
    for t in range(T):  # session t's images carry its classes
        labels[idx[t]] = t * (C // T) + g.randint(0, C // T, size=E * K * B)
    images.tofile(os.path.join(tmp, "img.bin"))
    labels.tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    return vit.double(), images, labels, idx.reshape(T, E, K, B)


def prompted(vit, x, prefixes):
    """Class token after the final LayerNorm with per-image key/value prefixes at some blocks."""
    x = vit.patch_embed(x)
    x = torch.cat((vit.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + vit.pos_embed
    for i, blk in enumerate(vit.blocks):
        h = blk.norm1(x)
        b, n, d = h.shape
        hd = d // HEADS
        q, k, v = blk.attn.qkv(h).reshape(b, n, 3, HEADS, hd).permute(2, 0, 3, 1, 4).unbind(0)
        if i in prefixes:
            pk, pv = prefixes[i]
            k = torch.cat((pk.reshape(b, -1, HEADS, hd).transpose(1, 2), k), dim=2)
            v = torch.cat((pv.reshape(b, -1, HEADS, hd).transpose(1, 2), v), dim=2)
        a = (q @ k.transpose(-2, -1) * hd ** -0.5).softmax(dim=-1)
        x = x + blk.attn.proj((a @ v).transpose(1, 2).reshape(b, n, d))
        x = x + blk.mlp(blk.norm2(x))
    return vit.norm(x)[:, 0]


def detach_old(t, s, f):
    return torch.cat((t[:s].detach(), t[s:f]), dim=0)


def compose(q, Pl, Kl, Al, s, f):
    p, k, a = detach_old(Pl, s, f), detach_old(Kl, s, f), detach_old(Al, s, f)
    qa = F.normalize(q[:, None, :] * a[None, :, :], dim=2)
    alpha = torch.einsum("bkd,kd->bk", qa, F.normalize(k, dim=1))
    prompt = torch.einsum("bk,kld->bld", alpha, p)
    return prompt[:, :LP // 2], prompt[:, LP // 2:]


def unpack(flat, lay):
    hw, hb, op, ok, oa, _ = lay
    f = torch.tensor(flat, dtype=torch.float64)
    return {"W": f[hw:hw + C * D].reshape(C, D).clone().requires_grad_(),
            "b": f[hb:hb + C].clone().requires_grad_(),
            "P": f[op:op + EL * M * LP * D].reshape(EL, M, LP, D).clone().requires_grad_(),
            "K": f[ok:ok + EL * M * D].reshape(EL, M, D).clone().requires_grad_(),
            "A": f[oa:oa + EL * M * D].reshape(EL, M, D).clone().requires_grad_()}


def logits_of(vit, prm, x, f, s, train):
    with torch.no_grad():
        q = vit(x)
    prefixes = {}
    for l in range(EL):
        prefixes[G + l] = compose(q, prm["P"][l], prm["K"][l], prm["A"][l], s if train else f, f)
    return prompted(vit, x, prefixes) @ prm["W"].T + prm["b"]


def loss_of(vit, prm, x, y, lo, hi, s, f, penalty):
    logits = logits_of(vit, prm, x, f, s, True)[:, :hi].clone()
    logits[:, :lo] = float("-inf")
    ce = F.cross_entropy(logits, y)
    pen = torch.zeros((), dtype=torch.float64)
    if penalty > 0:
        for l in range(EL):
            for name in ("K", "A", "P"):
                X = detach_old(prm[name][l].reshape(M, -1), s, f)
                G_ = X @ X.T - torch.eye(f, dtype=torch.float64)
                pen = pen + penalty * (G_ ** 2).mean()
    return ce + pen, ce, pen


def lr_at(e):
    return LR if E == 1 else LR * np.cos(99 * np.pi * e / (200 * (E - 1)))


def compare(name, got, ref, rtol):
    ref = np.asarray(ref, np.float64)
    scale = max(np.abs(ref).max(), 1e-300)
    err = np.abs(np.asarray(got, np.float64) - ref).max() / scale
    print("  %-44s worst rel-to-max %.3e (tol %.0e)" % (name, err, rtol))
    if not err <= rtol:
        fail("%s: %.3e > %.0e" % (name, err, rtol))


def tensors(flat, lay):
    hw, hb, op, ok, oa, _ = lay
    return {"W": flat[hw:hw + C * D].reshape(C, D), "b": flat[hb:hb + C],
            "P": flat[op:op + EL * M * LP * D].reshape(EL, M, LP * D),
            "K": flat[ok:ok + EL * M * D].reshape(EL, M, D),
            "A": flat[oa:oa + EL * M * D].reshape(EL, M, D)}


def check_frozen(begin, end, lay, t, lo, hi, s, f):
    """o.8: what a session must leave bit-identical."""
    a, b = tensors(begin, lay), tensors(end, lay)
    same = lambda x, y: np.array_equal(x.view(np.uint32), y.view(np.uint32))  # noqa: E731
    check(same(a["W"][:lo], b["W"][:lo]) and same(a["b"][:lo], b["b"][:lo]) and
          same(a["W"][hi:], b["W"][hi:]) and same(a["b"][hi:], b["b"][hi:]),
          "session %d: head rows of old and future classes bit-identical" % t)
    check(all(same(a[n][:, :s], b[n][:, :s]) and same(a[n][:, f:], b[n][:, f:])
              for n in ("P", "K", "A")),
          "session %d: components outside [%d, %d) bit-identical" % (t, s, f))
    check(all(not same(a[n][:, s:f], b[n][:, s:f]) for n in ("P", "K", "A")) and
          not same(a["W"][lo:hi], b["W"][lo:hi]), "session %d: the training rows moved" % t)


def check_reinit(prev_end, begin, lay, t, s, f, init):
    a, b = tensors(prev_end, lay), tensors(begin, lay)
    same = lambda x, y: np.array_equal(x.view(np.uint32), y.view(np.uint32))  # noqa: E731
    if init == "ortho":
        check(np.array_equal(prev_end.view(np.uint32), begin.view(np.uint32)),
              "session %d (init ortho): nothing re-initialised" % t)
        return
    check(same(a["W"], b["W"]) and same(a["b"], b["b"]) and
          all(same(a[n][:, :s], b[n][:, :s]) for n in ("P", "K", "A")),
          "session %d start: the head and the trained components [0, %d) kept" % (t, s))
    worst = 0.0
    for n in ("P", "K", "A"):
        for l in range(EL):
            X = b[n][l].astype(np.float64)
            g = X[:f] @ X[s:f].T  # rows [0, f) against the new rows
            want = np.zeros_like(g)
            want[s:f] = np.eye(f - s)
            worst = max(worst, np.abs(g - want).max())
            check(not X[f:].any(), "session %d start: %s[%d] rows [%d, %d) zero" % (t, n, l, f, M))
    check(worst < 1e-5, "session %d start: rows [%d, %d) orthonormal and orthogonal to [0, %d) "
          "(worst %.1e)" % (t, s, f, s, worst))


def run_case(driver, tmp, vit, images, labels, idx, init, mu):
    out = os.path.join(tmp, "out_%s" % init)
    os.makedirs(out, exist_ok=True)
    cmd = [driver, "--width", str(D), "--depth", str(DEPTH), "--heads", str(HEADS), "--img", str(S),
           "--patch", str(P), "--mlp", str(MLP), "--weights", os.path.join(tmp, "w.safetensors"),
           "--images", os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"),
           "--batches", os.path.join(tmp, "idx.bin"), "--sessions", str(T), "--classes", str(C),
           "--batch", str(B), "--epochs", str(E), "--steps", str(K), "--pool", str(M),
           "--length", str(LP), "--g-layers", str(G), "--e-layers", str(EL), "--lr", str(LR),
           "--ortho", str(mu), "--init", init, "--eval", str(N_EVAL), "--out", out]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print(p.stderr)
        fail("coda_driver (%s) failed" % init)
        return
    rd = lambda name, dt=np.float32: np.fromfile(os.path.join(out, name), dt)  # noqa: E731
    lay = rd("layout.bin", np.int64)
    losses = rd("losses.bin", np.float64).reshape(T, E, K, 3)
    penalty = mu * (1e-6 if init == "ortho" else 1.0)
    pt = M // T
    x_all = torch.tensor(images, dtype=torch.float64)
    prev_end = None
    for t in range(T):
        print("%s, mu %g: session %d" % (init, mu, t))
        lo, hi, s, f = t * C // T, (t + 1) * C // T, t * pt, (t + 1) * pt
        begin, end = rd("begin_%d.bin" % t), rd("end_%d.bin" % t)
        if prev_end is not None:
            check_reinit(prev_end, begin, lay, t, s, f, init)
        check_frozen(begin, end, lay, t, lo, hi, s, f)
        prm = unpack(begin, lay)
        opt = torch.optim.Adam(list(prm.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=0)
        worst_loss = 0.0
        for e in range(E):
            for g in opt.param_groups:
                g["lr"] = lr_at(e)
            for k in range(K):
                bi = idx[t, e, k]
                total, ce, pen = loss_of(vit, prm, x_all[bi], torch.tensor(labels[bi]), lo, hi,
                                         s, f, penalty)
                opt.zero_grad()
                total.backward()
                got = losses[t, e, k]
                worst_loss = max(worst_loss, abs(got[0] - total.item()) / abs(total.item()))
                if penalty > 0:
                    worst_loss = max(worst_loss, abs(got[1] - ce.item()) / abs(ce.item()),
                                     abs(got[2] - pen.item()) / abs(pen.item()))
                if e == 0 and k == 0:
                    gc = tensors(rd("grad_%d.bin" % t), lay)
                    for name in ("W", "b", "P", "K", "A"):
                        ref = prm[name].grad.detach().numpy().reshape(gc[name].shape)
                        compare("first-step gradient %s" % name, gc[name], ref, 2e-5)
                opt.step()
        print("  %-44s worst rel %.3e (tol 1e-05)" % ("losses of %d steps" % (E * K), worst_loss))
        if not worst_loss <= 1e-5:
            fail("session %d losses: %.3e" % (t, worst_loss))
        ge = tensors(end, lay)
        worst = 0.0
        for name in ("W", "b", "P", "K", "A"):
            ref = prm[name].detach().numpy().reshape(ge[name].shape)
            worst = max(worst, np.abs(ge[name] - ref).max())
        bound = 2e-3 * LR * E * K
        print("  %-44s worst |d| %.3e (tol %.1e)" % ("parameters after the session", worst, bound))
        if not worst <= bound:
            fail("session %d parameters: %.3e > %.1e" % (t, worst, bound))
        with torch.no_grad():
            pe = unpack(end, lay)
            ref = logits_of(vit, pe, x_all[:N_EVAL], f, s, False).numpy()
        compare("predict-network logits", rd("logits_%d.bin" % t).reshape(N_EVAL, C), ref, 1e-5)
        prev_end = end


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, labels, idx = setup(tmp)
        run_case(a.driver, tmp, vit, images, labels, idx, "gs", 0.0)
        run_case(a.driver, tmp, vit, images, labels, idx, "ortho", 1e4)
    if FAILURES:
        print("coda_ref: %d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("coda_ref: all checks passed")


if __name__ == "__main__":
    main()
