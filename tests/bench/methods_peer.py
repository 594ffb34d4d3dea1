#!/usr/bin/env python3
"""methods_peer.py: the PyTorch peer for `safecl bench train --method ease|slca|lae`.

One training step of session 1 (classes [0, K0) of K) of EASE, SLCA or LAE on the ViT of
tests/model/vit_ref.py with random weights, random images in [0, 1] and random labels in
[0, K0), written as a PyTorch user would write the released models (docs/methods.md j-l):

  ease  the frozen ViT with one AdaptFormer adapter set (tests/model/pet_ref.py: bottleneck 64,
        scale 0.1, dropout 0.1 on the bottleneck, parallel to the MLP, no LayerNorm; docs/
        methods.md b.2), the class token after the final LayerNorm into the proxy head
        sigma * cos(f, W) with W (K0, D) ~ U(+-1/sqrt(D)) and a trainable sigma initialised to 1;
        cross-entropy over the session's K0 classes; SGD (lr 0.025, momentum 0.9, weight decay
        5e-4) over the adapters, W and sigma. No second forward, no old adapters.
  slca  every backbone tensor trainable (patch embedding, class token, position embedding, all
        blocks, final LayerNorm), a linear head (K0, D) (trunc-normal 0.02 weights, zero bias);
        cross-entropy over the session's K0 classes; SGD momentum 0.9, weight decay 5e-4, two
        parameter groups: backbone lr 1e-4 (0.01 x 1/100), head lr 1e-2.
  lae   the frozen ViT with LAE's prefix at blocks 0-4: 10 key and 10 value tokens per block
        (U(0, 0.01)) times learnable scalars s_k, s_v (initialised to 1), inserted after the
        class token's key and value (k' = [k_0, s_k Tk, k_1..]); after the softmax the 10 prefix
        columns of each query row and head are divided by their sum (max(sum, 1e-12)); a linear
        head (K0, D) with N(0, 0.001^2) weights and zero bias; cross-entropy; Adam (lr 0.0028125,
        betas 0.9/0.999, eps 1e-8) over the prefixes, scalars and head; after every optimiser
        step the offline copy of every prefix tensor and scalar is updated in place,
        offline <- 0.9999 offline + 0.0001 online (the step includes this update).

Attention is timm 0.6's (q k^T scaled, softmax, times v; PyTorch 1.13 has no fused attention on
the CPU). Gradients are released before each backward (zero_grad(set_to_none=True)). Runs with
torch.set_num_threads(T) and OMP_WAIT_POLICY=PASSIVE (set here unless the environment says
otherwise). Prints one line with img_per_s=, best_img_per_s=, cpu_s_per_iter= (CPU time of every
thread per timed step), fwd_s=, bwd_s=, opt_s= and peak_rss_mb= (ru_maxrss of this process, as
`safecl bench train` reports its own) in the form of `safecl bench train`.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads libgomp
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import pet_ref  # noqa: E402
import vit_ref  # noqa: E402
from peer_common import measure  # noqa: E402


class Ease(nn.Module):
    def __init__(self, vit, k0, adapter_dim=64):
        super().__init__()
        self.net = pet_ref.PetViT(vit, ["adapter"], adapter_dim=adapter_dim, adapter_scale=0.1,
                                  adapter_dropout=0.1)
        self.head = pet_ref.CosineHead(vit.norm.normalized_shape[0], k0, sigma=1.0)

    def loss(self, images, labels):
        return F.cross_entropy(self.head(self.net(images)), labels)

    def optimizer(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=5e-4)

    def after_step(self):
        pass


class Slca(nn.Module):
    def __init__(self, vit, k0):
        super().__init__()
        self.vit = vit
        for p in vit.parameters():
            p.requires_grad_(True)
        self.head = nn.Linear(vit.norm.normalized_shape[0], k0)
        with torch.no_grad():
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def loss(self, images, labels):
        return F.cross_entropy(self.head(self.vit(images)), labels)

    def optimizer(self):
        groups = [{"params": list(self.vit.parameters()), "lr": 0.01 * 0.01},
                  {"params": list(self.head.parameters()), "lr": 0.01}]
        return torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def after_step(self):
        pass


class LaePrefix(nn.Module):
    """One block's prefix: key and value tokens (L, D) and their learnable scalars."""

    def __init__(self, length, dim):
        super().__init__()
        self.key = nn.Parameter(torch.empty(length, dim).uniform_(0.0, 0.01))
        self.value = nn.Parameter(torch.empty(length, dim).uniform_(0.0, 0.01))
        self.key_scale = nn.Parameter(torch.ones(()))
        self.value_scale = nn.Parameter(torch.ones(()))


class Lae(nn.Module):
    def __init__(self, vit, k0, length=10, layers=5, decay=0.9999):
        super().__init__()
        self.vit, self.length, self.decay = vit, length, decay
        for p in vit.parameters():
            p.requires_grad_(False)
        d = vit.norm.normalized_shape[0]
        self.heads = vit.blocks[0].attn.heads
        self.prefix = nn.ModuleList(LaePrefix(length, d) for _ in range(layers))
        self.offline = [p.detach().clone() for p in self.prefix.parameters()]
        self.head = nn.Linear(d, k0)
        with torch.no_grad():
            nn.init.normal_(self.head.weight, std=0.001)
            nn.init.zeros_(self.head.bias)

    def attention(self, a, x, pre):
        b, n, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = a.qkv(x).reshape(b, n, 3, h, dh).permute(2, 0, 3, 1, 4).unbind(0)
        if pre is not None:
            def heads(t):  # (L, D) -> (B, H, L, Dh), head h on dims [h Dh, (h + 1) Dh)
                return t.reshape(1, -1, h, dh).permute(0, 2, 1, 3).expand(b, -1, -1, -1)
            pk, pv = heads(pre.key_scale * pre.key), heads(pre.value_scale * pre.value)
            k = torch.cat((k[:, :, :1], pk, k[:, :, 1:]), dim=2)
            v = torch.cat((v[:, :, :1], pv, v[:, :, 1:]), dim=2)
        attn = ((q @ k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
        if pre is not None:  # compensation: the prefix columns renormalised to sum 1
            cols = attn[..., 1:1 + self.length]
            lam = cols.sum(-1, keepdim=True).clamp_min(1e-12)
            attn = torch.cat((attn[..., :1], cols / lam, attn[..., 1 + self.length:]), dim=-1)
        return a.proj((attn @ v).transpose(1, 2).reshape(b, n, d))

    def features(self, images):
        v = self.vit
        x = v.patch_embed(images)
        x = torch.cat((v.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + v.pos_embed
        for i, blk in enumerate(v.blocks):
            pre = self.prefix[i] if i < len(self.prefix) else None
            x = x + self.attention(blk.attn, blk.norm1(x), pre)
            x = x + blk.mlp(blk.norm2(x))
        return v.norm(x)[:, 0]

    def loss(self, images, labels):
        return F.cross_entropy(self.head(self.features(images)), labels)

    def optimizer(self):
        params = list(self.prefix.parameters()) + list(self.head.parameters())
        return torch.optim.Adam(params, lr=0.0028125)

    @torch.no_grad()
    def after_step(self):  # the offline expert: an EMA of the online prefixes and scalars
        for off, p in zip(self.offline, self.prefix.parameters()):
            off.mul_(self.decay).add_(p, alpha=1.0 - self.decay)


METHODS = {"ease": Ease, "slca": Slca, "lae": Lae}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", required=True, choices=sorted(METHODS))
    ap.add_argument("--arch", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--session-classes", type=int, default=10)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.create(args.arch), seed=0)
    model = METHODS[args.method](vit, args.session_classes).train()
    opt = model.optimizer()
    params = [p for g in opt.param_groups for p in g["params"]]
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, 224, 224, generator=g)
    labels = torch.randint(0, args.session_classes, (args.batch,), generator=g)

    def step():
        t0 = time.perf_counter()
        loss = model.loss(images, labels)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        model.after_step()
        return t1 - t0, t2 - t1, time.perf_counter() - t2, loss.item()

    measure(step, args, vit_ref.ALIASES.get(args.arch, args.arch), ("fwd_s", "bwd_s", "opt_s"),
            sum(p.numel() for p in params))


if __name__ == "__main__":
    main()
