#!/usr/bin/env python3
"""test_train_parity.py: safecl's trainer (forward + backward through the frozen ViT with PET)
against PyTorch autograd on tests/model/pet_ref.py, tensor by tensor.

For a small ViT shape and one PET configuration: random backbone weights (vit_ref.init_random),
random PET values away from their init (pet_ref.init_pet_random, so that no gradient path is
hidden by a zero), random images and a random upstream gradient dcls. The reference runs in
float64: cls = model(images), L = sum(cls * dcls), L.backward(). train_grad_driver computes the
same in float32 with safecl. Checks, each printing its worst element:
  cls     training-forward features: |ours - ref| <= 1e-5 + 1e-4 |ref|
  infer   inference features (no dropout) against the reference in eval mode, same tolerance,
          and computed between the forward and the backward, so it also shows that inference
          leaves the kept activations alone
  grad.*  every PET tensor: max |ours - ref| <= 1e-4 * max |ref| (relative to the tensor's
          largest element); the worst tensor of each class is summarised at the end
With --keyed the adapter dropout is on and the reference is fed the driver's own masks.
Exits non-zero on any failure.
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
import pet_ref  # noqa: E402
import vit_ref  # noqa: E402
from parity_common import FAILURES, compare_features, read_safetensors, report  # noqa: E402


CONFIGS = {  # name: (width, depth, heads, img, patch, mlp)
    "tiny": (32, 2, 2, 32, 16, 128),
    "small": (64, 3, 4, 48, 16, 256),
}


def tensor_class(name):
    """blocks.3.adapter.down.weight -> adapter.down.weight; prefix.2.key -> prefix.key."""
    return re.sub(r"^(blocks|prefix)\.\d+\.", r"\1.", name).replace("blocks.", "")


def compare_grads(ours, ref_grads, tol):
    worst = collections.OrderedDict()
    for name, ref in ref_grads.items():
        got = ours["grad." + name].astype(np.float64).reshape(ref.shape)
        diff = np.abs(got - ref)
        scale = np.abs(ref).max()
        rel = diff.max() / scale if scale > 0 else diff.max()
        i = np.unravel_index(np.argmax(diff), diff.shape)
        ok = bool(np.all(np.isfinite(got)) and scale > 0 and rel <= tol)
        report(f"grad {name}", ok, f"max_abs_err={diff.max():.3e} at {list(i)} (ours "
               f"{got[i]:.7g}, ref {ref[i]:.7g}); max|ref|={scale:.3e}; rel={rel:.2e} "
               f"(tol {tol:g}){'' if scale > 0 else ' ZERO REFERENCE GRADIENT'}")
        c = tensor_class(name)
        if c not in worst or rel > worst[c][0]:
            worst[c] = (rel, name)
    for c, (rel, name) in worst.items():
        print(f"worst {c:28s} rel={rel:.2e} ({name})")


def build(args):
    D, depth, H, S, P, Fh = CONFIGS[args.config]
    torch.manual_seed(args.seed)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=depth,
                                                        heads=H, mlp_ratio=Fh / D), args.seed)
    kinds = args.pet.split(",")
    layers = [i for i in range(depth) if args.prefix_layers >> i & 1]
    model = pet_ref.PetViT(vit, kinds, adapter_dim=args.adapter_dim, adapter_dropout=args.dropout,
                           vpt_tokens=args.vpt_tokens, prefix_len=args.prefix_len,
                           prefix_layers=layers, prefix_after_cls=args.prefix_after_cls,
                           prefix_compensate=args.prefix_compensate,
                           prefix_scales=args.prefix_scales)
    return pet_ref.init_pet_random(model, args.seed + 1)


def run_driver(args, model, tmp, images, dcls):
    D, depth, H, S, P, Fh = CONFIGS[args.config]
    vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), model.vit.state_dict())
    vit_ref.write_safetensors(os.path.join(tmp, "pet.safetensors"),
                              {k: v.detach() for k, v in model.pet_parameters().items()})
    images.numpy().astype("<f4").tofile(os.path.join(tmp, "img.bin"))
    dcls.numpy().astype("<f4").tofile(os.path.join(tmp, "dcls.bin"))
    cmd = [args.driver, "--width", str(D), "--depth", str(depth), "--heads", str(H), "--img",
           str(S), "--patch", str(P), "--mlp", str(Fh), "--pet", args.pet, "--adapter-dim",
           str(args.adapter_dim), "--dropout", str(args.dropout), "--vpt-tokens",
           str(args.vpt_tokens), "--prefix-len", str(args.prefix_len), "--prefix-layers",
           str(args.prefix_layers), "--prefix-after-cls", str(args.prefix_after_cls),
           "--prefix-compensate", str(args.prefix_compensate), "--prefix-scales",
           str(args.prefix_scales), "--weights", os.path.join(tmp, "w.safetensors"),
           "--pet-weights", os.path.join(tmp, "pet.safetensors"), "--images",
           os.path.join(tmp, "img.bin"), "--dcls", os.path.join(tmp, "dcls.bin"), "--batch",
           str(args.batch), "--threads", str(args.threads), "--out",
           os.path.join(tmp, "out.safetensors")]
    if args.keyed:
        cmd += ["--key", "7,123,1", "--index", ",".join(str(1000 + 37 * b)
                                                         for b in range(args.batch))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        report("driver", False, f"exit {r.returncode}")
        return None
    return read_safetensors(os.path.join(tmp, "out.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--pet", default="adapter")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapter-dim", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--vpt-tokens", type=int, default=3)
    ap.add_argument("--prefix-len", type=int, default=0)
    ap.add_argument("--prefix-layers", type=int, default=0)
    ap.add_argument("--prefix-after-cls", type=int, default=0, help="LAE: prefix after CLS")
    ap.add_argument("--prefix-compensate", type=int, default=0, help="LAE: compensation")
    ap.add_argument("--prefix-scales", type=int, default=0, help="LAE: learnable scales")
    ap.add_argument("--keyed", action="store_true", help="adapter dropout on, masks shared")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = build(args)
    S = CONFIGS[args.config][3]
    g = torch.Generator().manual_seed(args.seed + 2)
    images = torch.rand(args.batch, 3, S, S, generator=g)
    dcls = torch.randn(args.batch, CONFIGS[args.config][0], generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_driver(args, model, tmp, images, dcls)
    if ours is None:
        return 1
    model = model.double()
    with torch.no_grad():
        model.eval()
        ref_eval = model(images.double()).numpy()
    if args.keyed and "adapter" in args.pet:
        model.set_adapter_masks([torch.from_numpy(ours[f"mask.{l}"].astype(np.float64))
                                 for l in range(len(model.vit.blocks))])
        model.train()
    cls = model(images.double())
    (cls * dcls.double()).sum().backward()
    compare_features("cls", ours["cls"], cls.detach().numpy())
    compare_features("infer", ours["infer"], ref_eval)
    ref_grads = {k: p.grad.numpy() for k, p in model.pet_parameters().items()}
    compare_grads(ours, ref_grads, args.tol)
    print(f"{'FAILED: ' + ', '.join(FAILURES) if FAILURES else 'all checks passed'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
