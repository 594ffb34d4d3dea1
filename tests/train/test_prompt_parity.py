#!/usr/bin/env python3
"""test_prompt_parity.py: the trainer's per-image prompt inputs (pet.h vit_prompt_io) against
PyTorch autograd on a small model of each mechanism written here, over vit_ref's ViT.

  input tokens  [CLS, tokens, patches]: CLS and every token get pos_embed row 0, the patches rows
                1..N-1; all blocks on N + T tokens; output the mean of the token rows after the
                final LayerNorm (--pool 1, L2P) or the CLS row
  per-image prefixes  at each block of --sample-layers, image b's (L, D) key and value prefix,
                split over heads like a projected key (head h: dims [h Dh, (h+1) Dh)), prepended
                to that image's keys and values; queries unchanged; every image its own prefix

Random backbone (vit_ref.init_random), images, tokens, prefixes and upstream gradient dout; the
reference runs in float64, out = model(...), L = sum(out * dout), L.backward(); prompt_grad_driver
computes the same in float32. Checks, each printing its worst element:
  out      |ours - ref| <= 1e-5 + 1e-4 |ref|
  dtokens, dpk[l], dpv[l]: max |ours - ref| <= 1e-4 max |ref|
The bound: float32 sums over at most F = 256 terms per product, through depth 3, give a relative
error of order depth * F * 2^-24 ~ 5e-5 in the worst case (3e-6 typical), below 1e-4.
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
import vit_ref  # noqa: E402

CONFIGS = {  # name: (width, depth, heads, img, patch, mlp)
    "tiny": (32, 2, 2, 32, 16, 128),
    "small": (64, 3, 4, 48, 16, 256),
}
FAILURES = []


def report(name, ok, msg):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {msg}", flush=True)
    if not ok:
        FAILURES.append(name)


def attention(a, x, heads, pk=None, pv=None):
    b, n, d = x.shape
    dh = d // heads
    q, k, v = a.qkv(x).reshape(b, n, 3, heads, dh).permute(2, 0, 3, 1, 4).unbind(0)
    if pk is not None:  # (B, L, D) -> (B, H, L, Dh), per image
        def split(p):
            return p.reshape(b, -1, heads, dh).permute(0, 2, 1, 3)
        k = torch.cat((split(pk), k), dim=2)
        v = torch.cat((split(pv), v), dim=2)
    att = ((q @ k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
    return a.proj((att @ v).transpose(1, 2).reshape(b, n, d))


def reference(vit, images, tokens, pool, pk, pv):
    x = vit.patch_embed(images)
    pos = vit.pos_embed
    b = x.shape[0]
    parts = [vit.cls_token.expand(b, -1, -1) + pos[:, :1]]
    if tokens is not None:
        parts.append(tokens + pos[:, :1])
    parts.append(x + pos[:, 1:])
    x = torch.cat(parts, dim=1)
    for i, blk in enumerate(vit.blocks):
        x = x + attention(blk.attn, blk.norm1(x), blk.attn.heads, pk.get(i), pv.get(i))
        x = x + blk.mlp(blk.norm2(x))
    x = vit.norm(x)
    if pool:
        return x[:, 1:1 + tokens.shape[1]].mean(dim=1)
    return x[:, 0]


def compare(name, ours, ref, rel_tol=None):
    diff = np.abs(ours.astype(np.float64) - ref)
    i = np.unravel_index(np.argmax(diff), diff.shape)
    if rel_tol is None:
        ok = bool(np.all(np.isfinite(ours)) and np.all(diff <= 1e-5 + 1e-4 * np.abs(ref)))
        report(name, ok, f"max_abs_err={diff.max():.3e} at {list(i)} (ours {ours[i]:.7g}, ref "
               f"{ref[i]:.7g}); tol 1e-5 + 1e-4|ref|")
    else:
        scale = np.abs(ref).max()
        rel = diff.max() / scale if scale > 0 else np.inf
        ok = bool(np.all(np.isfinite(ours)) and scale > 0 and rel <= rel_tol)
        report(name, ok, f"max_abs_err={diff.max():.3e} at {list(i)} (ours {ours[i]:.7g}, ref "
               f"{ref[i]:.7g}); max|ref|={scale:.3e}; rel={rel:.2e} (tol {rel_tol:g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--config", default="small", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-tokens", type=int, default=0)
    ap.add_argument("--pool", type=int, default=0)
    ap.add_argument("--sample-len", type=int, default=0)
    ap.add_argument("--sample-layers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    D, depth, H, S, P, Fh = CONFIGS[args.config]
    B = args.batch
    torch.manual_seed(args.seed)
    vit = vit_ref.init_random(vit_ref.VisionTransformer(img=S, patch=P, dim=D, depth=depth,
                                                        heads=H, mlp_ratio=Fh / D), args.seed)
    with torch.no_grad():  # larger matrices than timm's scale: attention and MLP not near-linear
        for name, p in vit.named_parameters():
            if p.dim() >= 2 and name not in ("pos_embed", "cls_token"):
                p.mul_(4.0)
    g = torch.Generator().manual_seed(args.seed + 2)
    images = torch.rand(B, 3, S, S, generator=g)
    dout = torch.randn(B, D, generator=g)
    tokens = (torch.rand(B, args.input_tokens, D, generator=g) * 2 - 1
              if args.input_tokens else None)
    layers = [l for l in range(depth) if args.sample_layers >> l & 1] if args.sample_len else []
    pk = {l: torch.rand(B, args.sample_len, D, generator=g) * 2 - 1 for l in layers}
    pv = {l: torch.rand(B, args.sample_len, D, generator=g) * 2 - 1 for l in layers}
    with tempfile.TemporaryDirectory() as tmp:
        vit_ref.write_safetensors(os.path.join(tmp, "w.safetensors"), vit.state_dict())
        images.numpy().astype("<f4").tofile(os.path.join(tmp, "images.bin"))
        dout.numpy().astype("<f4").tofile(os.path.join(tmp, "dout.bin"))
        if tokens is not None:
            tokens.numpy().astype("<f4").tofile(os.path.join(tmp, "tokens.bin"))
        for l in layers:
            pk[l].numpy().astype("<f4").tofile(os.path.join(tmp, f"pk{l}.bin"))
            pv[l].numpy().astype("<f4").tofile(os.path.join(tmp, f"pv{l}.bin"))
        cmd = [args.driver, "--width", str(D), "--depth", str(depth), "--heads", str(H), "--img",
               str(S), "--patch", str(P), "--mlp", str(Fh), "--batch", str(B), "--threads",
               str(args.threads), "--weights", os.path.join(tmp, "w.safetensors"), "--dir", tmp]
        if tokens is not None:
            cmd += ["--input-tokens", str(args.input_tokens), "--pool", str(args.pool)]
        if layers:
            cmd += ["--sample-len", str(args.sample_len), "--sample-layers",
                    str(args.sample_layers)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            report("driver", False, f"exit {r.returncode}")
            return 1

        def load(name, shape):
            return np.fromfile(os.path.join(tmp, name), dtype="<f4").reshape(shape)
        ours = {"out": load("out.bin", (B, D))}
        if tokens is not None:
            ours["dtokens"] = load("dtokens.bin", (B, args.input_tokens, D))
        for l in layers:
            ours[f"dpk{l}"] = load(f"dpk{l}.bin", (B, args.sample_len, D))
            ours[f"dpv{l}"] = load(f"dpv{l}.bin", (B, args.sample_len, D))
    vit = vit.double()
    for p in vit.parameters():
        p.requires_grad_(False)
    leaves = {}
    if tokens is not None:
        leaves["dtokens"] = tokens = tokens.double().requires_grad_(True)
    for l in layers:
        leaves[f"dpk{l}"] = pk[l] = pk[l].double().requires_grad_(True)
        leaves[f"dpv{l}"] = pv[l] = pv[l].double().requires_grad_(True)
    out = reference(vit, images.double(), tokens, args.pool, pk, pv)
    (out * dout.double()).sum().backward()
    compare("out", ours["out"], out.detach().numpy())
    for name, leaf in leaves.items():
        compare(name, ours[name], leaf.grad.numpy(), rel_tol=1e-4)
    print(f"{'FAILED: ' + ', '.join(FAILURES) if FAILURES else 'all checks passed'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
