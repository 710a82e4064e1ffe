"""Counts that describe a model: unique vs virtual parameters, MACs, and who shares what."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import torch
from torch import nn

from tinygen.speech.model import Conformer, LowRankLinear, SelfAttention

SLOTS = ("ffn1", "attn", "conv", "ffn2", "norm")


def unique_params(model: nn.Module) -> int:
    """Parameters stored: each nn.Parameter object counted once."""
    return sum(p.numel() for p in model.parameters())


def virtual_params(model: Conformer) -> int:
    """Parameters applied in one forward pass, a shared one counted at every use.

    This is the size of the same network with nothing shared (low-rank factors kept).
    """
    outside = sum(p.numel() for p in model.subsample.parameters())
    outside += sum(p.numel() for p in model.head.parameters())
    per_block = [sum(p.numel() for _, p in blk.named_parameters(remove_duplicate=False))
                 for blk in model.blocks]
    return outside + sum(per_block[b] for b in model.block_order)


def count_macs(model: nn.Module, run: Callable[[], Any]) -> int:
    """Multiply-accumulates of the layers ``run()`` calls: Linear, low-rank Linear, conv
    (per output element, kernel volume x input channels per group), and attention
    (scores QK^T and context AV: 2 x queries x keys x D)."""
    total = 0

    def count(mod: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(mod, nn.Linear):
            total += x.numel() // mod.in_features * mod.in_features * mod.out_features
        elif isinstance(mod, LowRankLinear):
            rows = x.numel() // mod.in_features
            total += rows * mod.rank * (mod.in_features + mod.out_features)
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            per_out = mod.in_channels // mod.groups
            for k in mod.kernel_size:
                per_out *= k
            total += out.numel() * per_out

    attend = SelfAttention.attend

    def counted_attend(self: SelfAttention, q: torch.Tensor, k: torch.Tensor,
                       v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        nonlocal total
        b, t, d = q.shape
        total += 2 * b * t * k.shape[1] * d  # scores (QK^T) and context (AV)
        return attend(self, q, k, v, mask)

    kinds = (nn.Linear, LowRankLinear, nn.Conv1d, nn.Conv2d)
    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad(), patch.object(SelfAttention, "attend", counted_attend):
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def macs(model: Conformer, frames: int) -> int:
    """Multiply-accumulates of one forward pass over ``frames`` log-mel frames."""
    return count_macs(model, lambda: model(torch.zeros(1, frames, model.cfg.n_mels)))


def macs_per_second_of_audio(model: Conformer) -> int:
    cfg = model.cfg
    frames = round(cfg.frames_per_second)
    return macs(model, frames)


@dataclass
class SharingMap:
    """Which parameter group each virtual layer's modules use."""

    groups: dict[str, dict[str, int]]  # group -> {"params": n, "uses": k}
    layers: list[dict[str, Any]]  # one entry per virtual layer

    def to_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "layers": self.layers}


def sharing_map(model: Conformer) -> SharingMap:
    """Name every module instance and shared factor, and list its users per virtual layer.

    A group's ``params`` excludes shared low-rank factors, which are groups of their own
    (``factor.<role>.<down|up>``).
    """
    factor_names = {id(p): model.factor_groups[k] for k, p in model.shared_factors.items()}
    names: dict[int, str] = {}
    counters: Counter[str] = Counter()
    params: dict[str, int] = {}

    def name_of(kind: str, mod: nn.Module) -> str:
        if id(mod) not in names:
            names[id(mod)] = f"{kind}.{counters[kind]}"
            counters[kind] += 1
            params[names[id(mod)]] = sum(
                p.numel() for p in mod.parameters() if id(p) not in factor_names)
        return names[id(mod)]

    uses: Counter[str] = Counter()
    layers = []
    for layer, b in enumerate(model.block_order):
        blk = model.blocks[b]
        entry: dict[str, Any] = {"layer": layer, "block": b}
        for slot in SLOTS:
            kind = "ffn" if slot.startswith("ffn") else slot
            group = name_of(kind, getattr(blk, slot))
            entry[slot] = group
            uses[group] += 1
        factor_uses = Counter(factor_names[id(p)] for _, p in
                              blk.named_parameters(remove_duplicate=False)
                              if id(p) in factor_names)
        uses.update(factor_uses)
        entry["factors"] = sorted(factor_uses)
        layers.append(entry)
    for p in model.shared_factors.values():
        params[factor_names[id(p)]] = p.numel()
    groups = {g: {"params": params[g], "uses": uses[g]} for g in params}
    return SharingMap(groups=groups, layers=layers)


def describe(model: Conformer) -> dict[str, Any]:
    """The JSON object that ``tinygen info --json`` prints."""
    cfg = model.cfg
    uniq = unique_params(model)
    virt = virtual_params(model)
    return {
        "name": cfg.name,
        "unique_params": uniq,
        "virtual_params": virt,
        "sharing_ratio": round(virt / uniq, 3),
        "virtual_layers": cfg.virtual_layers,
        "unique_blocks": cfg.unique_blocks,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "ff_dim": cfg.ff_dim,
        "n_mels": cfg.n_mels,
        "vocab_size": cfg.vocab_size,
        "int8_weight_bytes_estimate": uniq,
        "macs_per_second_of_audio": macs_per_second_of_audio(model),
        "sharing": sharing_map(model).to_dict(),
        "config": cfg.to_dict(),
    }
