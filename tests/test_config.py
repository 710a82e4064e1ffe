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
