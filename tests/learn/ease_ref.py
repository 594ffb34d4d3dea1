#!/usr/bin/python3
"""ease_ref.py: EASE over three sessions, safecl against a PyTorch re-implementation written here
from docs/methods.md j (the released computation: per session a fresh adapter set and a fresh
proxy cosine head, sigma * cos(phi, W) with sigma trainable, CE over the session's classes with
the labels offset by K_old, SGD momentum 0.9 with weight decay over the set and the head,
CosineAnnealingLR(T_max = epochs, eta_min = 0) per epoch; then the set frozen; prototypes = raw
class means of every subspace's features of the session's images; the complement of old classes
in newer subspaces, softmax over the cosines to the reference classes of sessions d .. t without
temperature; logits sum_j w_ij cos(x_j, W_cj) with w_ii = 1, w_ij = alpha / t, beta for the
pre-trained block; or the plain cosine of the concatenation).

ease_driver trains through the method interface on a small random ViT with an adapter (r = 8,
scale 1, dropout 0.5 so that the masks matter). Each session starts the float64 reference from
safecl's set and head after train_begin (safecl draws them from its counter RNG) and feeds the
driver's own dropout masks. Checks, per session:
  - the fresh start: proxy head sigma exactly 1, head rows within +-1/sqrt(D), up-projections
    zero, down-projections within +-1/sqrt(D) and different from the previous session's;
  - every step's loss within 1e-5 relative (fp32 forward and backward through two blocks carry
    ~1e-6 relative rounding, as tests/learn/safe_ref.py measures);
  - the set's tensors and the head after the session: their change from the start within 1e-4
    of the largest change of the tensor (an SGD step is linear in the gradient, whose relative
    rounding is ~1e-6; four momentum steps of it stay ~1e-5) plus, for the set, one fp32 rounding
    of the parameter per step (the down-projections barely move: their first steps are the weight
    decay alone, since the up-projections start at zero), sigma likewise;
  - the bank slot equals the trained set bit for bit;
  - the network's features of the classifier list, the prototype matrix after the fit (with the
    complement) and the test logits within 1e-5 of the largest |value| (the fp32 forward through
    safecl's own parameters, which differ from the reference's by the tolerance above), and the
    predicted labels equal wherever the reference's top two logits are 1e-4 apart.
Cases: released defaults (alpha 0.1), with the pre-trained block (use_init_ptm, beta 0.7), plain
cosine (reweight off) and the OmniBenchmark special case (moni_adam: session 1 trains, later
sessions read the pre-trained block and set 0, plain cosine, no complement). Exits 1 on any
failure."""
import argparse
import copy
import math
import os
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
from learn_ref import cosine_head  # noqa: E402
from safe_ref import read_safetensors  # noqa: E402

D, DEPTH, HEADS, S, P, MLP = 32, 2, 2, 32, 16, 128
T, C, B, E, K, NF = 3, 6, 4, 2, 2, 6  # sessions, classes, batch, epochs, steps/epoch, fit list
R, TOKENS, SCALE, DROPOUT = 8, (S // P) ** 2 + 1, 1.0, 0.5
LR, MOM, WD = 0.05, 0.9, 5e-3
N_TRAIN = T * E * K * B
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
    n = N_TRAIN + T * NF
    images = g.rand(n, 3, S, S).astype(np.float32)
    labels = np.zeros(n, np.int64)
    idx = g.permutation(N_TRAIN).astype(np.int64).reshape(T, E * K * B)
    per = C // T
    for t in range(T):  # session t's images carry its classes
        labels[idx[t]] = t * per + g.randint(0, per, size=E * K * B)
    fit = (N_TRAIN + np.arange(T * NF)).astype(np.int64)
    labels[fit] = np.repeat(np.arange(T) * per, NF) + np.tile(np.arange(NF) % per, T)
    images.tofile(os.path.join(tmp, "img.bin"))
    labels.tofile(os.path.join(tmp, "lab.bin"))
    idx.tofile(os.path.join(tmp, "idx.bin"))
    fit.tofile(os.path.join(tmp, "fit.bin"))
    return vit, images, labels, idx.reshape(T, E, K, B), fit.reshape(T, NF)


def run_driver(args, tmp, ptm, reweight, moni, alpha, beta):
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [args.driver, "--width", str(D), "--depth", str(DEPTH), "--heads", str(HEADS),
           "--img", str(S), "--patch", str(P), "--mlp", str(MLP),
           "--weights", os.path.join(tmp, "w.safetensors"), "--images",
           os.path.join(tmp, "img.bin"), "--labels", os.path.join(tmp, "lab.bin"), "--batches",
           os.path.join(tmp, "idx.bin"), "--fit", os.path.join(tmp, "fit.bin"), "--nfit", str(NF),
           "--sessions", str(T), "--classes", str(C), "--batch", str(B), "--epochs", str(E),
           "--steps", str(K), "--dropout", str(DROPOUT), "--rank", str(R), "--ptm", str(ptm),
           "--reweight", str(reweight), "--moni", str(moni), "--alpha", str(alpha), "--beta",
           str(beta), "--out", out]
    subprocess.run(cmd, check=True)
    return out


def f32(out, name, shape):
    return np.fromfile(os.path.join(out, name), np.float32).reshape(shape)


def compare(name, got, ref, rtol):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    err = np.max(np.abs(got - ref)) / max(scale, 1e-300) if ref.size else 0.0
    print("  %-46s worst rel-to-max %.3e (tol %.0e)" % (name, err, rtol))
    if not err <= rtol:
        fail("%s: %.3e > %.0e" % (name, err, rtol))


class Reference:
    """EASE in float64: frozen sets, prototypes, complement and logits."""

    def __init__(self, vit, ptm, reweight, moni, alpha, beta):
        self.vit = vit
        self.ptm_net = copy.deepcopy(vit).double().eval()
        self.ptm, self.reweight, self.moni = ptm or moni, reweight, moni
        self.alpha, self.beta = alpha, beta
        self.sets = []
        self.W = torch.zeros(C, (T + 1) * D, dtype=torch.float64)
        self.starts = [0]

    def train(self, t, init, images, labels, idx, masks, row0):
        net = pet_ref.PetViT(copy.deepcopy(self.vit), ["adapter"], adapter_dim=R,
                             adapter_scale=SCALE, adapter_dropout=DROPOUT).double()
        with torch.no_grad():
            for k, p in net.pet_parameters().items():
                p.copy_(torch.from_numpy(init["pet." + k].astype(np.float64)).reshape(p.shape))
        n_t, k_old = C // T, t * (C // T)
        head = init["head"].astype(np.float64)
        w = torch.from_numpy(head[:n_t * D].reshape(n_t, D).copy()).requires_grad_(True)
        sigma = torch.tensor([head[-1]], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD(list(net.pet_parameters().values()) + [w, sigma], lr=LR,
                              momentum=MOM, weight_decay=WD)
        losses = []
        for e in range(E):
            for g in opt.param_groups:
                g["lr"] = LR * (1 + math.cos(math.pi * e / E)) / 2  # CosineAnnealingLR(E)
            for k in range(K):
                row = row0 + e * K + k
                x = torch.from_numpy(images[idx[e, k]]).double()
                y = torch.from_numpy(labels[idx[e, k]]) - k_old
                net.train()
                net.set_adapter_masks([torch.from_numpy(masks[row, l].astype(np.float64))
                                       for l in range(DEPTH)])
                opt.zero_grad()
                loss = F.cross_entropy(cosine_head(net(x), w, sigma), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
        net.eval()
        self.sets.append(net)
        return losses, net, w.detach(), float(sigma)

    @torch.no_grad()
    def features(self, t, x):
        x = torch.from_numpy(x).double()
        blocks = [self.ptm_net(x)] if self.ptm else []
        n_sets = 1 if self.moni else t + 1
        return torch.cat(blocks + [self.sets[j](x) for j in range(n_sets)], dim=1)

    @torch.no_grad()
    def fit(self, t, feats, labels, lo, hi):
        self.starts.append(hi)
        width = feats.shape[1]
        for c in range(lo, hi):
            self.W[c, :width] = feats[torch.from_numpy(labels == c)].mean(0)
        if self.moni:
            return
        off = 1 if self.ptm else 0
        for i in range(t):  # the released solve_sim_reset, written from j.4
            for d in range(i + 1, t + 1):
                bi, bd = slice((i + off) * D, (i + off + 1) * D), slice((d + off) * D,
                                                                       (d + off + 1) * D)
                a_hat = self.W[self.starts[i]:self.starts[i + 1], bi]
                a = self.W[self.starts[d]:hi, bi]
                b = self.W[self.starts[d]:hi, bd]
                sim = F.cosine_similarity(a_hat[:, None, :], a[None, :, :], dim=2)
                self.W[self.starts[i]:self.starts[i + 1], bd] = F.softmax(sim, dim=1) @ b

    @torch.no_grad()
    def logits(self, t, feats):
        k_seen = self.starts[t + 1]
        nb = feats.shape[1] // D
        if self.moni or not self.reweight:
            return F.linear(F.normalize(feats, dim=1), F.normalize(self.W[:k_seen, :nb * D], dim=1))
        off = 1 if self.ptm else 0
        out = []
        for i in range(t + 1):
            rows = self.W[self.starts[i]:self.starts[i + 1]]
            z = 0.0
            for j in range(nb):
                cos = F.linear(F.normalize(feats[:, j * D:(j + 1) * D], dim=1),
                               F.normalize(rows[:, j * D:(j + 1) * D], dim=1))
                if off and j == 0:
                    z = z + self.beta * cos
                else:
                    z = z + (cos if j - off == i else self.alpha / t * cos)
            out.append(z)
        return torch.cat(out, dim=1)


def check_fresh(t, init, prev):
    bound = 1 / math.sqrt(D)
    head = init["head"]
    n_t = C // T
    ups = [v for k, v in init.items() if ".up." in k]
    downs = {k: v for k, v in init.items() if k.endswith("down.weight")}
    ok = head[-1] == 1.0 and np.all(np.abs(head[:n_t * D]) <= bound) and \
        all(not np.any(u) for u in ups) and all(np.all(np.abs(v) <= bound) for v in downs.values())
    if prev is not None:
        ok = ok and all(not np.array_equal(v, prev[k]) for k, v in downs.items())
    print("  session %d starts fresh (sigma 1, head and down-projections within 1/sqrt(D), "
          "up-projections zero, new draws): %s" % (t + 1, ok))
    if not ok:
        fail("session %d: not a fresh set and head" % (t + 1))


def case(args, tmp, data, name, ptm=0, reweight=1, moni=0, alpha=0.1, beta=0.7):
    print(name)
    vit, images, labels, idx, fit = data
    out = run_driver(args, tmp, ptm, reweight, moni, alpha, beta)
    losses = np.fromfile(os.path.join(out, "losses.bin"), np.float64)
    masks = np.fromfile(os.path.join(out, "masks.bin"), np.uint8).reshape(
        -1, DEPTH, B, TOKENS, R)
    ref = Reference(vit, ptm, reweight, moni, alpha, beta)
    prev = None
    for t in range(T):
        row0 = t * E * K
        lo, hi = t * (C // T), (t + 1) * (C // T)
        if not (moni and t > 0):
            init = read_safetensors(os.path.join(out, "init_%d.safetensors" % t))
            final = read_safetensors(os.path.join(out, "final_%d.safetensors" % t))
            check_fresh(t, init, prev)
            prev = init
            rl, net, w, sigma = ref.train(t, init, images, labels, idx[t], masks, row0)
            compare("session %d losses (%d steps, rel)" % (t + 1, len(rl)),
                    losses[row0:row0 + len(rl)] / np.abs(rl), np.ones(len(rl)), 1e-5)
            worst, at = 0.0, ""
            for k, p in net.pet_parameters().items():
                ref_p = p.detach().numpy()
                change, ref_change = final["pet." + k] - init["pet." + k], ref_p - init["pet." + k]
                # gradient rounding carried into the update, plus one fp32 rounding of the
                # parameter per step (E K) and of its start
                bound = 1e-4 * np.max(np.abs(ref_change)) + \
                    (E * K + 1) * 2.0 ** -24 * np.max(np.abs(ref_p))
                ratio = np.max(np.abs(change - ref_change)) / max(bound, 1e-300)
                if ratio > worst:
                    worst, at = ratio, k
            print("  %-46s worst |d| / bound %.3f (%s)" % ("session %d adapter set" % (t + 1),
                                                           worst, at))
            if not worst <= 1.0:
                fail("session %d adapter set: %.3f of its bound (%s)" % (t + 1, worst, at))
            n_t = C // T
            compare("session %d proxy head change" % (t + 1),
                    final["head"][:n_t * D] - init["head"][:n_t * D],
                    w.numpy().ravel() - init["head"][:n_t * D], 1e-4)
            compare("session %d sigma change" % (t + 1), [final["head"][-1] - 1.0],
                    [sigma - 1.0], 1e-4)
            same = np.array_equal(np.fromfile(os.path.join(out, "bank_%d.bin" % t), np.uint8),
                                  np.fromfile(os.path.join(out, "set_%d.bin" % t), np.uint8))
            print("  session %d bank slot = the trained set (bitwise): %s" % (t + 1, same))
            if not same:
                fail("session %d: bank slot differs from the trained set" % (t + 1))
        feats = ref.features(t, images[fit[t]])
        got = f32(out, "fit_%d.bin" % t, feats.shape)
        compare("session %d features (%d blocks)" % (t + 1, feats.shape[1] // D), got,
                feats.numpy(), 1e-5)
        ref.fit(t, feats, labels[fit[t]], lo, hi)
        protos = f32(out, "protos_%d.bin" % t, (C, -1))
        width = protos.shape[1]
        compare("session %d prototypes with complement" % (t + 1), protos[:hi],
                ref.W[:hi, :width].numpy(), 1e-5)
        test = fit[:t + 1].ravel()
        z = ref.logits(t, ref.features(t, images[test])).numpy()
        got = f32(out, "logits_%d.bin" % t, z.shape)
        compare("session %d logits" % (t + 1), got, z, 1e-5)
        pred = np.fromfile(os.path.join(out, "pred_%d.bin" % t), np.int32)
        top2 = np.sort(z, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4
        same = np.array_equal(pred[clear], np.argmax(z, axis=1)[clear])
        print("  session %d predictions equal on %d of %d clear images: %s" % (
            t + 1, int(clear.sum()), len(z), same))
        if not same:
            fail("session %d: predictions differ" % (t + 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = setup(tmp)
        case(args, tmp, data, "ease, released defaults (alpha 0.1)")
        case(args, tmp, data, "ease with the pre-trained block (beta 0.7)", ptm=1)
        case(args, tmp, data, "ease, plain cosine (reweight off)", reweight=0)
        case(args, tmp, data, "ease, moni_adam (OmniBenchmark)", moni=1, alpha=1.0, beta=1.0)
    print("FAILED: %d" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
