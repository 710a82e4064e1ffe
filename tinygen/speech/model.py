"""A Conformer encoder with a CTC head, whose weights are shared at four levels.

Sharing is real: a shared weight is one ``nn.Parameter`` object referenced from every
place that uses it, never a copy. ``model.parameters()`` therefore counts it once,
``torch.export`` sees one tensor, and the compiler stores it once in flash.

Shapes in comments: B batch, T frames, F mel bins, D d_model, H heads, K kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tinygen.speech.config import SUBSAMPLE, SUBSAMPLE_PAD, ConformerConfig
from tinygen.speech.features import silence_value


# ------------------------------------------------------------------ linear layers
class LowRankLinear(nn.Module):
    """y = x @ down.T @ up.T + bias; either factor may be a Parameter shared elsewhere."""

    def __init__(self, down: nn.Parameter, up: nn.Parameter, bias: bool = True) -> None:
        super().__init__()
        self.down = down  # (r, d_in)
        self.up = up  # (d_out, r)
        d_out = up.shape[0]
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.down.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.up.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.down)  # (..., r)
        return F.linear(h, self.up, self.bias)  # (..., d_out)


def _factor(rows: int, cols: int, gen: torch.Generator | None = None) -> nn.Parameter:
    """A factor initialised like nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(cols)
    w = torch.empty(rows, cols).uniform_(-bound, bound, generator=gen)
    return nn.Parameter(w)


class _LinearFactory:
    """Makes the Linear for a role, low-rank and with a shared factor when configured."""

    def __init__(self, cfg: ConformerConfig, shared: nn.ParameterDict) -> None:
        self.cfg = cfg
        self.shared = shared
        self.group_names: dict[str, str] = {}  # ParameterDict key -> "factor.<role>.<which>"

    def __call__(self, role: str, block: int) -> nn.Module:
        d_in, d_out = self.cfg.linear_shape(role)
        lr = self.cfg.lowrank
        if role not in lr.targets:
            return nn.Linear(d_in, d_out)
        r = lr.rank_for(block)
        key = role.replace(".", "_") + "_" + lr.shared_factor
        if lr.shared_factor != "none" and key not in self.shared:
            shape = (r, d_in) if lr.shared_factor == "down" else (d_out, r)
            self.shared[key] = _factor(*shape)
            self.group_names[key] = f"factor.{role}.{lr.shared_factor}"
        down = self.shared[key] if lr.shared_factor == "down" else _factor(r, d_in)
        up = self.shared[key] if lr.shared_factor == "up" else _factor(d_out, r)
        return LowRankLinear(down, up)


# ------------------------------------------------------------------------ modules
class FeedForward(nn.Module):
    """LayerNorm -> Linear (D -> ff) -> SiLU -> Linear (ff -> D)."""

    def __init__(self, cfg: ConformerConfig, make: _LinearFactory, block: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.w1 = make("ffn.w1", block)
        self.w2 = make("ffn.w2", block)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        h = F.silu(self.w1(self.norm(x)))  # (B, T, ff)
        return self.w2(self.dropout(h))  # (B, T, D)


class SelfAttention(nn.Module):
    """LayerNorm -> multi-head scaled dot-product attention, no positional term.

    Position reaches the encoder through the subsampling convolutions and the
    depthwise convolution of every block (docs/model.md says why).
    """

    def __init__(self, cfg: ConformerConfig, make: _LinearFactory, block: int) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm = nn.LayerNorm(cfg.d_model)
        made: dict[str, nn.Module] = {}
        for group in cfg.attn_proj_groups():  # projections that are one Linear
            shared = make(group[0], block)
            made.update({role: shared for role in group})
        for role in ("attn.q", "attn.k", "attn.v", "attn.o"):
            if role not in made:
                made[role] = make(role, block)
        self.q, self.k, self.v, self.o = (made[f"attn.{n}"] for n in "qkvo")
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D). ``mask`` (B, T, T) or (B, 1, T): True = may not attend."""
        h = self.norm(x)  # (B, T, D)
        return self.attend(self.q(h), self.k(h), self.v(h), mask)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        """Projected queries (B, T, D) over keys/values (B, S, D) -> (B, T, D)."""
        b, t, d = q.shape
        s = k.shape[1]
        dh = d // self.n_heads
        q = q.view(b, t, self.n_heads, dh).transpose(1, 2)  # (B, H, T, dh)
        k = k.view(b, s, self.n_heads, dh).transpose(1, 2)  # (B, H, S, dh)
        v = v.view(b, s, self.n_heads, dh).transpose(1, 2)  # (B, H, S, dh)
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(dh))  # (B, H, T, S)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, :, :], -1e4)
        attn = self.dropout(torch.softmax(scores, dim=-1))  # (B, H, T, S)
        ctx = torch.matmul(attn, v)  # (B, H, T, dh)
        ctx = ctx.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.o(ctx)


class ConvModule(nn.Module):
    """LayerNorm -> pointwise D->2D -> GLU -> depthwise conv -> BatchNorm -> SiLU -> pointwise."""

    def __init__(self, cfg: ConformerConfig, make: _LinearFactory, block: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm = nn.LayerNorm(d)
        self.pw1 = make("conv.pw1", block)
        # Streaming models look only back: K-1 frames of left padding (or the cache), none
        # to the right. The weights are the same shape either way.
        self.causal = cfg.streaming
        self.kernel = cfg.conv_kernel
        self.dw = nn.Conv1d(d, d, cfg.conv_kernel, padding=0 if self.causal
                            else cfg.conv_kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = make("conv.pw2", block)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.gated(x)  # (B, T, D)
        if pad_mask is not None:  # keep padding out of the convolution window
            h = h.masked_fill(pad_mask[:, :, None], 0.0)
        if self.causal:
            h = F.pad(h, (0, 0, self.kernel - 1, 0))  # (B, K-1+T, D): zeros before frame 0
        return self.finish(h)

    def gated(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm -> pointwise -> GLU: (B, T, D) -> (B, T, D), the depthwise input."""
        return F.glu(self.pw1(self.norm(x)), dim=-1)

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """Depthwise conv (VALID in time when causal) -> BN -> SiLU -> pointwise."""
        h = h.transpose(1, 2)  # (B, D, T)
        h = F.silu(self.bn(self.dw(h)))  # (B, D, T')
        h = h.transpose(1, 2)  # (B, T', D)
        return self.dropout(self.pw2(h))


class ConformerBlock(nn.Module):
    """x + ½FFN -> x + MHSA -> x + Conv -> x + ½FFN -> LayerNorm (macaron style)."""

    def __init__(self, ffn1: FeedForward, attn: SelfAttention, conv: ConvModule,
                 ffn2: FeedForward, d_model: int) -> None:
        super().__init__()
        self.ffn1 = ffn1
        self.attn = attn
        self.conv = conv
        self.ffn2 = ffn2  # the same object as ffn1 when the macaron pair is shared
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D). pad_mask (B, T): True on padding frames; attn_mask
        (B, T, T) or (B, 1, T): True where a query may not attend to a key."""
        x = x + 0.5 * self.ffn1(x)  # (B, T, D)
        x = x + self.attn(x, attn_mask)
        x = x + self.conv(x, pad_mask)
        x = x + 0.5 * self.ffn2(x)
        return self.norm(x)


class Subsampling(nn.Module):
    """Two 3x3 stride-2 Conv2d with ReLU (4x fewer frames), then a Linear to D.

    A streaming model puts SUBSAMPLE_PAD silence frames in front of the features, so that
    encoder frame j sees log-mel frames 4j-3 .. 4j+3 and every 4 new frames complete one
    encoder frame: T frames give T // 4.
    """

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        c = cfg.subsample_channels
        self.conv1 = nn.Conv2d(1, c, 3, stride=2)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2)
        self.proj = nn.Linear(c * cfg.subsampled_mels(), cfg.d_model)
        self.pad = SUBSAMPLE_PAD if cfg.streaming else 0
        self.silence = silence_value()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T', D)
        h = feats.unsqueeze(1)  # (B, 1, T, F)
        if self.pad:
            h = F.pad(h, (0, 0, self.pad, 0), value=self.silence)  # (B, 1, 3+T, F)
        h = F.relu(self.conv1(h))  # (B, C, T/2, F/2)
        return self.project(F.relu(self.conv2(h)))  # (B, T', D)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C, T', F') conv2 output -> (B, T', D)."""
        b, c, t, f = h.shape
        h = h.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, T', C*F')
        return self.proj(h)


# -------------------------------------------------------------------------- model
class Conformer(nn.Module):
    """Log-mel frames in, CTC logits out. ``block_order`` maps virtual layer -> block."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.subsample = Subsampling(cfg)
        # Low-rank factors shared by every instance of a role (level 4).
        self.shared_factors = nn.ParameterDict()
        make = _LinearFactory(cfg, self.shared_factors)
        self.factor_groups = make.group_names
        # Module instances (level 2): instance i of a slot serves every block in its group.
        # The two macaron FFNs keep separate pools unless they are shared (level 3).
        pools: dict[str, dict[int, nn.Module]] = {"ffn1": {}, "ffn2": {}, "attn": {}, "conv": {}}
        ctor = {"ffn": FeedForward, "attn": SelfAttention, "conv": ConvModule}
        blocks = []
        for b in range(cfg.unique_blocks):
            mods: dict[str, nn.Module] = {}
            for slot in ("ffn1", "attn", "conv", "ffn2"):
                kind = slot.rstrip("12")
                if slot == "ffn2" and cfg.share_macaron:
                    mods[slot] = mods["ffn1"]
                    continue
                inst = cfg.module_groups(kind)[b]
                if inst not in pools[slot]:
                    pools[slot][inst] = ctor[kind](cfg, make, b)
                mods[slot] = pools[slot][inst]
            blocks.append(ConformerBlock(mods["ffn1"], mods["attn"], mods["conv"],
                                         mods["ffn2"], cfg.d_model))
        self.blocks = nn.ModuleList(blocks)
        self.block_order = tuple(cfg.block_order)  # virtual layer -> unique block (level 1)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if self.cfg.streaming:
            return lengths // SUBSAMPLE
        return ((lengths - 1) // 2 - 1) // 2

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, n_mels) log-mel -> (B, T', vocab) CTC logits.

        T' = ((T-1)//2-1)//2, or T // 4 for a streaming model, whose attention is limited
        to each frame's chunk and ``left_chunks`` chunks before it (the chunk-masked full
        pass that stepping reproduces)."""
        x = self.subsample(feats)  # (B, T', D)
        pad_mask = None
        if lengths is not None:
            out_len = self.output_lengths(lengths)
            pad_mask = torch.arange(x.shape[1], device=x.device)[None, :] >= out_len[:, None]
        attn_mask = None if pad_mask is None else pad_mask[:, None, :]  # (B, 1, T')
        if self.cfg.streaming:
            chunks = chunk_mask(x.shape[1], self.cfg.chunk_frames, self.cfg.left_chunks,
                                x.device)[None]  # (1, T', T')
            attn_mask = chunks if attn_mask is None else attn_mask | chunks
        for b in self.block_order:  # V virtual layers over U unique blocks
            x = self.blocks[b](x, pad_mask, attn_mask)
        return self.head(x)  # (B, T', vocab)


def chunk_mask(frames: int, chunk: int, left_chunks: int,
               device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bool, True where query frame i may NOT attend to key frame j: j must lie in
    i's chunk or in one of the ``left_chunks`` chunks before it."""
    c = torch.arange(frames, device=device) // chunk  # chunk index per frame
    rel = c[:, None] - c[None, :]  # (T, T): how many chunks back key j is
    return (rel < 0) | (rel > left_chunks)


def build_model(cfg: ConformerConfig, seed: int = 0) -> Conformer:
    """A randomly initialised model; the same seed and config give the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Conformer(cfg)
    model.eval()
    return model
