"""Conformers written the way their users write them: plain ``torch.nn``, no tinygen.

Three independent variants for the bring-your-own-model tests. Each shares weights in
both of the ways people do it: one block instance reused in a ``ModuleList``, and one
``nn.Parameter`` assigned to several layers. They are tiny (d_model 32, 40 mel features)
so that compiling and checking them takes seconds. ``factory`` functions are what
``tinygen build --module tests.byom_models:NAME`` calls.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

N_MELS = 40
FRAMES = 48


class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.up = nn.Linear(d, hidden)
        self.down = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.up(self.norm(x))))


class ConvModule(nn.Module):
    """torchaudio's Conformer convolution module: channels-first, GLU over dim 1."""

    def __init__(self, d: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise1 = nn.Conv1d(d, 2 * d, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=(kernel - 1) // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.act = nn.SiLU()
        self.pointwise2 = nn.Conv1d(d, d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x).transpose(1, 2)
        y = self.glu(self.pointwise1(y))
        y = self.act(self.bn(self.depthwise(y)))
        return self.pointwise2(y).transpose(1, 2)


# ---- variant 1: torchaudio style -------------------------------------------------------
class MHABlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ffn1 = FeedForward(d, 2 * d)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.conv = ConvModule(d, 5)
        self.ffn2 = FeedForward(d, 2 * d)
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        y = self.attn_norm(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        return self.out_norm(x)


class TorchaudioStyle(nn.Module):
    """CMVN buffers (a per-feature subtract and divide), Conv2d subsampling (stride 2,
    padding 1), nn.MultiheadAttention, two blocks applied twice each (ModuleList reuse),
    both FFN2s holding FFN1's up-projection weight (one Parameter, several layers), a
    log_softmax head."""

    def __init__(self, d: int = 32, vocab: int = 12) -> None:
        super().__init__()
        # global mean / variance normalisation of the features (CMVN), as buffers
        self.register_buffer("feat_mean", torch.linspace(-1.0, 1.0, N_MELS))
        self.register_buffer("feat_std", torch.linspace(0.5, 2.0, N_MELS))
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.proj = nn.Linear(8 * (N_MELS // 4), d)
        a, b = MHABlock(d, 4), MHABlock(d, 4)
        for blk in (a, b):
            blk.ffn2.up.weight = blk.ffn1.up.weight
        self.blocks = nn.ModuleList([a, b, a, b])
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.feat_mean) / self.feat_std
        x = F.relu(self.conv1(x.unsqueeze(1)))
        x = F.relu(self.conv2(x))
        b, c, t, f = x.shape
        x = self.proj(x.transpose(1, 2).reshape(b, t, c * f))
        for blk in self.blocks:
            x = blk(x)
        return F.log_softmax(self.head(x), dim=-1)


# ---- variant 2: fused qkv, hand-written attention ---------------------------------------
class FusedAttention(nn.Module):
    def __init__(self, d: int, heads: int, out_weight: nn.Parameter) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out_weight = out_weight  # shared across blocks, applied as x @ W.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for z in (q, k, v))
        q = q * (d // self.heads) ** -0.5
        att = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        return y @ self.out_weight.t()


class FusedBlock(nn.Module):
    def __init__(self, d: int, heads: int, out_weight: nn.Parameter) -> None:
        super().__init__()
        self.ffn1 = FeedForward(d, 3 * d)
        self.attn = FusedAttention(d, heads, out_weight)
        self.conv = ConvModule(d, 3)
        self.ffn2 = FeedForward(d, 3 * d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn(x)
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        return self.norm(x)


class FusedQKVStyle(nn.Module):
    """Conv1d subsampling (stride 2, padding 1), a sinusoidal position table sliced to the
    input length, fused-qkv attention with its scale multiply after chunk, one output
    projection Parameter shared by all three blocks (x @ W.t()), one block reused."""

    def __init__(self, d: int = 32, vocab: int = 10, max_len: int = 256) -> None:
        super().__init__()
        self.sub = nn.Conv1d(N_MELS, d, 3, stride=2, padding=1)
        out_weight = nn.Parameter(torch.randn(d, d) / math.sqrt(d))
        first, second = FusedBlock(d, 2, out_weight), FusedBlock(d, 2, out_weight)
        self.blocks = nn.ModuleList([first, second, first])
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.sub(x.transpose(1, 2))).transpose(1, 2)
        x = x + self.pe[:, : x.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return torch.log_softmax(self.head(x), dim=-1)


# ---- variant 3: ESPnet style, relative positions ------------------------------------------
class RelPositionAttention(nn.Module):
    """ESPnet's RelPositionMultiHeadedAttention (Transformer-XL style) with rel_shift."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.h, self.d_k = heads, d // heads
        self.linear_q = nn.Linear(d, d)
        self.linear_k = nn.Linear(d, d)
        self.linear_v = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.pos_bias_u = nn.Parameter(torch.randn(heads, self.d_k) * 0.1)
        self.pos_bias_v = nn.Parameter(torch.randn(heads, self.d_k) * 0.1)

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        zero_pad = torch.zeros((*x.size()[:3], 1), device=x.device, dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=-1)
        x_padded = x_padded.view(*x.size()[:2], x.size(3) + 1, x.size(2))
        return x_padded[:, :, 1:].view_as(x)[:, :, :, : x.size(-1) // 2 + 1]

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(1, -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        ac = q_u @ k.transpose(-2, -1)
        bd = self.rel_shift(q_v @ p.transpose(-2, -1))
        att = torch.softmax((ac + bd) / math.sqrt(self.d_k), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(y)


class RelPosBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ffn1 = FeedForward(d, 2 * d)
        self.norm = nn.LayerNorm(d)
        self.attn = RelPositionAttention(d, heads)
        self.conv = ConvModule(d, 3)
        self.ffn2 = FeedForward(d, 2 * d)
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn(self.norm(x), pos_emb)
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        return self.out_norm(x)


class ESPnetStyle(nn.Module):
    """Conv2d subsampling without padding, relative positional encoding (rel_shift), one
    block applied three times, its two FFNs holding one down-projection Parameter."""

    def __init__(self, d: int = 32, vocab: int = 16) -> None:
        super().__init__()
        self.d = d
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        self.proj = nn.Linear(4 * ((N_MELS - 3) // 2 + 1), d)
        block = RelPosBlock(d, 4)
        block.ffn2.down.weight = block.ffn1.down.weight
        self.blocks = nn.ModuleList([block, block, block])
        self.head = nn.Linear(d, vocab)

    def rel_pos(self, t: int) -> torch.Tensor:
        pos = torch.arange(t - 1, -t, -1.0).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d, 2) * (-math.log(10000.0) / self.d))
        pe = torch.zeros(2 * t - 1, self.d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        return pe.unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x.unsqueeze(1)))
        b, c, t, f = x.shape
        x = self.proj(x.transpose(1, 2).reshape(b, t, c * f))
        pos_emb = self.rel_pos(t)
        for blk in self.blocks:
            x = blk(x, pos_emb)
        return F.log_softmax(self.head(x), dim=-1)


def _init(model: nn.Module, seed: int) -> nn.Module:
    """Deterministic weights with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.7, 1.3)
    return model.eval()


def torchaudio_style() -> nn.Module:
    torch.manual_seed(1)
    return _init(TorchaudioStyle(), 11)


def fused_qkv_style() -> nn.Module:
    torch.manual_seed(2)
    return _init(FusedQKVStyle(), 12)


def espnet_style() -> nn.Module:
    torch.manual_seed(3)
    return _init(ESPnetStyle(), 13)


FACTORIES = {"torchaudio_style": torchaudio_style, "fused_qkv_style": fused_qkv_style,
             "espnet_style": espnet_style}
