#!/usr/bin/python3
"""safe_ref.py: SAFE over three sessions and RanPAC's phase 1, safecl against a PyTorch
re-implementation written here from docs/methods.md (b.5, c.1-c.3, e), with the released
semantics: both heads' sigma back to 10 at the random-projection setup, the fast head entering
session 2 at 10 with its trained rows; two training forwards of the fast learner per step (CE on
dropout pass 0; alignment and the slow head's cross-classification term on pass 1); RanPAC's
and APER's cosine head starting at sigma = 1 (read from configs/methods).

safe_driver trains through the method interface on a small random ViT with an adapter; this
script feeds the same images, batches, initial PET and head values and the driver's own dropout
masks to the float64 reference (tests/model/pet_ref.py). Checks: every loss term of every step
within 1e-5 of the step's loss (relative; the alignment term, a sum of 1 - cos of nearly
equal features, is at the rounding level of the total, so its tolerance is 1e-5 of the total), the head sigmas at every session start and end (exact where they are a
reset), and that each switch changes only what it claims: session 1 is bitwise the same whatever
the switches, and without dropout one and two fast forwards give bitwise the same numbers.
Exits 1 on any failure."""
import argparse
import copy
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
sys.path.insert(0, HERE)
import pet_ref  # noqa: E402
import vit_ref  # noqa: E402
from learn_ref import cosine_head, fast_losses, slow_cm  # noqa: E402

D, DEPTH, HEADS, S, P, MLP = 32, 2, 2, 32, 16, 128
T, C, B, E, K = 3, 6, 4, 2, 2  # sessions, classes, batch, epochs, steps per epoch
R, TOKENS, SCALE, DROPOUT = 8, (S // P) ** 2 + 1, 1.0, 0.5  # a large adapter, visible masks
LR, MOM, WD, TMAX = 0.05, 0.9, 5e-4, E + 1
LDIAG, LRDN, DISF, CC = 0.01, 10.0, 0.5, 1.0
RTOL = 1e-5
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def read_safetensors(path):
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: np.frombuffer(data[h["data_offsets"][0]:h["data_offsets"][1]], "<f4").reshape(
        h["shape"]) for k, h in header.items() if k != "__metadata__"}


def setup(tmp):
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=DEPTH,
                                                        heads=HEADS, mlp_ratio=MLP / D), 0)
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
    g = np.random.RandomState(1)
    steps = T * E * K
    n = steps * B
    images = g.rand(n, 3, S, S).astype(np.float32)
    labels = np.zeros(n, np.int64)
    idx = g.permutation(n).astype(np.int64).reshape(T, E * K * B)
    for t in range(T):  # session t's images carry its classes
        labels[idx[t]] = t * (C // T) + g.randint(0, C // T, size=E * K * B)
    images.tofile(os.path.join(tmp, "img.bin"))
    labels.tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    return vit, images, labels, idx.reshape(T, E, K, B)


def run_driver(args, tmp, method, dropout, sigma0, keep_sigma=0, forwards=2):
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [args.driver, "--method", method, "--width", str(D), "--depth", str(DEPTH), "--heads",
           str(HEADS), "--img", str(S), "--patch", str(P), "--mlp", str(MLP), "--weights",
           os.path.join(tmp, "w.safetensors"), "--images", os.path.join(tmp, "img.bin"),
           "--labels", os.path.join(tmp, "lab.bin"), "--batches", os.path.join(tmp, "idx.bin"),
           "--sessions", str(T), "--classes", str(C), "--batch", str(B), "--epochs", str(E),
           "--steps", str(K), "--dropout", str(dropout), "--sigma0", str(sigma0),
           "--keep-sigma", str(keep_sigma), "--fast-forwards", str(forwards), "--out", out]
    subprocess.run(cmd, check=True)
    init = read_safetensors(os.path.join(out, "init.safetensors"))
    losses = np.fromfile(os.path.join(out, "losses.bin"), np.float64).reshape(-1, 4)
    sigmas = np.fromfile(os.path.join(out, "sigmas.bin"), np.float64).reshape(-1, 4)
    masks = np.fromfile(os.path.join(out, "masks.bin"), np.uint8).reshape(
        -1, 2, DEPTH, B, TOKENS, R)
    return init, losses, sigmas, masks


def lr_at(epoch):
    return LR * (1 + math.cos(math.pi * epoch / TMAX)) / 2


def sgd(params):
    return torch.optim.SGD(params, lr=LR, momentum=MOM, weight_decay=WD)


def set_masks(net, masks, step, p):
    net.set_adapter_masks([torch.from_numpy(masks[step, p, l].astype(np.float64))
                           for l in range(DEPTH)])


class Reference:
    """The released steps in float64 (PetViT with the driver's masks)."""

    def __init__(self, vit, init, dropout, sigma0):
        self.vit = copy.deepcopy(vit).double().eval()
        self.net = pet_ref.PetViT(copy.deepcopy(vit), ["adapter"], adapter_dim=R,
                                  adapter_scale=SCALE, adapter_dropout=dropout).double()
        with torch.no_grad():
            for k, p in self.net.pet_parameters().items():
                p.copy_(torch.from_numpy(init["pet." + k].astype(np.float64)).reshape(p.shape))
        head = init["head"].astype(np.float64)
        self.w = torch.from_numpy(head[:-1].reshape(C, D)[:C // T].copy()).requires_grad_(True)
        self.sigma = torch.tensor([head[-1]], dtype=torch.float64, requires_grad=True)
        self.sigma0 = sigma0

    def params(self):
        return list(self.net.pet_parameters().values()) + [self.w, self.sigma]

    def session1(self, images, labels, idx, masks, two_ce_forwards):
        """Session 1 (SAFE: CE + transfer loss on a second forward; RanPAC: CE only)."""
        opt, rows = sgd(self.params()), []
        for e in range(E):
            for g in opt.param_groups:
                g["lr"] = lr_at(e)
            for k in range(K):
                step = e * K + k
                x = torch.from_numpy(images[idx[e, k]]).double()
                y = torch.from_numpy(labels[idx[e, k]])
                opt.zero_grad()
                self.net.train()
                set_masks(self.net, masks, step, 0)
                ce = F.cross_entropy(cosine_head(self.net(x), self.w, self.sigma), y)
                loss, tr = ce, torch.zeros(())
                if two_ce_forwards:
                    set_masks(self.net, masks, step, 1)
                    with torch.no_grad():
                        ptm = self.vit(x)
                    tr = slow_cm(self.net(x), ptm, LDIAG, LRDN)
                    loss = ce + tr
                loss.backward()
                opt.step()
                rows.append([loss.item(), ce.item(), tr.item(), 0.0])
        return rows

    def split(self, keep_sigma):
        """End of session 1: the slow learner is a frozen copy; setup_RP resets both sigmas."""
        self.slow = copy.deepcopy(self.net).eval()
        self.w_s = self.w.detach().clone()
        self.sigma_s = self.sigma.detach().clone()
        if not keep_sigma:
            with torch.no_grad():
                self.sigma.fill_(self.sigma0)
            self.sigma_s.fill_(self.sigma0)

    def fast_session(self, t, images, labels, idx, masks, forwards, step0):
        Kold, Kt = t * (C // T), (t + 1) * (C // T)
        self.w = torch.cat([self.w.detach(), torch.zeros(Kt - Kold, D, dtype=torch.float64)]
                           ).requires_grad_(True)
        w_s = torch.cat([self.w_s, torch.zeros(Kt - self.w_s.shape[0], D, dtype=torch.float64)])
        opt, rows = sgd(self.params()), []
        for e in range(E):
            for g in opt.param_groups:
                g["lr"] = lr_at(e)
            for k in range(K):
                step = step0 + e * K + k
                x = torch.from_numpy(images[idx[e, k]]).double()
                y = torch.from_numpy(labels[idx[e, k]])
                opt.zero_grad()
                self.net.train()
                set_masks(self.net, masks, step, 0)
                phi = self.net(x)
                ce = F.cross_entropy(cosine_head(phi, self.w, self.sigma), y)
                if forwards == 2:
                    set_masks(self.net, masks, step, 1)
                    phi = self.net(x)
                with torch.no_grad():
                    phi_s = self.slow(x)
                lcos, l1, l2 = fast_losses(phi, phi_s, self.w, self.sigma, w_s, self.sigma_s, y,
                                           Kold)
                loss = ce + DISF * lcos + CC * (l1 + l2)
                loss.backward()
                opt.step()
                rows.append([loss.item(), ce.item(), lcos.item(), (l1 + l2).item()])
        return rows


def compare_rows(name, got, ref):
    ref = np.asarray(ref)
    scale = np.maximum(np.abs(ref), np.abs(ref[:, :1]))  # each term against itself or the total
    rel = np.abs(got - ref) / np.maximum(scale, 1e-300)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    print("  %-28s %d steps, worst rel %.2e (step %d term %d: safecl %.10g torch %.10g)" % (
        name, len(ref), rel[worst], worst[0], worst[1], got[worst], ref[worst]))
    if not np.all(rel <= RTOL):
        fail("%s: loss rel %.2e > %.0e" % (name, rel[worst], RTOL))


def compare_sigma(name, got, ref, exact):
    ok = got == ref if exact else abs(got - ref) <= RTOL * abs(ref)
    print("  %-28s safecl %.9g torch %.9g%s" % (name, got, ref, " (exact)" if exact else ""))
    if not ok:
        fail("%s: sigma %.9g vs %.9g" % (name, got, ref))


def safe_case(args, tmp, vit, data, dropout, keep_sigma, forwards):
    name = "safe p=%g keep_sigma=%d forwards=%d" % (dropout, keep_sigma, forwards)
    print(name)
    images, labels, idx = data
    init, losses, sigmas, masks = run_driver(args, tmp, "safe", dropout, 10.0, keep_sigma,
                                             forwards)
    ref = Reference(vit, init, dropout, 10.0)
    rows = ref.session1(images, labels, idx[0], masks, True)
    learned = float(ref.sigma)
    compare_sigma("session 1 end, slow", sigmas[0, 2], learned, False)
    ref.split(keep_sigma)
    for t in range(1, T):
        s_start = float(ref.sigma)
        compare_sigma("session %d start, fast" % (t + 1), sigmas[t, 1], s_start,
                      t == 1 and not keep_sigma)
        compare_sigma("session %d start, slow" % (t + 1), sigmas[t, 0], float(ref.sigma_s),
                      not keep_sigma)
        rows += ref.fast_session(t, images, labels, idx[t], masks, forwards, len(rows))
        compare_sigma("session %d end, fast" % (t + 1), sigmas[t, 3], float(ref.sigma), False)
    if keep_sigma:  # the learned sigma is carried over bit for bit
        compare_sigma("kept sigma, session 2 start", sigmas[1, 1], sigmas[0, 2], True)
    compare_rows(name, losses, rows)
    return losses


def ranpac_case(args, tmp, vit, data, sigma0):
    print("ranpac phase 1, sigma0 = %g" % sigma0)
    images, labels, idx = data
    init, losses, sigmas, masks = run_driver(args, tmp, "ranpac", DROPOUT, sigma0)
    compare_sigma("head sigma at start", sigmas[0, 0], sigma0, True)
    ref = Reference(vit, init, DROPOUT, sigma0)
    rows = ref.session1(images, labels, idx[0], masks, False)
    compare_rows("ranpac ce", losses[:, :1], np.asarray(rows)[:, 1:2])
    compare_sigma("head sigma at end", sigmas[0, 2], float(ref.sigma), False)


def config_sigma0(path):
    m = re.search(r"sigma0\s*=\s*([0-9.eE+-]+)", open(path).read())
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--configs", required=True, help="configs/methods")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for cfg, want in (("ranpac.cfg", 1.0), ("aper_adapter.cfg", 1.0), ("aper_ssf.cfg", 1.0),
                      ("aper_vpt.cfg", 1.0), ("safe_cifar100.cfg", 10.0),
                      ("safe_imagenet_a.cfg", 10.0)):
        got = config_sigma0(os.path.join(args.configs, cfg))
        print("  %-28s method.head.sigma0 = %s" % (cfg, got))
        if got != want:
            fail("%s: method.head.sigma0 %s, released %g" % (cfg, got, want))
    with tempfile.TemporaryDirectory() as tmp:
        vit, images, labels, idx = setup(tmp)
        data = (images, labels, idx)
        default = safe_case(args, tmp, vit, data, DROPOUT, 0, 2)
        kept = safe_case(args, tmp, vit, data, DROPOUT, 1, 2)
        one = safe_case(args, tmp, vit, data, DROPOUT, 0, 1)
        n1 = E * K
        for name, other in (("keep_sigma", kept), ("fast_forwards = 1", one)):
            same = np.array_equal(default[:n1], other[:n1])
            later = np.max(np.abs(other[n1:] - default[n1:]) / np.abs(default[n1:, :1]))
            print("  %-18s session 1 bitwise equal: %s; later sessions differ by %.2e" % (
                name, same, later))
            if not same:
                fail("%s changes session 1" % name)
            if not later > 100 * RTOL:  # the comparison above can tell the switch's two settings
                fail("%s changes later sessions by %.2e only" % (name, later))
        a = safe_case(args, tmp, vit, data, 0.0, 0, 2)
        b = safe_case(args, tmp, vit, data, 0.0, 0, 1)
        same = np.array_equal(a, b)
        print("  without dropout, 2 forwards == 1 forward bitwise: %s" % same)
        if not same:
            fail("without dropout the two fast forwards are not one computation")
        ranpac_case(args, tmp, vit, data, config_sigma0(os.path.join(args.configs, "ranpac.cfg")))
    print("FAILED: %d" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
