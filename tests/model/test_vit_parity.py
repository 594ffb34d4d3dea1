#!/usr/bin/env python3
"""test_vit_parity.py: safecl's C ViT forward against the PyTorch reference in vit_ref.py.

For one preset: random timm-like weights (seeded) and random images; the reference computes
the class-token features in float32 (and float64, to show how far float32 PyTorch itself is
from exact); vit_forward_driver loads the same weights from a .safetensors file and writes its
features. Checks, each printing its worst element:
  parity  timm naming (plus a classifier head that must be skipped silently):
          |ours - torch| <= atol + rtol*|torch|
  hf      the same weights in Hugging Face naming (q, k, v split; "vit." prefix, pooler and
          classifier present) give identical features; with --hf-bare also without the prefix
  errors  a file with a missing tensor, an unexpected tensor, or a misshapen tensor is refused
          with a message naming the tensor (and both shapes); the unexpected one is accepted
          with --ignore-unexpected
Exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref  # noqa: E402

FAILURES = []


def report(name, ok, msg):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {msg}", flush=True)
    if not ok:
        FAILURES.append(name)


def compare(name, ours, ref, atol, rtol):
    """|ours - ref| <= atol + rtol*|ref| elementwise; reports the worst element."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    diff = np.abs(ours - ref)
    excess = diff - (atol + rtol * np.abs(ref))
    worst = np.unravel_index(np.argmax(excess), diff.shape)
    imax = np.unravel_index(np.argmax(diff), diff.shape)
    ok = bool(np.all(np.isfinite(ours)) and np.all(excess <= 0))
    report(name, ok, f"max_abs_err={diff.max():.3e} at {list(imax)} (ours {ours[imax]:.7f}, "
           f"ref {ref[imax]:.7f}); worst vs tolerance at {list(worst)}; "
           f"tol = {atol:g} + {rtol:g}*|ref|")
    return diff.max()


def run_driver(args, weights, images_path, out_path, extra=()):
    cmd = [args.driver, "--arch", args.arch, "--weights", weights, "--images", images_path,
           "--batch", str(args.batch), "--out", out_path, "--threads", str(args.threads),
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def features(args, weights, images_path, out_path, d, extra=()):
    r = run_driver(args, weights, images_path, out_path, extra)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        return None
    return np.fromfile(out_path, dtype="<f4").reshape(args.batch, d)


def expect_refusal(name, args, weights, images_path, out_path, needles, extra=()):
    r = run_driver(args, weights, images_path, out_path, extra)
    missing = [n for n in needles if n not in r.stderr]
    ok = r.returncode == 1 and not missing
    first = next((l for l in r.stderr.splitlines() if "error" in l.lower()), r.stderr.strip())
    report(name, ok, f"exit {r.returncode}; message: {first.strip()}"
           + (f"; missing from message: {missing}" if missing else ""))


def check_errors(args, sd, tmp, images_path, out_path, d):
    base = {k: v for k, v in sd.items()}
    drop = "blocks.3.mlp.fc2.bias"
    f = os.path.join(tmp, "missing.safetensors")
    vit_ref.write_safetensors(f, {k: v for k, v in base.items() if k != drop})
    expect_refusal("errors/missing", args, f, images_path, out_path, [drop, f])

    f = os.path.join(tmp, "extra.safetensors")
    vit_ref.write_safetensors(f, {**base, "fc_norm.weight": torch.ones(d)})
    expect_refusal("errors/unexpected", args, f, images_path, out_path, ["fc_norm.weight", f])
    got = features(args, f, images_path, out_path, d, ["--ignore-unexpected"])
    report("errors/unexpected-ignored", got is not None, "accepted with --ignore-unexpected")

    bad = "blocks.0.attn.qkv.weight"
    f = os.path.join(tmp, "shape.safetensors")
    vit_ref.write_safetensors(f, {**base, bad: base[bad].t().contiguous()})
    expect_refusal("errors/shape", args, f, images_path, out_path,
                   [bad, f, f"[{d}, {3 * d}]", f"[{3 * d}, {d}]"])

    hf = vit_ref.timm_to_hf(sd)
    bad = "vit.encoder.layer.1.attention.attention.key.weight"
    f = os.path.join(tmp, "hf_shape.safetensors")
    vit_ref.write_safetensors(f, {**hf, bad: hf[bad][:, :-1].contiguous()})
    expect_refusal("errors/hf-shape", args, f, images_path, out_path,
                   [bad, f"[{d}, {d - 1}]", f"[{d}, {d}]"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--arch", default="vit_tiny_patch16_224")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--checks", default="parity,hf,errors")
    ap.add_argument("--hf-bare", action="store_true", help="also HF naming without 'vit.'")
    args = ap.parse_args()
    args.arch = vit_ref.ALIASES.get(args.arch, args.arch)
    checks = set(args.checks.split(","))
    torch.set_num_threads(2)

    model = vit_ref.init_random(vit_ref.create(args.arch), seed=args.seed).eval()
    d = model.norm.weight.shape[0]
    images = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(images).numpy()
        ref64 = model.double()(images.double()).numpy()
    sd = {k: v.float() for k, v in model.float().state_dict().items()}
    print(f"{args.arch}: batch {args.batch}, threads {args.threads}, "
          f"{sum(v.numel() for v in sd.values())} parameters; float32 torch vs float64 torch: "
          f"max_abs_err={np.abs(ref - ref64).max():.3e}")

    with tempfile.TemporaryDirectory(prefix="vit_parity_") as tmp:
        images_path = os.path.join(tmp, "images.f32")
        out_path = os.path.join(tmp, "out.f32")
        images.numpy().astype("<f4").tofile(images_path)
        timm_file = os.path.join(tmp, "timm.safetensors")
        gen = torch.Generator().manual_seed(99)
        head = {"head.weight": 0.02 * torch.randn(10, d, generator=gen), "head.bias": torch.zeros(10)}
        vit_ref.write_safetensors(timm_file, {**sd, **head})
        ours = None
        if checks & {"parity", "hf"}:
            ours = features(args, timm_file, images_path, out_path, d)
            if ours is None:
                report("parity/timm", False, "driver failed")
                return 1
        if "parity" in checks:
            compare(f"parity/timm {args.arch}", ours, ref, args.atol, args.rtol)
            compare(f"parity/timm {args.arch} vs float64", ours, ref64, args.atol, args.rtol)
        if "hf" in checks:
            hf = vit_ref.timm_to_hf(sd)
            prefixes = [("vit.", hf)]
            if args.hf_bare:
                prefixes.append(("", vit_ref.timm_to_hf(sd, prefix="")))
            for prefix, tensors in prefixes:
                # What ViTForImageClassification / ViTModel checkpoints carry beside the backbone.
                extras = {prefix + "pooler.dense.weight": torch.zeros(d, d),
                          prefix + "pooler.dense.bias": torch.zeros(d),
                          "classifier.weight": torch.zeros(10, d),
                          "classifier.bias": torch.zeros(10)}
                f = os.path.join(tmp, f"hf{prefix or '_bare'}.safetensors")
                vit_ref.write_safetensors(f, {**tensors, **extras})
                got = features(args, f, images_path, out_path, d)
                label = f"hf/{'vit.' if prefix else 'bare'} {args.arch}"
                if got is None:
                    report(label, False, "driver failed")
                    continue
                compare(label, got, ref, args.atol, args.rtol)
                compare(label + " == timm file", got, ours, 0.0, 0.0)
        if "errors" in checks:
            check_errors(args, sd, tmp, images_path, out_path, d)

    print(f"{len(FAILURES)} failed" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
