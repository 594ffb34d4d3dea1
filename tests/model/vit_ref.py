"""vit_ref.py: a from-scratch PyTorch Vision Transformer, the reference safecl's C forward is
checked against, plus the helpers the parity test and the benchmark peer share.

The module mirrors timm 0.6's VisionTransformer (pre-norm blocks, fused qkv with bias, class
token, learned position embedding, exact erf GELU, LayerNorm eps 1e-6, final LayerNorm) with the
same parameter names, so its state_dict *is* a timm checkpoint. timm itself is not imported: it is
not installed here, and writing the model out keeps every operation visible. The safetensors
writer is ours too (8-byte little-endian header length, JSON header, raw little-endian data)
because the safetensors package is not installed either.
"""
import json
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (D, depth, H); all patch 16, image 224, MLP ratio 4.
PRESETS = {
    "vit_tiny_patch16_224": (192, 12, 3),
    "vit_small_patch16_224": (384, 12, 6),
    "vit_base_patch16_224": (768, 12, 12),
    "vit_large_patch16_224": (1024, 24, 16),
}
ALIASES = {"tiny": "vit_tiny_patch16_224", "small": "vit_small_patch16_224",
           "base": "vit_base_patch16_224", "large": "vit_large_patch16_224"}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, as timm's nn.GELU


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N-1, D)


class VisionTransformer(nn.Module):
    def __init__(self, img=224, patch=16, in_chans=3, dim=768, depth=12, heads=12, mlp_ratio=4.0,
                 eps=1e-6):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        tokens = (img // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        hidden = int(dim * mlp_ratio)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        """Images (B, C, H, W) -> CLS token after the final LayerNorm (B, D)."""
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.norm(x)[:, 0]


def create(arch, **kw):
    dim, depth, heads = PRESETS[ALIASES.get(arch, arch)]
    return VisionTransformer(dim=dim, depth=depth, heads=heads, **kw)


@torch.no_grad()
def init_random(model, seed):
    """timm-like init (weights std 0.02) made deliberately non-trivial: random biases and
    LayerNorm affine parameters away from (1, 0), so that a transposed or misplaced tensor shows."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        elif name.endswith("bias"):
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model


def timm_to_hf(sd, prefix="vit."):
    """The same tensors under Hugging Face google/vit-* names (q, k, v split)."""
    out = {}
    for name, t in sd.items():
        parts = name.split(".")
        if name == "cls_token":
            out["embeddings.cls_token"] = t
        elif name == "pos_embed":
            out["embeddings.position_embeddings"] = t
        elif name.startswith("patch_embed.proj."):
            out["embeddings.patch_embeddings.projection." + parts[-1]] = t
        elif name.startswith("norm."):
            out["layernorm." + parts[-1]] = t
        elif parts[0] == "blocks":
            i, rest, leaf = parts[1], ".".join(parts[2:-1]), parts[-1]
            base = f"encoder.layer.{i}."
            if rest == "attn.qkv":
                for j, qn in enumerate(("query", "key", "value")):
                    out[base + f"attention.attention.{qn}.{leaf}"] = t.chunk(3, dim=0)[j]
                continue
            hf = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense",
                  "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense",
                  "mlp.fc2": "output.dense"}[rest]
            out[base + hf + "." + leaf] = t
        else:
            raise KeyError(name)
    return {prefix + k: v.contiguous() for k, v in out.items()}


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer: F32 only, tensors sorted by name."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().numpy()
                                 if torch.is_tensor(tensors[name]) else tensors[name],
                                 dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)  # keep the data 8-byte aligned, as the library does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for raw in blobs:
            f.write(raw)
