"""Impossible configs are refused with a message that names the setting."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tinygen.errors import ConfigError, PresetError
from tinygen.speech.config import ConformerConfig, LowRank, load_preset


def base(**changes: Any) -> ConformerConfig:
    return dataclasses.replace(load_preset("share-blocks"), **changes)


@pytest.mark.parametrize("changes,needle", [
    ({"block_order": ()}, "zero layers"),
    ({"n_heads": 5}, "does not divide d_model"),
    ({"d_model": 0}, "d_model = 0"),
    ({"conv_kernel": 4}, "even"),
    ({"block_order": (0, 2)}, "skips unique block"),
    ({"block_order": (0, -1)}, "negative"),
    ({"ffn_groups": (0, 0, 0)}, "ffn_groups has 3 entries"),
    ({"attn_groups": (0, 2)}, "skips an instance"),
    ({"attn_proj_sharing": "qv"}, "attn_proj_sharing"),
    ({"lowrank": LowRank(targets=("ffn.w1",), ranks=(65,))}, "outside 1..min(d_in, d_out)"),
    ({"lowrank": LowRank(targets=("ffn.w1",), ranks=(0,))}, "rank 0"),
    ({"lowrank": LowRank(targets=("head",), ranks=(4,))}, "not a Linear role"),
    ({"lowrank": LowRank(targets=("ffn.w1",), ranks=(4, 8, 8))}, "ranks has 3 entries"),
    ({"lowrank": LowRank(targets=("ffn.w1",), ranks=(4, 8), shared_factor="down")},
     "needs one rank"),
    ({"lowrank": LowRank(targets=("ffn.w1",), ranks=(4,), shared_factor="left")},
     "shared_factor"),
    ({"ffn_groups": (0, 0), "lowrank": LowRank(targets=("ffn.w1",), ranks=(4, 8))},
     "share one ffn module"),
    ({"attn_proj_sharing": "qk", "lowrank": LowRank(targets=("attn.q",), ranks=(4,))},
     "split the shared projections"),
    ({"vocab": "aa"}, "vocab"),
])
def test_impossible_config_is_refused(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        base(**changes).validate()
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_from_dict_rejects_unknown_fields_and_wrong_types() -> None:
    data = load_preset("mcu-tiny").to_dict()
    with pytest.raises(ConfigError, match="unknown config field"):
        ConformerConfig.from_dict({**data, "d_modle": 3})
    with pytest.raises(ConfigError, match="d_model must be int"):
        ConformerConfig.from_dict({**data, "d_model": "96"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        ConformerConfig.from_json("{")
    with pytest.raises(ConfigError, match="unknown lowrank field"):
        ConformerConfig.from_dict({**data, "lowrank": {"rank": 3}})


def test_json_is_plain_and_stable() -> None:
    cfg = load_preset("mcu-tiny")
    data = json.loads(cfg.to_json())
    assert data["block_order"] == [0, 0, 0, 1, 1, 1]
    assert data["lowrank"]["shared_factor"] == "down"
    assert cfg.to_json() == ConformerConfig.from_json(cfg.to_json()).to_json()


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(PresetError, match=r"unknown preset 'nope'.*mcu-tiny"):
        load_preset("nope")


HUGE = [
    ({"d_model": 10**9}, "d_model = 1000000000"),
    ({"subsample_channels": 10**5}, "subsample_channels = 100000"),
    ({"n_fft": 10**9}, "n_fft = 1000000000"),
    ({"sample_rate": 10**9}, "sample_rate = 1000000000"),
    ({"ff_dim": 10**7}, "ff_dim = 10000000"),
    ({"d_model": 2048, "ff_dim": 8192, "n_heads": 4}, "parameters before sharing"),
    ({"block_order": [0] * 100_000}, "100,000 entries"),
    ({"block_order": "0123"}, "must be a list of integers"),
    ({"block_order": [0, 1.5]}, "must be a list of integers"),
    ({"ffn_groups": [True]}, "must be a list of integers"),
    ({"lowrank": {"targets": "ffn.w1", "ranks": [4]}}, "list of role names"),
    ({"n_fft": 256, "win_length": 256, "n_mels": 200}, "frequency bins"),
    ({"name": "x" * 65}, "65 characters"),
]


@pytest.mark.parametrize("changes,needle", HUGE)
def test_huge_or_mistyped_values_are_refused_before_any_allocation(
        changes: dict[str, Any], needle: str) -> None:
    import resource
    import time

    data = {**load_preset("share-blocks").to_dict(), **changes}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        ConformerConfig.from_dict(json.loads(json.dumps(data)))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50_000  # KiB


def test_a_4kb_checkpoint_asking_for_gigabytes_is_refused_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from tests.conftest import assert_one_line_error, run_tinygen

    cfg = {**load_preset("share-blocks").to_dict(), "d_model": 10**9, "n_heads": 1}
    path = tmp_path / "huge.pt"
    torch.save({"format": "tinygen-checkpoint", "version": 1, "config": cfg,
                "tensors": {}, "meta": {}}, path)
    assert path.stat().st_size < 4096
    res = run_tinygen("build", str(path), "-o", str(tmp_path / "out"), timeout=60)
    assert_one_line_error(res, "d_model = 1000000000")
    assert not (tmp_path / "out").exists()
