#!/usr/bin/env python3
"""test_full_parity.py: full fine-tuning (PET_FULL) in safecl's trainer against PyTorch autograd on
tests/model/vit_ref.py, for the output and EVERY backbone tensor's gradient.

The trained copy of the backbone (pet_params tensors backbone.<timm name>) gets one set of random
weights, the frozen model (--weights) another: the trainer must read every weight from the copy,
so the features and gradients only match the reference if it does. Random images and a random
upstream gradient dcls; the reference runs in float64: cls = vit(images), L = sum(cls * dcls),
L.backward(). train_grad_driver computes the same in float32 with safecl.

Error bound. Every compared value is a chain of float32 dot products; a dot product of length K
computed in float has error <= K u sum|terms| in the worst case and about sqrt(K) u sum|terms|
for rounding errors of random sign (u = 2^-24 = 6e-8). The longest sums here are the weight
gradients' sums over all B * N token rows times the MLP width, K <= 3 * 17 * 256 = 13,056:
sqrt(K) u = 6.9e-6, and the chain through depth 3 blocks with ratios sum|terms| / |result| of at
most about 10 gives 1e-4. So:
  cls, infer  |ours - ref| <= 1e-5 + 1e-4 |ref|        (the features, O(1))
  grad.*      max |ours - ref| <= 1e-4 * max |ref|     per tensor (relative to its largest
              element: individual tiny elements carry the noise of the large ones)
The summary prints the worst tensor of each kind. Exits non-zero on any failure.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
import vit_ref  # noqa: E402
from parity_common import FAILURES, compare_features, read_safetensors, report  # noqa: E402


def compare_grads(ours, ref_grads, tol):
    worst = collections.OrderedDict()
    for name, ref in ref_grads.items():
        key = "grad." + name
        if key not in ours:
            report(f"grad {name}", False, "missing from the driver's output")
            continue
        got = ours[key].astype(np.float64).reshape(ref.shape)
        diff = np.abs(got - ref)
        scale = np.abs(ref).max()
        rel = diff.max() / scale if scale > 0 else diff.max()
        i = np.unravel_index(np.argmax(diff), diff.shape)
        ok = bool(np.all(np.isfinite(got)) and scale > 0 and rel <= tol)
        report(f"grad {name}", ok, f"max_abs_err={diff.max():.3e} at {list(i)} (ours "
               f"{got[i]:.7g}, ref {ref[i]:.7g}); max|ref|={scale:.3e}; rel={rel:.2e} "
               f"(tol {tol:g}){'' if scale > 0 else ' ZERO REFERENCE GRADIENT'}")
        kind = re.sub(r"^backbone\.blocks\.\d+\.", "block.", name)
        if kind not in worst or rel > worst[kind][0]:
            worst[kind] = (rel, name)
    extra = [k for k in ours if k.startswith("grad.") and k[5:] not in ref_grads]
    report("no extra tensors", not extra, f"{len(extra)} gradient(s) without a reference {extra}")
    for kind, (rel, name) in worst.items():
        print(f"worst {kind:34s} rel={rel:.2e} ({name})")


def scaled(model, seed, factor):
    """vit_ref.init_random with the matrices `factor` times larger: timm-scale weights are nearly
    linear at this size, larger ones make softmax, GELU and LayerNorm curve."""
    vit_ref.init_random(model, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and name not in ("cls_token", "pos_embed"):
                p.mul_(factor)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--mlp", type=int, default=256)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    def vit():
        return vit_ref.VisionTransformer(img=a.img, patch=a.patch, dim=a.width, depth=a.depth,
                                         heads=a.heads, mlp_ratio=a.mlp / a.width)

    frozen = scaled(vit(), a.seed + 10, 3.0)  # the shared model: must not be read
    model = scaled(vit(), a.seed, 3.0)        # the trained copy and the reference
    g = torch.Generator().manual_seed(a.seed + 2)
    images = torch.rand(a.batch, 3, a.img, a.img, generator=g)
    dcls = torch.randn(a.batch, a.width, generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        w = os.path.join(tmp, "w.safetensors")
        pet = os.path.join(tmp, "pet.safetensors")
        vit_ref.write_safetensors(w, frozen.state_dict())
        vit_ref.write_safetensors(pet, {"backbone." + k: v.detach()
                                        for k, v in model.state_dict().items()})
        images.numpy().astype("<f4").tofile(os.path.join(tmp, "img.bin"))
        dcls.numpy().astype("<f4").tofile(os.path.join(tmp, "dcls.bin"))
        out = os.path.join(tmp, "out.safetensors")
        cmd = [a.driver, "--width", str(a.width), "--depth", str(a.depth), "--heads",
               str(a.heads), "--img", str(a.img), "--patch", str(a.patch), "--mlp", str(a.mlp),
               "--pet", "full", "--weights", w, "--pet-weights", pet, "--images",
               os.path.join(tmp, "img.bin"), "--dcls", os.path.join(tmp, "dcls.bin"),
               "--batch", str(a.batch), "--threads", str(a.threads), "--out", out]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            report("driver", False, f"exit {r.returncode}")
            return 1
        ours = read_safetensors(out)
    model = model.double()
    cls = model(images.double())
    (cls * dcls.double()).sum().backward()
    ref = cls.detach().numpy()
    compare_features("cls", ours["cls"], ref)
    compare_features("infer", ours["infer"], ref)
    compare_grads(ours, {"backbone." + k: p.grad.numpy() for k, p in model.named_parameters()},
                  a.tol)
    print(f"{'FAILED: ' + ', '.join(FAILURES) if FAILURES else 'all checks passed'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
