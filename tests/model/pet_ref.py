"""pet_ref.py: PET modules on vit_ref's PyTorch ViT, written as the released code has them
(docs/methods.md b.2-b.4), for safecl's training parity test and the training benchmark peer.

  adapter  AdaptFormer (petl/vision_transformer_adapter.py, "parallel", no LayerNorm, "lora"
           init): a = s * up(dropout(relu(down(x)))), s = 0.1 fixed; block
           x = x + attn(norm1(x)); adapt_x = adapter(x); x = x + (mlp(norm2(x)) + adapt_x)
  ssf      petl/vision_transformer_ssf.py: ssf_ada(x) = x * scale + shift after the patch
           embedding, after norm1, qkv, proj, norm2, fc1 (before GELU), fc2 in every block and
           after the final norm; init scale ~ N(1, 0.02), shift ~ N(0, 0.02)
  vpt      petl/vpt.py: prompts (depth or 1, T, D), zeros; deep: cat after the tokens before
           block i and drop the last T after it; shallow: cat before block 0, drop after the last
  prefix   prefix tuning of keys and values (DualPrompt style): prefix (L, D) per listed layer
           prepended to k and v after the head split; queries unchanged. LAE's options
           (docs/methods.md l.2): prefix_after_cls puts the prefix after the class token's key
           and value, prefix_scales multiplies them by learnable scalars (init 1) and
           prefix_compensate divides the prefix columns of each attention row by their sum
           (clamped at 1e-12) after the softmax

The backbone keeps timm's names (vit_ref); PET tensors are reachable under safecl's names
(pet_params.c) through pet_parameters(). A fixed dropout mask per block can be fed
(set_adapter_masks) so that a test can reproduce safecl's counter-RNG masks exactly.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F



def ssf_ada(x, scale, shift):
    return x * scale + shift


class Adapter(nn.Module):
    """AdaptFormer's Adapter with ffn_adapter_layernorm_option="none" and init_option="lora"."""

    def __init__(self, d_model, bottleneck=64, dropout=0.1, scale=0.1):
        super().__init__()
        self.down_proj = nn.Linear(d_model, bottleneck)
        self.up_proj = nn.Linear(bottleneck, d_model)
        self.dropout = dropout
        self.scale = scale
        self.mask = None  # (B, N, bottleneck) 0/1 to replace torch's own Bernoulli draws
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
            nn.init.zeros_(self.up_proj.weight)
            nn.init.zeros_(self.down_proj.bias)
            nn.init.zeros_(self.up_proj.bias)

    def forward(self, x):
        down = F.relu(self.down_proj(x))
        if self.training and self.mask is not None:
            down = down * (self.mask / (1.0 - self.dropout))
        else:
            down = F.dropout(down, p=self.dropout, training=self.training)
        return self.up_proj(down) * self.scale


class SSF(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))
        with torch.no_grad():
            nn.init.normal_(self.scale, mean=1.0, std=0.02)
            nn.init.normal_(self.shift, std=0.02)

    def forward(self, x):
        return ssf_ada(x, self.scale, self.shift)


SSF_SITES = ("ln1", "qkv", "proj", "ln2", "fc1", "fc2")


class PetViT(nn.Module):
    """vit_ref.VisionTransformer plus PET. kinds: subset of {"adapter", "ssf", "vpt_deep",
    "vpt_shallow", "prefix"}; the backbone is frozen (requires_grad False)."""

    def __init__(self, vit, kinds, adapter_dim=64, adapter_scale=0.1, adapter_dropout=0.1,
                 vpt_tokens=5, prefix_len=0, prefix_layers=(), prefix_after_cls=False,
                 prefix_compensate=False, prefix_scales=False):
        super().__init__()
        self.vit = vit
        for p in self.vit.parameters():
            p.requires_grad_(False)
        self.kinds = set(kinds)
        dim = vit.norm.normalized_shape[0]
        depth = len(vit.blocks)
        hidden = vit.blocks[0].mlp.fc1.out_features
        self.heads = vit.blocks[0].attn.heads
        if "adapter" in self.kinds:
            self.adapters = nn.ModuleList(Adapter(dim, adapter_dim, adapter_dropout, adapter_scale)
                                          for _ in range(depth))
        if "ssf" in self.kinds:
            self.ssf_patch, self.ssf_norm = SSF(dim), SSF(dim)
            widths = {"ln1": dim, "qkv": 3 * dim, "proj": dim, "ln2": dim, "fc1": hidden,
                      "fc2": dim}
            self.ssf_blocks = nn.ModuleList(
                nn.ModuleDict({s: SSF(widths[s]) for s in SSF_SITES}) for _ in range(depth))
        self.vpt = "vpt_deep" if "vpt_deep" in self.kinds else (
            "vpt_shallow" if "vpt_shallow" in self.kinds else None)
        if self.vpt:
            n = depth if self.vpt == "vpt_deep" else 1
            self.prompts = nn.Parameter(torch.zeros(n, vpt_tokens, dim))
        self.prefix_layers = sorted(prefix_layers) if "prefix" in self.kinds else []
        self.prefix = nn.ParameterDict()
        self.prefix_len = prefix_len
        self.prefix_pos = 1 if prefix_after_cls else 0
        self.prefix_compensate = prefix_compensate
        self.prefix_scales = prefix_scales
        for l in self.prefix_layers:
            self.prefix[f"{l}_key"] = nn.Parameter(0.02 * torch.randn(prefix_len, dim))
            self.prefix[f"{l}_value"] = nn.Parameter(0.02 * torch.randn(prefix_len, dim))
            if prefix_scales:
                self.prefix[f"{l}_key_scale"] = nn.Parameter(torch.ones(1))
                self.prefix[f"{l}_value_scale"] = nn.Parameter(torch.ones(1))

    def pet_parameters(self):
        """{safecl name: Parameter}, names as src/model/pet_params.c lays them out."""
        out = {}
        if "ssf" in self.kinds:
            for where, m in (("patch", self.ssf_patch), ("norm", self.ssf_norm)):
                out[f"ssf.{where}.scale"], out[f"ssf.{where}.shift"] = m.scale, m.shift
            for i, d in enumerate(self.ssf_blocks):
                for s in SSF_SITES:
                    out[f"blocks.{i}.ssf.{s}.scale"] = d[s].scale
                    out[f"blocks.{i}.ssf.{s}.shift"] = d[s].shift
        if self.vpt:
            out["vpt.prompts"] = self.prompts
        if "adapter" in self.kinds:
            for i, a in enumerate(self.adapters):
                out[f"blocks.{i}.adapter.down.weight"] = a.down_proj.weight
                out[f"blocks.{i}.adapter.down.bias"] = a.down_proj.bias
                out[f"blocks.{i}.adapter.up.weight"] = a.up_proj.weight
                out[f"blocks.{i}.adapter.up.bias"] = a.up_proj.bias
        for l in self.prefix_layers:
            out[f"prefix.{l}.key"] = self.prefix[f"{l}_key"]
            out[f"prefix.{l}.value"] = self.prefix[f"{l}_value"]
            if self.prefix_scales:
                out[f"prefix.{l}.key_scale"] = self.prefix[f"{l}_key_scale"]
                out[f"prefix.{l}.value_scale"] = self.prefix[f"{l}_value_scale"]
        return out

    def set_adapter_masks(self, masks):
        """masks[i]: (B, N, adapter_dim) 0/1 tensor for block i, or None for torch's dropout."""
        for a, m in zip(self.adapters, masks):
            a.mask = m

    def _ssf(self, i, site, x):
        return self.ssf_blocks[i][site](x) if "ssf" in self.kinds else x

    def _attn(self, i, a, x):
        b, n, d = x.shape
        dh = d // self.heads
        qkv = self._ssf(i, "qkv", a.qkv(x))
        q, k, v = qkv.reshape(b, n, 3, self.heads, dh).permute(2, 0, 3, 1, 4).unbind(0)
        if i in self.prefix_layers:
            def heads(p):
                return p.reshape(1, -1, self.heads, dh).permute(0, 2, 1, 3).expand(b, -1, -1, -1)
            pk, pv = heads(self.prefix[f"{i}_key"]), heads(self.prefix[f"{i}_value"])
            if self.prefix_scales:
                pk = pk * self.prefix[f"{i}_key_scale"]
                pv = pv * self.prefix[f"{i}_value_scale"]
            s = self.prefix_pos
            k = torch.cat((k[:, :, :s], pk, k[:, :, s:]), dim=2)
            v = torch.cat((v[:, :, :s], pv, v[:, :, s:]), dim=2)
        attn = ((q @ k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
        if i in self.prefix_layers and self.prefix_compensate:
            s, e = self.prefix_pos, self.prefix_pos + self.prefix_len
            lam = attn[..., s:e].sum(dim=-1, keepdim=True).clamp(min=1e-12)
            attn = torch.cat((attn[..., :s], attn[..., s:e] / lam, attn[..., e:]), dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self._ssf(i, "proj", a.proj(x))

    def _block(self, i, blk, x):
        x = x + self._attn(i, blk.attn, self._ssf(i, "ln1", blk.norm1(x)))
        adapt_x = self.adapters[i](x) if "adapter" in self.kinds else None
        residual = x
        h = self._ssf(i, "fc1", blk.mlp.fc1(self._ssf(i, "ln2", blk.norm2(x))))
        h = self._ssf(i, "fc2", blk.mlp.fc2(F.gelu(h)))
        if adapt_x is not None:
            h = h + adapt_x
        return residual + h

    def forward(self, images):
        """Images (B, C, H, W) -> class token after the final LayerNorm (and SSF), (B, D)."""
        v = self.vit
        x = v.patch_embed(images)
        if "ssf" in self.kinds:
            x = self.ssf_patch(x)
        x = torch.cat((v.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + v.pos_embed
        t = self.prompts.shape[1] if self.vpt else 0
        if self.vpt == "vpt_shallow":
            x = torch.cat((x, self.prompts[0].expand(x.shape[0], -1, -1)), dim=1)
        for i, blk in enumerate(v.blocks):
            if self.vpt == "vpt_deep":
                x = torch.cat((x, self.prompts[i].expand(x.shape[0], -1, -1)), dim=1)
            x = self._block(i, blk, x)
            if self.vpt == "vpt_deep":
                x = x[:, :x.shape[1] - t]
        if self.vpt == "vpt_shallow":
            x = x[:, :x.shape[1] - t]
        x = v.norm(x)
        if "ssf" in self.kinds:
            x = self.ssf_norm(x)
        return x[:, 0]


class CosineHead(nn.Module):
    """CosineLinear (docs/methods.md b.5): sigma * normalize(x) normalize(W)^T, sigma learnable."""

    def __init__(self, dim, classes, sigma=10.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim).uniform_(-1 / math.sqrt(dim),
                                                                      1 / math.sqrt(dim)))
        self.sigma = nn.Parameter(torch.tensor(sigma))

    def forward(self, x):
        return self.sigma * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


@torch.no_grad()
def init_pet_random(model, seed):
    """Every PET tensor random and away from its released init (zeros would hide a missing
    gradient path: with W_up = 0 the adapter's down projection gets no gradient)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.pet_parameters().items():
        base = 1.0 if name.endswith("scale") else 0.0
        p.copy_(base + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
    return model
