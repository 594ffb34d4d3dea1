#!/usr/bin/env python3
"""train_peer.py: the PyTorch peer for `safecl bench train`.

Trains the same ViT (tests/model/vit_ref.py) with the same PET module (tests/model/pet_ref.py,
written as the released AdaptFormer/SSF/VPT code) on random weights and images: frozen backbone,
a cosine head with cross-entropy, SGD (momentum 0.9, weight decay 5e-4) over the PET and head
parameters, train mode (adapter dropout 0.1), as SAFE's first session does per batch. Runs with
torch.set_num_threads(T) and OMP_WAIT_POLICY=PASSIVE (set here unless the environment says
otherwise), so that PyTorch's OpenMP workers do not spin on the cores its BLAS threads need.
Prints one line with img_per_s=, fwd_s=, bwd_s= and peak_rss_mb= in the form of the C benchmark.
"""
import argparse
import os
import resource
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads libgomp
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import pet_ref  # noqa: E402
import vit_ref  # noqa: E402

KINDS = {"adapter": ["adapter"], "ssf": ["ssf"], "vpt": ["vpt_deep"], "vpt_deep": ["vpt_deep"],
         "vpt_shallow": ["vpt_shallow"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vit_base_patch16_224")
    ap.add_argument("--pet", default="adapter", choices=sorted(KINDS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=100)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.create(args.arch), seed=0)
    model = pet_ref.PetViT(vit, KINDS[args.pet], adapter_dim=64, adapter_dropout=0.1,
                           vpt_tokens=5).train()
    dim = vit.norm.normalized_shape[0]
    head = pet_ref.CosineHead(dim, args.classes)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, 224, 224, generator=g)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g)

    def step():
        t0 = time.perf_counter()
        feats = model(images)
        loss = F.cross_entropy(head(feats), labels)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        return t1 - t0, t2 - t1, loss.item()

    for _ in range(args.warmup):
        step()
    times, fwd, bwd = [], 0.0, 0.0
    for _ in range(args.iters):
        t0 = time.perf_counter()
        f, b, loss = step()
        times.append(time.perf_counter() - t0)
        fwd += f
        bwd += b
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    arch = vit_ref.ALIASES.get(args.arch, args.arch)
    mean, best = sum(times) / len(times), min(times)
    n_pet = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"peer=torch-{torch.__version__} arch={arch} pet={args.pet} batch={args.batch} "
          f"threads={args.threads} iters={args.iters} s_per_iter={mean:.4f} "
          f"best_s_per_iter={best:.4f} img_per_s={args.batch / mean:.3f} "
          f"best_img_per_s={args.batch / best:.3f} fwd_s={fwd / args.iters:.4f} "
          f"bwd_s={bwd / args.iters:.4f} pet_params={n_pet} ce={loss:.4f} "
          f"peak_rss_mb={rss_mb:.1f}")


if __name__ == "__main__":
    main()
