"""T2T-ViT (Yuan et al., ICCV 2021) as JEI-DNN uses it (docs/papers/jeidnn.md §1): the performer tokens-to-token
module, fixed sinusoidal positions, pre-norm transformer blocks, and the official checkpoint's key names.

Written here rather than taken from timm: timm has no T2T-ViT, and the checkpoint's names (``tokens_to_token.*``,
``blocks.N.attn.qkv``…) and two details must match exactly: the attention scale is head_dim^-0.5 (1/8 for
T2T-ViT-7; the upstream factory's 256^-0.5 applies only to its ``pretrained=True`` path, which neither original
uses), and each performer's random feature matrix ``w`` is a frozen parameter that is loaded, not re-sampled.

``t2t_vit_7(num_classes)`` and ``t2t_vit_14(num_classes)`` are the named variants (registered in ``VARIANTS``);
``T2TViT(...)`` takes any size (the quick profile's small backbone is one). ``forward_blocks`` yields the class token
after each block, which the dynamic network uses for its exits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.registry import Registry


class TokenPerformer(nn.Module):
    """One-head performer attention with m = kernel_ratio·emb positive random features; the residual is taken
    from v (input and output widths differ), then x + MLP(LN x)."""

    def __init__(self, dim: int, in_dim: int, kernel_ratio: float = 0.5, dropout: float = 0.1):
        super().__init__()
        self.emb = in_dim
        self.kqv = nn.Linear(dim, 3 * self.emb)
        self.dp = nn.Dropout(dropout)
        self.proj = nn.Linear(self.emb, self.emb)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(self.emb)
        self.epsilon = 1e-8
        self.mlp = nn.Sequential(
            nn.Linear(self.emb, self.emb), nn.GELU(), nn.Linear(self.emb, self.emb), nn.Dropout(dropout)
        )
        self.m = int(self.emb * kernel_ratio)
        self.w = nn.Parameter(
            nn.init.orthogonal_(torch.empty(self.m, self.emb)) * math.sqrt(self.m), requires_grad=False
        )

    def prm_exp(self, x: torch.Tensor) -> torch.Tensor:
        """exp(wᵀx − |x|²/2)/√m, the positive random features of the softmax kernel."""
        half_norm = (x * x).sum(-1, keepdim=True) / 2
        return torch.exp(x @ self.w.T - half_norm) / math.sqrt(self.m)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)
        kp, qp = self.prm_exp(k), self.prm_exp(q)  # (B, T, m)
        normaliser = qp @ kp.sum(1).unsqueeze(-1)  # (B, T, 1)
        kptv = v.transpose(1, 2) @ kp  # (B, emb, m)
        y = (qp @ kptv.transpose(1, 2)) / (normaliser + self.epsilon)  # (B, T, emb)
        return v + self.dp(self.proj(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SoftSplit(nn.Module):
    """``nn.Unfold``'s overlapping k×k patches (stride, zero padding), returned as tokens (B, L, C·k·k) in its
    order (channel, then kernel row, then column), bit for bit (tested). Written as strided views and one copy
    rather than ``nn.Unfold`` and a transpose, whose im2col and the copy that makes its output contiguous were a
    fifth of the tokens-to-token time (torch.profiler). Measured on the quick model, one core, batch 64: tokens
    8.1 → 6.0 ms, whole backbone 12.8 → 11.5 ms; at batch 1 no change."""

    def __init__(self, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size, self.stride, self.padding
        x = nn.functional.pad(x, (p, p, p, p))
        b, c = x.shape[:2]
        patches = x.unfold(2, k, s).unfold(3, k, s)  # (B, C, H', W', k, k), a view
        return patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * k * k)


class TokensToToken(nn.Module):
    """Soft split 7×7/4 → performer → soft split 3×3/2 → performer → soft split 3×3/2 → Linear: image/16 patches."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 256, token_dim: int = 64):
        super().__init__()
        self.soft_split0 = SoftSplit(kernel_size=7, stride=4, padding=2)
        self.soft_split1 = SoftSplit(kernel_size=3, stride=2, padding=1)
        self.soft_split2 = SoftSplit(kernel_size=3, stride=2, padding=1)
        self.attention1 = TokenPerformer(in_chans * 49, token_dim)
        self.attention2 = TokenPerformer(token_dim * 9, token_dim)
        self.project = nn.Linear(token_dim * 9, embed_dim)

    @staticmethod
    def _to_image(x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        side = math.isqrt(n)
        return x.transpose(1, 2).reshape(b, c, side, side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention1(self.soft_split0(x))
        x = self.attention2(self.soft_split1(self._to_image(x)))
        return self.project(self.soft_split2(self._to_image(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5  # 1/8 for T2T-ViT-7 (see the module docstring)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj_drop(self.proj((self.attn_drop(attn) @ v).transpose(1, 2).reshape(b, n, c)))


class DropPath(nn.Module):
    """Stochastic depth per sample (the residual branch is dropped with probability p while training)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2, self.drop = (
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """The fixed table of "Attention is all you need": sin on even, cos on odd features; (1, positions, dim)."""
    pos = np.arange(positions)[:, None]
    angle = pos / np.power(10000, 2 * (np.arange(dim) // 2) / dim)
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.tensor(table, dtype=torch.float32).unsqueeze(0)


class T2TViT(nn.Module):
    def __init__(
        self,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 256,
        depth: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        token_dim: int = 64,
        drop_path_rate: float = 0.1,
    ):
        super().__init__()
        if img_size % 16:
            raise ValueError(f"img_size must be a multiple of 16 (three soft splits of stride 4, 2, 2), got {img_size}")
        self.img_size, self.embed_dim, self.num_classes = img_size, embed_dim, num_classes
        self.tokens_to_token = TokensToToken(in_chans, embed_dim, token_dim)
        self.num_patches = (img_size // 16) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sinusoid_table(self.num_patches + 1, embed_dim), requires_grad=False)
        self.pos_drop = nn.Dropout(0.0)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image → the token sequence entering block 0 (class token first, positions added)."""
        x = self.tokens_to_token(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        return self.pos_drop(x + self.pos_embed)

    def forward_blocks(self, x: torch.Tensor):
        """Yields the token sequence after each block."""
        x = self.tokens(x)
        for block in self.blocks:
            x = block(x)
            yield x

    def classify(self, tokens: torch.Tensor) -> torch.Tensor:
        """The head on the normalised class token."""
        return self.head(self.norm(tokens[:, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for tokens in self.forward_blocks(x):  # noqa: B007 (the last block's output is the one classified)
            pass
        return self.classify(tokens)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


VARIANTS: Registry = Registry("T2T-ViT variant")  # name -> factory(num_classes, img_size, **T2TViT keywords)


@VARIANTS.register("t2t_vit_7")
def t2t_vit_7(num_classes: int = 1000, img_size: int = 224, **kw) -> T2TViT:
    return T2TViT(img_size, num_classes=num_classes, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0, **kw)


@VARIANTS.register("t2t_vit_14")
def t2t_vit_14(num_classes: int = 1000, img_size: int = 224, **kw) -> T2TViT:
    return T2TViT(img_size, num_classes=num_classes, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0, **kw)


def resize_pos_embed(table: torch.Tensor, patches: int) -> torch.Tensor:
    """The checkpoint's (1, 1 + g², d) table for ``patches`` = h² positions: the class entry kept, the g × g grid
    resized bicubically (as the original's utils.resize_pos_embed)."""
    cls, grid = table[:, :1], table[0, 1:]
    old, new = math.isqrt(grid.shape[0]), math.isqrt(patches)
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], 1)


def load_pretrained(model: T2TViT, path: str | Path, keep_head: bool = False) -> dict:
    """Load an official T2T-ViT checkpoint (e.g. ``71.7_T2T_ViT_7.pth.tar``): the EMA weights when the file has
    them (``state_dict_ema``), else ``state_dict`` (or the file itself); ``module.`` prefixes stripped; the head
    dropped unless ``keep_head`` (and its shape fits); the position table resized to the model's image size. The
    performers' ``w`` come from the file. Returns what was done: missing/unexpected keys and the resize."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"T2T-ViT checkpoint {path} not found; give the path of the official "
            f"71.7_T2T_ViT_7.pth.tar (or your own checkpoint with the same key names)"
        )
    saved = torch.load(path, map_location="cpu", weights_only=False)
    source = "file"
    if isinstance(saved, dict):
        for key in ("state_dict_ema", "state_dict", "model"):
            if key in saved and isinstance(saved[key], dict):
                saved, source = saved[key], key
                break
    state = {k.removeprefix("module."): v for k, v in saved.items()}
    report = {"source": source, "resized_pos_embed": None}
    if not keep_head or state.get("head.weight", torch.empty(0)).shape != model.head.weight.shape:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    table = state.get("pos_embed")
    if table is not None and table.shape != model.pos_embed.shape:
        state["pos_embed"] = resize_pos_embed(table, model.num_patches)
        report["resized_pos_embed"] = [list(table.shape), list(model.pos_embed.shape)]
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(
            f"{path}: checkpoint does not fit {type(model).__name__} (shapes differ: {mismatched[:3]}…); "
            f"is it the checkpoint of another variant?"
        )
    result = model.load_state_dict(state, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: checkpoint does not fit {type(model).__name__} (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    report["head_loaded"] = not any(k.startswith("head.") for k in result.missing_keys)
    return report
