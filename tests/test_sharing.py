"""Each sharing level: unique and virtual parameter counts made by hand, and real identity."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tinygen.speech.checkpoint import load_model
from tinygen.speech.config import ConformerConfig, LowRank, load_preset
from tinygen.speech.model import Conformer, LowRankLinear
from tinygen.speech.summary import macs, sharing_map, unique_params, virtual_params

# The four small share-* presets all use this geometry.
D, FF, C, K, MELS, VOCAB = 64, 256, 16, 15, 40, 29
F2 = ((MELS - 1) // 2 - 1) // 2  # mel bins left after two stride-2 3x3 convs: 9


def ln(d: int = D) -> int:
    return 2 * d  # gain + bias


def lin(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


FFN = ln() + lin(D, FF) + lin(FF, D)
ATTN = ln() + 4 * lin(D, D)
CONV = ln() + lin(D, 2 * D) + (D * K + D) + 2 * D + lin(D, D)  # ... dw conv, BN, pw2
NORM = ln()
BLOCK = 2 * FFN + ATTN + CONV + NORM
OUTSIDE = (1 * C * 9 + C) + (C * C * 9 + C) + lin(C * F2, D) + lin(D, VOCAB)


def test_hand_counts_match_the_geometry() -> None:
    cfg = load_preset("share-blocks")
    assert (cfg.d_model, cfg.ff_dim, cfg.subsample_channels, cfg.conv_kernel, cfg.n_mels,
            cfg.vocab_size) == (D, FF, C, K, MELS, VOCAB)


def test_level1_repeating_blocks() -> None:
    model = load_model("preset:share-blocks")  # block_order (0, 0, 1, 1)
    assert unique_params(model) == OUTSIDE + 2 * BLOCK
    assert virtual_params(model) == OUTSIDE + 4 * BLOCK
    assert len(model.blocks) == 2 and model.block_order == (0, 0, 1, 1)


def test_level1_interleaved_order_applies_blocks_in_that_order() -> None:
    cfg = dataclasses.replace(load_preset("share-blocks"), block_order=(0, 1, 0, 1))
    model = Conformer(cfg).eval()
    calls: list[int] = []
    for i, blk in enumerate(model.blocks):
        blk.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    model(torch.randn(1, 40, MELS))
    assert calls == [0, 1, 0, 1]
    assert unique_params(model) == OUTSIDE + 2 * BLOCK


def test_level2_sharing_one_module_kind() -> None:
    model = load_model("preset:share-modules")  # ffn_groups (0, 0, 0, 0)
    # One first-half FFN and one second-half FFN for all four blocks; attn/conv per block.
    assert unique_params(model) == OUTSIDE + 2 * FFN + 4 * (ATTN + CONV + NORM)
    assert virtual_params(model) == OUTSIDE + 4 * BLOCK
    b = model.blocks
    assert all(blk.ffn1 is b[0].ffn1 and blk.ffn2 is b[0].ffn2 for blk in b)
    assert b[0].ffn1 is not b[0].ffn2
    assert len({id(blk.attn) for blk in b}) == 4
    assert b[1].ffn1.w1.weight is b[0].ffn1.w1.weight  # the same Parameter, not a copy


def test_level2_partial_groups_and_attention() -> None:
    cfg = dataclasses.replace(load_preset("share-blocks"), block_order=(0, 1, 2, 3),
                              attn_groups=(0, 0, 1, 1), conv_groups=(0, 0, 0, 0))
    model = Conformer(cfg)
    assert unique_params(model) == OUTSIDE + 4 * (2 * FFN + NORM) + 2 * ATTN + CONV
    assert model.blocks[1].attn is model.blocks[0].attn
    assert model.blocks[2].attn is not model.blocks[0].attn


def test_level3_sharing_subcomponents() -> None:
    model = load_model("preset:share-subcomponents")  # macaron + attention k = v
    attn_kv = ln() + 3 * lin(D, D)  # q, one k/v projection, o
    assert unique_params(model) == OUTSIDE + 4 * (FFN + attn_kv + CONV + NORM)
    assert virtual_params(model) == OUTSIDE + 4 * BLOCK
    for blk in model.blocks:
        assert blk.ffn1 is blk.ffn2
        assert blk.attn.k is blk.attn.v and blk.attn.q is not blk.attn.k


@pytest.mark.parametrize("mode,distinct", [("qk", 3), ("kv", 3), ("qkv", 2), ("none", 4)])
def test_level3_attention_projection_modes(mode: str, distinct: int) -> None:
    cfg = dataclasses.replace(load_preset("share-blocks"), attn_proj_sharing=mode)
    model = Conformer(cfg)
    attn = model.blocks[0].attn
    assert len({id(attn.q), id(attn.k), id(attn.v), id(attn.o)}) == distinct
    assert unique_params(model) == OUTSIDE + 2 * (
        BLOCK - ATTN + ln() + distinct * lin(D, D))


def test_level4_lowrank_with_shared_factor() -> None:
    model = load_model("preset:share-lowrank")  # w1, w2, pw1 at rank 16, down shared
    r = 16
    ffn_own = ln() + (FF * r + FF) + (D * r + D)  # per-instance up factors and biases
    conv_own = CONV - lin(D, 2 * D) + (2 * D * r + 2 * D)
    shared = r * D + r * FF + r * D  # down factors of w1, w2, pw1
    assert unique_params(model) == OUTSIDE + 4 * (2 * ffn_own + ATTN + conv_own + NORM) + shared
    ffn_use = ffn_own + r * D + r * FF
    conv_use = conv_own + r * D
    assert virtual_params(model) == OUTSIDE + 4 * (2 * ffn_use + ATTN + conv_use + NORM)
    w1s = [blk.ffn1.w1 for blk in model.blocks] + [blk.ffn2.w1 for blk in model.blocks]
    assert all(isinstance(w, LowRankLinear) for w in w1s)
    assert all(w.down is w1s[0].down for w in w1s)  # one shared factor ...
    assert len({id(w.up) for w in w1s}) == 8  # ... and a per-layer one


def test_level4_per_layer_ranks_without_sharing() -> None:
    cfg = dataclasses.replace(
        load_preset("share-blocks"), block_order=(0, 1, 2, 3),
        lowrank=LowRank(targets=("attn.o",), ranks=(8, 16, 8, 32)))
    model = Conformer(cfg)
    ranks = [blk.attn.o.rank for blk in model.blocks]
    assert ranks == [8, 16, 8, 32]
    lowrank_o = sum(r * D + D * r + D for r in ranks)
    assert unique_params(model) == OUTSIDE + 4 * (BLOCK - lin(D, D)) + lowrank_o


def test_level4_shared_up_factor() -> None:
    cfg = dataclasses.replace(
        load_preset("share-blocks"), block_order=(0, 1),
        lowrank=LowRank(targets=("conv.pw2",), ranks=(8,), shared_factor="up"))
    model = Conformer(cfg)
    a, b = model.blocks[0].conv.pw2, model.blocks[1].conv.pw2
    assert a.up is b.up and a.down is not b.down
    assert unique_params(model) == OUTSIDE + 2 * (BLOCK - lin(D, D) + 8 * D + D) + D * 8


def test_all_levels_combined_in_mcu_tiny() -> None:
    cfg = load_preset("mcu-tiny")
    d, ff, r, c, k = 96, 384, 64, 32, 15
    f2 = ((cfg.n_mels - 1) // 2 - 1) // 2
    ffn = 2 * d + (ff * r + ff) + (d * r + d)  # low-rank, down factors shared
    attn = 2 * d + 4 * (d * d + d)
    conv = 2 * d + (d * 2 * d + 2 * d) + (d * k + d) + 2 * d + (d * d + d)
    block = ffn + attn + conv + 2 * d  # macaron pair shared
    outside = (c * 9 + c) + (c * c * 9 + c) + (c * f2 * d + d) + (d * 29 + 29)
    model = load_model("preset:mcu-tiny")
    assert unique_params(model) == outside + 2 * block + r * d + r * ff
    assert unique_params(model) <= 300_000
    baseline = load_model("preset:baseline-tiny")
    assert unique_params(model) * 2 <= unique_params(baseline)
    assert baseline.cfg.virtual_layers == cfg.virtual_layers
    assert baseline.cfg.d_model == cfg.d_model and baseline.cfg.ff_dim == cfg.ff_dim
    assert unique_params(baseline) == virtual_params(baseline)


def test_paper_5m_targets() -> None:
    model = load_model("preset:paper-5m")
    uniq, virt = unique_params(model), virtual_params(model)
    assert 4_500_000 <= uniq <= 5_500_000
    assert virt >= 2 * uniq


def test_sharing_map_names_groups_and_counts_uses() -> None:
    model = load_model("preset:mcu-tiny")
    smap = sharing_map(model)
    assert [row["block"] for row in smap.layers] == [0, 0, 0, 1, 1, 1]
    assert all(row["ffn1"] == row["ffn2"] for row in smap.layers)
    assert smap.groups["ffn.0"]["uses"] == 6  # 3 virtual layers x 2 macaron halves
    assert smap.groups["factor.ffn.w1.down"] == {"params": 64 * 96, "uses": 12}
    assert sum(g["params"] for g in smap.groups.values()) + sum(
        p.numel() for p in [*model.subsample.parameters(), *model.head.parameters()]
    ) == unique_params(model)


def test_macs_match_a_hand_count() -> None:
    model = load_model("preset:share-blocks")
    t_in = 101
    t1, f1 = (t_in - 3) // 2 + 1, (MELS - 3) // 2 + 1
    t2, f2 = (t1 - 3) // 2 + 1, (f1 - 3) // 2 + 1
    sub = t1 * f1 * C * 9 + t2 * f2 * C * C * 9 + t2 * (C * f2) * D
    ffn = t2 * (D * FF + FF * D)
    attn = t2 * 4 * D * D + 2 * t2 * t2 * D
    conv = t2 * (D * 2 * D + D * K + D * D)
    assert macs(model, t_in) == sub + 4 * (2 * ffn + attn + conv) + t2 * D * VOCAB


def test_forward_shapes_and_padding_mask() -> None:
    model = load_model("preset:share-subcomponents")
    x = torch.randn(2, 120, MELS)
    assert model(x).shape == (2, ((120 - 1) // 2 - 1) // 2, VOCAB)
    # A padded batch gives the same logits on the valid frames as the unpadded input.
    n = 77
    alone = model(x[:1, :n])
    padded = model(x[:1], lengths=torch.tensor([n]))
    t = alone.shape[1]
    assert t == int(model.output_lengths(torch.tensor(n)))
    torch.testing.assert_close(padded[:, :t], alone, atol=1e-4, rtol=1e-4)


def test_same_seed_same_weights() -> None:
    a, b = load_model("preset:mcu-tiny"), load_model("preset:mcu-tiny")
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)


def test_config_json_round_trip_for_every_preset() -> None:
    from tinygen.speech.config import preset_names

    names = preset_names()
    assert {"paper-5m", "mcu-tiny", "baseline-tiny", "share-blocks", "share-modules",
            "share-subcomponents", "share-lowrank"} <= set(names)
    for name in names:
        cfg = load_preset(name)
        assert ConformerConfig.from_json(cfg.to_json()) == cfg
