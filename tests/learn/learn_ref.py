#!/usr/bin/python3
"""PyTorch 1.13 parity of safecl's learn kernels, losses, optimizers and schedules.

Run with the system interpreter (it has torch 1.13 and numpy):
    /usr/bin/python3 learn_ref.py --driver build/tests/learn/learn_driver --workdir /tmp/learn

Every input is generated here from fixed numpy seeds (docs/conventions.md 14) and written in the record
format of learn_blob.h; learn_driver computes with the C library and writes its results back;
the same computation runs here in torch float32 on the CPU, written the way SAFE's released code
writes it (CosineLinear, F.cross_entropy, slow_cm, fast, torch.optim.SGD + CosineAnnealingLR).
Each tensor is compared as |c - torch| <= atol + rtol * max|torch|, over the whole tensor or, where
rows differ in scale by 1e12 (zero-row gradients), row by row. The worst element is printed; the
exit status is 1 if any comparison fails.

Cases: cosine head with a zero input row and a zero class row (+ its first SGD update), CE,
transfer loss (IN-A and CIFAR weights), L_cos (with a zero row), cross-classification (with the
zero new-class rows of a session start), SGD/Adam/AdamW with parameter groups, CosineAnnealingLR
over 30 epochs with T_max 20, and 5 SGD steps of a session-1-like and a fast-learner-like
model."""
import argparse
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

FAILURES = []
KERNEL_RTOL = 2e-5  # fp32 kernels: a few ulp of the largest element, with margin
TRAIN_RTOL = 1e-4   # the brief's bound for losses and parameters after 5 steps


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


# ---- record files (learn_blob.h) ------------------------------------------------------------

DTYPES = {0: np.float32, 1: np.float64, 2: np.int64}


def blob_write(path, tensors):
    with open(path, "wb") as f:
        f.write(b"SCLBLOB1")
        for name, a in tensors.items():
            a = np.asarray(a)
            code = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int64): 2}[a.dtype]
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<II", code, a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())


def blob_read(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"SCLBLOB1", path
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + n].decode()
        pos += n
        code, ndim = struct.unpack_from("<II", data, pos)
        pos += 8
        shape = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        dt = np.dtype(DTYPES[code]).newbyteorder("<")
        count = int(np.prod(shape))
        out[name] = np.frombuffer(data, dt, count, pos).reshape(shape)
        pos += count * dt.itemsize
    return out


def run(args, case, tensors):
    inp = os.path.join(args.workdir, case + ".in")
    outp = os.path.join(args.workdir, case + ".out")
    blob_write(inp, tensors)
    subprocess.run([args.driver, case, inp, outp], check=True)
    return blob_read(outp)


# ---- comparison -----------------------------------------------------------------------------

def compare(name, got, ref, rtol=KERNEL_RTOL, atol=0.0, per_row=False):
    """|got - ref| <= atol + rtol * max|ref| (per row of the 2-D view when per_row)."""
    ref = np.asarray(ref.detach().numpy() if torch.is_tensor(ref) else ref, np.float64)
    got = np.asarray(got, np.float64).reshape(ref.shape)
    if per_row:
        r2 = ref.reshape(ref.shape[0], -1)
        scale = np.broadcast_to(np.abs(r2).max(axis=1, keepdims=True), r2.shape).reshape(ref.shape)
    else:
        scale = np.full(ref.shape, np.abs(ref).max() if ref.size else 0.0)
    err = np.abs(got - ref)
    rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1), err)
    at = np.unravel_index(int(np.argmax(rel)), ref.shape) if ref.size else ()
    print("  %-40s worst rel-to-max %.3e  |d| %.3e  (at %s: got %.9g torch %.9g)%s" % (
        name, rel[at], err[at], tuple(int(i) for i in at), got[at], ref[at],
        "  [per row]" if per_row else ""))
    if not np.all(err <= atol + rtol * scale) or not np.all(np.isfinite(got)):
        fail("%s: worst rel-to-max %.3e > %.1e" % (name, rel[at], rtol))
    return float(rel[at])


def compare_scalar(name, got, ref, rtol=KERNEL_RTOL):
    got, ref = float(np.asarray(got).reshape(-1)[0]), float(ref)
    rel = abs(got - ref) / max(abs(ref), 1e-300)
    print("  %-40s got %.10g torch %.10g rel %.3e" % (name, got, ref, rel))
    if not rel <= rtol:
        fail("%s: rel %.3e > %.1e" % (name, rel, rtol))


# ---- torch pieces, as SAFE's code writes them -------------------------------------------------

def cosine_head(x, w, sigma):
    return sigma * F.linear(F.normalize(x, p=2, dim=1), F.normalize(w, p=2, dim=1))


def off_diagonal(x):
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def slow_cm(feat, ptm, ldiag, lrdn):
    fs = F.normalize(feat, p=2, dim=-1)
    with torch.no_grad():
        ft = F.normalize(ptm, p=2, dim=-1)
    c = torch.matmul(fs.T, ft)
    c.div_(fs.shape[0])
    on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
    off_diag = off_diagonal(c).pow_(2).sum()
    return ldiag * on_diag + lrdn * off_diag


def fast_losses(phi_f, phi_s, w_f, sigma_f, w_s, sigma_s, y, K):
    """SAFE's `fast`: L_cos (batch sum) and l1 + l2 of the cross-classification."""
    loss_f = torch.sum(1 - F.cosine_similarity(phi_f, phi_s, dim=-1))
    t = torch.cat([torch.arange(K), y])
    l1 = F.cross_entropy(cosine_head(torch.cat([w_s[:K], phi_s]), w_f, sigma_f), t)
    l2 = F.cross_entropy(cosine_head(torch.cat([w_f[:K], phi_f]), w_s, sigma_s), t)
    return loss_f, l1, l2


def f32(a):
    return np.asarray(a, np.float32)


def i64(a):
    return np.asarray(a, np.int64)


def param(a):
    return torch.tensor(f32(a), requires_grad=True)


# ---- kernel cases ---------------------------------------------------------------------------

def case_cosine(args):
    print("cosine head: zero input row 1, zero class row 2, CE backward, first SGD step")
    rs = np.random.RandomState(1)
    B, K, D = 6, 5, 16
    x = f32(rs.randn(B, D)); x[1] = 0
    w = f32(rs.uniform(-0.25, 0.25, (K, D))); w[2] = 0
    sigma = f32([10.0])
    y = i64([0, 2, 4, 1, 2, 3])
    hyper = [0.01, 0.9, 5e-4]
    out = run(args, "cosine", dict(x=x, w=w, sigma=sigma, y=y, dims=i64([B, K, D]),
                                   hyper=np.array(hyper)))
    xt, wt, st = param(x), param(w), param(sigma)
    logits = cosine_head(xt, wt, st)
    loss = F.cross_entropy(logits, torch.tensor(y))
    loss.backward()
    compare("logits", out["logits"], logits)
    compare_scalar("CE loss", out["loss"], loss.item())
    compare("dx (zero row ~1e12)", out["dx"], xt.grad, per_row=True)
    compare("dW (zero row ~1e12)", out["dw"], wt.grad, per_row=True)
    compare("dsigma", out["dsigma"], st.grad)
    print("    torch |dW| of the zero row: %.3e; of the others: %.3e" % (
        wt.grad[2].abs().max().item(), wt.grad[[0, 1, 3, 4]].abs().max().item()))
    opt = torch.optim.SGD([wt, st], lr=hyper[0], momentum=hyper[1], weight_decay=hyper[2])
    opt.step()
    compare("W after first SGD step", out["w_new"], wt, per_row=True)
    compare("sigma after first SGD step", out["sigma_new"], st)
    print("    zero row after the step: max |w| = %.3e (C %.3e)" % (
        wt[2].abs().max().item(), np.abs(out["w_new"].reshape(K, D)[2]).max()))


def case_ce(args):
    print("cross-entropy")
    rs = np.random.RandomState(2)
    B, K = 9, 7
    logits = f32(rs.randn(B, K) * 8); logits[3, 2] = 95.0
    y = i64(rs.randint(0, K, B))
    out = run(args, "ce", dict(logits=logits, y=y, dims=i64([B, K])))
    lt = param(logits)
    loss = F.cross_entropy(lt, torch.tensor(y))
    loss.backward()
    compare_scalar("CE loss", out["loss"], loss.item())
    compare("dlogits", out["dlogits"], lt.grad)


def case_transfer(args):
    rs = np.random.RandomState(3)
    B, D = 12, 48
    feat = f32(rs.randn(B, D) + 0.3)
    ptm = f32(rs.randn(B, D) * 2)
    for label, ld, lr in (("IN-A", 0.01, 10.0), ("CIFAR", 5e-10, 5e-9)):
        print("transfer loss, %s weights (%g, %g)" % (label, ld, lr))
        out = run(args, "transfer", dict(feat=feat, ptm=ptm, dims=i64([B, D]),
                                         hyper=np.array([ld, lr])))
        ft = param(feat)
        loss = slow_cm(ft, torch.tensor(ptm), ld, lr)
        loss.backward()
        compare_scalar("loss", out["loss"], loss.item())
        compare("dfeat", out["dfeat"], ft.grad)


def case_align(args):
    print("L_cos = sum(1 - cosine_similarity(f, s)), zero f row 2")
    rs = np.random.RandomState(4)
    B, D = 7, 24
    f = f32(rs.randn(B, D)); f[2] = 0
    s = f32(rs.randn(B, D) + 0.5 * f)
    out = run(args, "align", dict(f=f, s=s, dims=i64([B, D])))
    ft = param(f)
    loss = torch.sum(1 - F.cosine_similarity(ft, torch.tensor(s), dim=-1))
    loss.backward()
    compare_scalar("loss", out["loss"], loss.item())
    compare("df (zero row ~1e8)", out["df"], ft.grad, per_row=True)


def case_crossclass(args):
    print("cross-classification, K=4 old of Kt=7, new rows of both heads zero")
    rs = np.random.RandomState(5)
    K, Kt, B, D = 4, 7, 6, 20
    w_f = f32(rs.uniform(-0.2, 0.2, (Kt, D))); w_f[K:] = 0
    w_s = f32(rs.uniform(-0.2, 0.2, (Kt, D))); w_s[K:] = 0
    phi_f, phi_s = f32(rs.randn(B, D)), f32(rs.randn(B, D))
    y = i64(rs.randint(K, Kt, B))
    out = run(args, "crossclass", dict(w_fast=w_f, w_slow=w_s, sigma_fast=f32([10.5]),
                                       sigma_slow=f32([9.25]), phi_fast=phi_f, phi_slow=phi_s,
                                       y=y, dims=i64([K, Kt, B, D])))
    wft, sft, pft = param(w_f), param([10.5]), param(phi_f)
    wst, sst = param(w_s), param([9.25])  # the slow head gets gradients that are never used
    _, l1, l2 = fast_losses(pft, torch.tensor(phi_s), wft, sft, wst, sst, torch.tensor(y), K)
    (l1 + l2).backward()
    compare_scalar("l1 + l2", out["loss"], (l1 + l2).item())
    compare_scalar("l1", out["parts"][0], l1.item())
    compare_scalar("l2", out["parts"][1], l2.item())
    compare("dW_F (new rows ~1e12)", out["dw_fast"], wft.grad, per_row=True)
    compare("dsigma_F", out["dsigma_fast"], sft.grad)
    compare("dphi_F", out["dphi_fast"], pft.grad)


def case_optim(args):
    rs = np.random.RandomState(6)
    n, S = 40, 5
    p0 = f32(rs.randn(n))
    grads = f32(rs.randn(S, n))
    gi = i64([[0, 25], [25, 15]])  # two tensors, two groups
    gf = np.array([[1.0, 5e-4], [0.1, 0.02]])
    variants = (("SGD momentum, cosine lr", [0, 0.01, 0.9, 0.0, 0, 0, 0, 0, 20]),
                ("SGD dampening 0.1", [0, 0.01, 0.9, 0.1, 0, 0, 0, 0, 0]),
                ("SGD nesterov", [0, 0.01, 0.9, 0.0, 1, 0, 0, 0, 0]),
                ("Adam", [1, 1e-3, 0, 0, 0, 0.9, 0.999, 1e-8, 0]),
                ("AdamW, cosine lr", [2, 1e-3, 0, 0, 0, 0.9, 0.999, 1e-8, 20]))
    for label, hp in variants:
        print("optimizer: %s (groups lr x1 wd 5e-4, lr x0.1 wd 0.02)" % label)
        out = run(args, "optim", dict(p0=p0, grads=grads, gi=gi, gf=gf, dims=i64([n, S, 2]),
                                      hyper=np.array(hp, np.float64)))
        ts = [param(p0[:25]), param(p0[25:])]
        groups = [{"params": [ts[0]], "lr": hp[1] * gf[0, 0], "weight_decay": gf[0, 1]},
                  {"params": [ts[1]], "lr": hp[1] * gf[1, 0], "weight_decay": gf[1, 1]}]
        if hp[0] == 0:
            opt = torch.optim.SGD(groups, lr=hp[1], momentum=hp[2], dampening=hp[3],
                                  nesterov=bool(hp[4]))
        else:
            cls = torch.optim.Adam if hp[0] == 1 else torch.optim.AdamW
            opt = cls(groups, lr=hp[1], betas=(hp[5], hp[6]), eps=hp[7])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(hp[8])) if hp[8] else None
        worst = 0.0
        for s in range(S):
            ts[0].grad = torch.tensor(grads[s, :25])
            ts[1].grad = torch.tensor(grads[s, 25:])
            opt.step()
            if sched:
                sched.step()
            ref = torch.cat([ts[0], ts[1]]).detach()
            worst = max(worst, compare("params after step %d" % (s + 1), out["params"].reshape(S, n)[s], ref))
        print("    worst over the %d steps: %.3e" % (S, worst))


def case_sched(args):
    print("CosineAnnealingLR, T_max 20, base 0.01, eta_min 0, stepped once per epoch, 30 epochs")
    E = 30
    out = run(args, "sched", dict(hyper=np.array([0.01, 0.0, 20, E], np.float64)))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.0)
    ref = []
    for _ in range(E):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ref = np.array(ref)
    for name in ("closed", "recursive"):
        d = np.abs(out[name] - ref)
        print("  %-10s worst |d| over epochs 0-14: %.3e, 0-24: %.3e, 0-29: %.3e; bit-identical "
              "epochs: %d/%d" % (name, d[:15].max(), d[:25].max(), d.max(),
                                 int(np.sum(out[name] == ref)), E))
        if d.max() > 1e-12:
            fail("cosine schedule (%s) differs from torch by %.3e" % (name, d.max()))
    print("  torch lr at epochs 14, 20, 24: %.10g %.3g %.10g" % (ref[14], ref[20], ref[24]))


# ---- training cases ---------------------------------------------------------------------------

def train_setup(seed, N, Din, D, K_hi, K_lo=0):
    rs = np.random.RandomState(seed)
    centres = rs.randn(K_hi, Din) * 1.5
    y = i64(rs.randint(K_lo, K_hi, N))
    x = f32(centres[y] + rs.randn(N, Din))
    batches = i64(np.stack([rs.permutation(N)[:8] for _ in range(5)]))
    return rs, x, y, batches


def sgd_torch(params, hyper):
    opt = torch.optim.SGD(params, lr=hyper[0], momentum=hyper[1], weight_decay=hyper[2])
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(hyper[3]), eta_min=0.0)


def check_training(out, losses, tensors, names, shapes):
    for s, l in enumerate(losses):
        compare_scalar("loss at step %d" % (s + 1), out["losses"][s], l, TRAIN_RTOL)
    p, o = out["params"], 0
    for t, name, shape in zip(tensors, names, shapes):
        n = int(np.prod(shape))
        compare("%s after 5 steps" % name, p[o:o + n].reshape(shape), t, TRAIN_RTOL)
        if len(shape) == 2:
            compare("%s after 5 steps" % name, p[o:o + n].reshape(shape), t, TRAIN_RTOL,
                    per_row=True)
        o += n


def case_train_slow(args):
    print("5 SGD steps, session-1-like: CE + transfer loss (IN-A weights), momentum 0.9, "
          "wd 5e-4, lr 0.01, cosine T_max 20, one epoch per step")
    N, Din, D, K, B = 40, 12, 16, 5, 8
    rs, x, y, batches = train_setup(7, N, Din, D, K)
    A = f32(rs.randn(D, Din) / math.sqrt(Din))
    P = f32(rs.randn(D, Din) / math.sqrt(Din))
    W = f32(rs.uniform(-1 / math.sqrt(D), 1 / math.sqrt(D), (K, D)))
    hyper = [0.01, 0.9, 5e-4, 20, 0.01, 10.0]
    out = run(args, "train_slow", dict(x=x, y=y, A=A, W=W, sigma=f32([10.0]), P=P,
                                       batches=batches, dims=i64([N, Din, D, K, B, 5]),
                                       hyper=np.array(hyper)))
    At, Wt, st = param(A), param(W), param([10.0])
    opt, sched = sgd_torch([At, Wt, st], hyper)
    xt, yt, Pt = torch.tensor(x), torch.tensor(y), torch.tensor(P)
    losses = []
    for s in range(5):
        xb, yb = xt[batches[s]], yt[batches[s]]
        loss = F.cross_entropy(cosine_head(xb @ At.T, Wt, st), yb)
        loss = loss + slow_cm(xb @ At.T, xb @ Pt.T, hyper[4], hyper[5])  # second pass
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    check_training(out, losses, [At, Wt, st], ["A", "W", "sigma"], [(D, Din), (K, D), (1,)])


def case_train_fast(args):
    print("5 SGD steps, fast-learner-like: CE + 0.5 L_cos + 1 L_cc (CIFAR weights); W_F and W_S "
          "new rows start at zero (first step ~1e12 gradient)")
    N, Din, D, K, Kt, B = 40, 12, 16, 4, 7, 8
    rs, x, y, batches = train_setup(8, N, Din, D, Kt, K_lo=K)
    A_S = f32(rs.randn(D, Din) / math.sqrt(Din))
    A_F = f32(A_S + 0.05 * rs.randn(D, Din))  # F-PET starts from the trained S-PET
    W_F = f32(rs.uniform(-0.25, 0.25, (Kt, D))); W_F[K:] = 0
    W_S = f32(W_F + 0.02 * rs.randn(Kt, D)); W_S[K:] = 0
    hyper = [0.01, 0.9, 5e-4, 20, 0.5, 1.0]
    out = run(args, "train_fast", dict(
        x=x, y=y, A_F=A_F, A_S=A_S, W_F=W_F, W_S=W_S, sigma_F=f32([10.0]), sigma_S=f32([9.5]),
        batches=batches, dims=i64([N, Din, D, K, Kt, B, 5]), hyper=np.array(hyper)))
    At, Wt, st = param(A_F), param(W_F), param([10.0])
    Ws, ss = param(W_S), param([9.5])  # slow head: gradients computed, never stepped
    opt, sched = sgd_torch([At, Wt, st], hyper)
    xt, yt, As = torch.tensor(x), torch.tensor(y), torch.tensor(A_S)
    losses = []
    for s in range(5):
        xb, yb = xt[batches[s]], yt[batches[s]]
        phi_f = xb @ At.T
        with torch.no_grad():
            phi_s = xb @ As.T
        loss = F.cross_entropy(cosine_head(phi_f, Wt, st), yb)
        lf, l1, l2 = fast_losses(phi_f, phi_s, Wt, st, Ws, ss, yb, K)
        loss = loss + hyper[4] * lf + hyper[5] * (l1 + l2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if s == 0:
            print("    after step 1: torch max |W_F new rows| = %.3e" % Wt[K:].abs().max().item())
    check_training(out, losses, [At, Wt, st], ["A_F", "W_F", "sigma_F"], [(D, Din), (Kt, D), (1,)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default=None, help="run one case")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = [case_cosine, case_ce, case_transfer, case_align, case_crossclass, case_optim,
             case_sched, case_train_slow, case_train_fast]
    for c in cases:
        if args.only is None or c.__name__ == "case_" + args.only:
            c(args)
    if FAILURES:
        print("%d comparison(s) failed" % len(FAILURES))
        return 1
    print("all parity checks passed (torch %s)" % torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
