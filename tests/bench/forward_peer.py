#!/usr/bin/env python3
"""forward_peer.py: the PyTorch peer for `safecl bench forward`.

Runs the same Vision Transformer (tests/model/vit_ref.py, written like timm 0.6's) at the same
batch on random weights and images, under torch.no_grad() in eval mode as a feature extractor
would, with torch.set_num_threads(T) and OMP_WAIT_POLICY=PASSIVE (set here unless the environment
says otherwise), so that PyTorch's OpenMP workers do not spin on the cores its BLAS threads
need. Prints one line with img_per_s= and peak_rss_mb= in the same form as the C benchmark.
"""
import argparse
import os
import resource
import sys
import time

# Read by libgomp when torch loads it, so it must be set before the import; forward.sh sets it
# too. PyTorch's BLAS here is the same OpenBLAS pthread build that safecl links.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import vit_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = vit_ref.init_random(vit_ref.create(args.arch), seed=0).eval()
    images = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for _ in range(args.warmup):
            model(images)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    arch = vit_ref.ALIASES.get(args.arch, args.arch)
    mean, best = sum(times) / len(times), min(times)
    print(f"peer=torch-{torch.__version__} arch={arch} batch={args.batch} threads={args.threads} "
          f"iters={args.iters} s_per_iter={mean:.4f} best_s_per_iter={best:.4f} "
          f"img_per_s={args.batch / mean:.3f} best_img_per_s={args.batch / best:.3f} "
          f"peak_rss_mb={rss_mb:.1f}")


if __name__ == "__main__":
    main()
