"""The CLI as a user runs it: figures in JSON, and one-line errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.checkpoint import load_model, save_checkpoint


def test_info_paper_5m_json() -> None:
    res = run_tinygen("info", "preset:paper-5m", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert 4_500_000 <= info["unique_params"] <= 5_500_000
    assert info["virtual_params"] >= 2 * info["unique_params"]
    assert info["virtual_layers"] == 8 and info["unique_blocks"] == 4
    assert info["macs_per_second_of_audio"] > 0
    layers = info["sharing"]["layers"]
    assert [row["block"] for row in layers] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert set(layers[0]) >= {"ffn1", "attn", "conv", "ffn2", "norm"}


def test_info_mcu_tiny_and_table() -> None:
    res = run_tinygen("info", "preset:mcu-tiny", "--json")
    assert json.loads(res.stdout)["unique_params"] <= 300_000
    res = run_tinygen("info", "preset:mcu-tiny")
    assert res.returncode == 0 and "virtual params" in res.stdout and "ffn.0" in res.stdout


def test_presets_lists_all() -> None:
    res = run_tinygen("presets", "--json")
    assert res.returncode == 0, res.stderr
    names = {row["name"] for row in json.loads(res.stdout)}
    assert {"paper-5m", "mcu-tiny", "baseline-tiny", "share-blocks", "share-modules",
            "share-subcomponents", "share-lowrank"} <= names
    assert "mcu-tiny" in run_tinygen("presets").stdout


def test_info_on_a_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(load_model("preset:share-lowrank"), tmp_path / "m.pt")
    res = run_tinygen("info", str(tmp_path / "m.pt"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["name"] == "share-lowrank"


def test_bad_inputs_give_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_tinygen("info", "preset:nope"), "unknown preset 'nope'",
                          "mcu-tiny")
    assert_one_line_error(run_tinygen("info", str(tmp_path / "x.pt")), "does not exist")
    (tmp_path / "bad.pt").write_bytes(b"garbage" * 10)
    assert_one_line_error(run_tinygen("info", str(tmp_path / "bad.pt")), "corrupt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert_one_line_error(run_tinygen("info", str(tmp_path / "other.pt")),
                          "not a tinygen checkpoint")


def test_impossible_configs_in_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    cases = {
        "rank": ({"lowrank": {"targets": ["ffn.w1"], "ranks": [999],
                              "shared_factor": "none"}}, "rank 999"),
        "heads": ({"n_heads": 3}, "does not divide d_model"),
        "layers": ({"block_order": []}, "zero layers"),
    }
    for _, (change, needle) in cases.items():
        data = torch.load(path, weights_only=True)
        data["config"].update(change)
        bad = tmp_path / "bad.pt"
        torch.save(data, bad)
        assert_one_line_error(run_tinygen("info", str(bad)), needle)


def test_version_and_usage() -> None:
    assert run_tinygen("--version").stdout.startswith("tinygen ")
    res = run_tinygen("frobnicate")
    assert res.returncode == 2 and "invalid choice" in res.stderr
