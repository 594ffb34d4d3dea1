#!/usr/bin/env python3
"""prompt_peer.py: the PyTorch peer for `safecl bench train --method l2p|dualprompt|coda_prompt`.

One training step of session 1 (classes [0, K0) of K) of each prompt method on the frozen
ViT-B/16 of tests/model/vit_ref.py with random weights, random images in [0, 1] and random labels
in [0, K0), written as a PyTorch user would write the released models (docs/methods.md f-i):

  every method  query q = the frozen, unprompted ViT's class token after the final LayerNorm,
                under torch.no_grad() on the same images (the second, prompt-free forward);
                backbone frozen (requires_grad False); linear head of K classes; cross-entropy
                on the session's columns [0, K0); Adam (PyTorch defaults, betas 0.9/0.999,
                eps 1e-8) over the prompt tensors, keys and head; zero_grad(set_to_none=True).
  l2p           cosine similarity of q with 10 keys (eps 1e-12 on the squared norms), top-5 per
                image, batch vote (the 5 ids chosen most often, lower id first on ties) used for
                every image; tokens [CLS, 25 prompt tokens, 196 patches] with pos_embed row 0 on
                CLS and the prompts, 12 frozen blocks on 222 tokens, final LayerNorm, feature =
                mean of the 25 prompt outputs; loss CE - 0.1 * S, S = mean over images of the
                summed similarities to the 5 selected keys. Pool (10, 5, 768), keys (10, 768).
  dualprompt    G-prompts (2 layers, k/v, 5, 768) at blocks 0-1, E-prompt of slot t = 0 of a
                (3, 2, 10, 5, 768) pool (gathered per image) at blocks 2-4, both prepended to
                the keys and values after the qkv projection (queries unchanged); feature = CLS;
                loss CE - 0.1 * (mean similarity of q to key t). Keys (10, 768).
  coda_prompt   per block 0-4 components P (100, 8, 768), keys K and attention vectors A
                (100, 768), of which session 1 uses the first 10: alpha = <normalize(q * A_k),
                normalize(K_k)>, prompt = sum_k alpha_k P_k (8, 768) per image, its first 4 rows
                prepended to the keys, the last 4 to the values; feature = CLS; loss CE.

Attention is timm 0.6's (q k^T scaled, softmax, times v; PyTorch 1.13 has no fused attention on
the CPU). Runs with torch.set_num_threads(T) and OMP_WAIT_POLICY=PASSIVE (set here unless the
environment says otherwise). Prints one line with img_per_s=, best_img_per_s=, cpu_s_per_iter=
(CPU time of every thread per timed step), query_s=, fwd_s=, bwd_s= and peak_rss_mb= in the form
of `safecl bench train`.
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
import vit_ref  # noqa: E402
from peer_common import measure  # noqa: E402


def eps_normalize(x):
    """x / sqrt(max(|x|^2, 1e-12)) over the last dim (L2P/DualPrompt's l2_normalize)."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=1e-12))


def to_heads(p, heads):
    """(B, L, D) prefix -> (B, H, L, Dh), head h on dims [h Dh, (h + 1) Dh) like a key."""
    b, n, d = p.shape
    return p.reshape(b, n, heads, d // heads).permute(0, 2, 1, 3)


class PromptViT(nn.Module):
    """The frozen vit_ref ViT with per-image input tokens and per-image key/value prefixes."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit
        for p in vit.parameters():
            p.requires_grad_(False)
        self.heads = vit.blocks[0].attn.heads

    def attention(self, a, x, prefix):
        b, n, d = x.shape
        qkv = a.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if prefix is not None:
            k = torch.cat((to_heads(prefix[0], self.heads), k), dim=2)
            v = torch.cat((to_heads(prefix[1], self.heads), v), dim=2)
        attn = ((q @ k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
        return a.proj((attn @ v).transpose(1, 2).reshape(b, n, d))

    def forward(self, images, tokens=None, prefixes=None):
        """tokens: (B, T, D) inserted after CLS with pos_embed[0] (output: their mean after the
        final LayerNorm); prefixes: {block: (keys (B, L, D), values (B, L, D))} (output: CLS)."""
        v = self.vit
        x = v.patch_embed(images) + v.pos_embed[:, 1:]
        first = v.cls_token + v.pos_embed[:, :1]
        seq = [first.expand(x.shape[0], -1, -1)]
        if tokens is not None:
            seq.append(tokens + v.pos_embed[:, :1])
        x = torch.cat(seq + [x], dim=1)
        prefixes = prefixes or {}
        for i, blk in enumerate(v.blocks):
            x = x + self.attention(blk.attn, blk.norm1(x), prefixes.get(i))
            x = x + blk.mlp(blk.norm2(x))
        x = v.norm(x)
        return x[:, 1:1 + tokens.shape[1]].mean(1) if tokens is not None else x[:, 0]


def uniform(*shape):
    return nn.Parameter(torch.empty(*shape).uniform_(-1.0, 1.0))


def timm_head(dim, classes):
    head = nn.Linear(dim, classes)
    with torch.no_grad():
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
    return head


class L2P(nn.Module):
    def __init__(self, net, classes, pool=10, length=5, top_k=5, pull=0.1):
        super().__init__()
        d = net.vit.norm.normalized_shape[0]
        self.net, self.top_k, self.pull = net, top_k, pull
        self.prompt, self.key = uniform(pool, length, d), uniform(pool, d)
        self.head = timm_head(d, classes)

    def loss(self, images, q, labels, k0):
        qn, kn = eps_normalize(q), eps_normalize(self.key)
        sim = qn @ kn.t()  # (B, pool)
        with torch.no_grad():  # batch vote over the per-image top-k
            counts = torch.bincount(sim.topk(self.top_k, dim=1).indices.flatten(),
                                    minlength=self.key.shape[0])
            rank = counts * self.key.shape[0] - torch.arange(self.key.shape[0])
            sel = rank.topk(self.top_k).indices
        b = images.shape[0]
        tokens = self.prompt[sel].reshape(1, -1, self.prompt.shape[-1]).expand(b, -1, -1)
        logits = self.head(self.net(images, tokens=tokens))
        s = sim[:, sel].sum(1).mean()
        return F.cross_entropy(logits[:, :k0], labels) - self.pull * s


class DualPrompt(nn.Module):
    def __init__(self, net, classes, pool=10, g_length=5, e_length=5, g_layers=2, e_layers=3,
                 pull=0.1, slot=0):
        super().__init__()
        d = net.vit.norm.normalized_shape[0]
        self.net, self.pull, self.slot, self.g_layers = net, pull, slot, g_layers
        self.g = uniform(g_layers, 2, g_length, d)
        self.e = uniform(e_layers, 2, pool, e_length, d)
        self.key = uniform(pool, d)
        self.head = timm_head(d, classes)

    def loss(self, images, q, labels, k0):
        b = images.shape[0]
        idx = torch.full((b,), self.slot, dtype=torch.long)  # training: the session's slot
        prefixes = {}
        for l in range(self.g.shape[0]):
            prefixes[l] = (self.g[l, 0].expand(b, -1, -1), self.g[l, 1].expand(b, -1, -1))
        for l in range(self.e.shape[0]):
            prefixes[self.g_layers + l] = (self.e[l, 0, idx], self.e[l, 1, idx])
        logits = self.head(self.net(images, prefixes=prefixes))
        s = (eps_normalize(q) * eps_normalize(self.key)[idx]).sum(1).mean()
        return F.cross_entropy(logits[:, :k0], labels) - self.pull * s


class CodaPrompt(nn.Module):
    def __init__(self, net, classes, pool=100, length=8, layers=5, active=10):
        super().__init__()
        d = net.vit.norm.normalized_shape[0]
        self.net, self.active, self.layers = net, active, layers

        def components(*shape):  # rows [0, active) unit random, the rest zero (i.3)
            t = torch.zeros(*shape)
            t[:active] = F.normalize(torch.randn(active, *shape[1:]).flatten(1), dim=1).reshape(
                active, *shape[1:])
            return nn.Parameter(t)
        self.p = nn.ParameterList(components(pool, length, d) for _ in range(layers))
        self.k = nn.ParameterList(components(pool, d) for _ in range(layers))
        self.a = nn.ParameterList(components(pool, d) for _ in range(layers))
        self.head = nn.Linear(d, classes)

    def loss(self, images, q, labels, k0):
        f, prefixes = self.active, {}
        for l in range(self.layers):
            an = F.normalize(q.unsqueeze(1) * self.a[l][:f], dim=2)  # (B, f, D)
            alpha = torch.einsum("bkd,kd->bk", an, F.normalize(self.k[l][:f], dim=1))
            prompt = torch.einsum("bk,kld->bld", alpha, self.p[l][:f])  # (B, 8, D)
            half = prompt.shape[1] // 2
            prefixes[l] = (prompt[:, :half], prompt[:, half:])
        logits = self.head(self.net(images, prefixes=prefixes))
        return F.cross_entropy(logits[:, :k0], labels)


METHODS = {"l2p": (L2P, 0.001875), "dualprompt": (DualPrompt, 0.001),
           "coda_prompt": (CodaPrompt, 0.001)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", required=True, choices=sorted(METHODS))
    ap.add_argument("--arch", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--session-classes", type=int, default=10)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vit = vit_ref.init_random(vit_ref.create(args.arch), seed=0).eval()
    cls, lr = METHODS[args.method]
    model = cls(PromptViT(vit), args.classes).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, 224, 224, generator=g)
    labels = torch.randint(0, args.session_classes, (args.batch,), generator=g)

    def step():
        t0 = time.perf_counter()
        with torch.no_grad():
            q = vit(images)
        t1 = time.perf_counter()
        loss = model.loss(images, q, labels, args.session_classes)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        return t1 - t0, t2 - t1, t3 - t2, loss.item()

    measure(step, args, vit_ref.ALIASES.get(args.arch, args.arch), ("query_s", "fwd_s", "bwd_s"),
            sum(p.numel() for p in params))


if __name__ == "__main__":
    main()
