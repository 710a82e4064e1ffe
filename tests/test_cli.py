"""The CLI as a user runs it: figures in JSON, and one-line errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.speech.checkpoint import load_model, save_checkpoint


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


def test_pack_fp16_halves_the_file_and_keeps_the_model(tmp_path: Path) -> None:
    from tinygen.speech.checkpoint import load_checkpoint, read_checkpoint
    from tinygen.speech.summary import unique_params

    model = load_model("preset:share-lowrank")
    src = tmp_path / "trained.pt"
    save_checkpoint(model, src, {"step": 7, "dev_cer": 0.25})
    res = run_tinygen("pack", str(src), "-o", str(tmp_path / "ship.pt"), "--fp16")
    assert res.returncode == 0, res.stderr
    ship = tmp_path / "ship.pt"
    assert ship.stat().st_size < 0.6 * src.stat().st_size
    meta = read_checkpoint(ship)["meta"]
    assert meta["step"] == 7 and meta["storage"] == "float16" and meta["packed_from"] == src.name
    packed = load_checkpoint(ship)
    assert packed.cfg == model.cfg and unique_params(packed) == unique_params(model)
    for (name, a), b in zip(model.state_dict().items(), packed.state_dict().values(),
                            strict=True):
        assert b.dtype == a.dtype, name  # widened back on load
        want = a.half().to(a.dtype) if a.is_floating_point() else a
        assert torch.equal(b, want), name
    # without --fp16 the weights are untouched
    assert run_tinygen("pack", str(src), "-o", str(tmp_path / "f32.pt")).returncode == 0
    for a, b in zip(model.state_dict().values(),
                    load_checkpoint(tmp_path / "f32.pt").state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_pack_bad_inputs_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ship.pt"
    assert_one_line_error(run_tinygen("pack", str(tmp_path / "x.pt"), "-o", str(out)),
                          "does not exist")
    assert not out.exists()
    model = load_model("preset:share-lowrank")
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    save_checkpoint(model, tmp_path / "nan.pt")
    assert_one_line_error(run_tinygen("pack", str(tmp_path / "nan.pt"), "-o", str(out)),
                          "NaN/Inf")
    assert not out.exists()
    big = load_model("preset:share-lowrank")
    with torch.no_grad():
        next(big.parameters())[0, 0] = 1e6
    save_checkpoint(big, tmp_path / "big.pt")
    assert_one_line_error(run_tinygen("pack", str(tmp_path / "big.pt"), "-o", str(out),
                                      "--fp16"), "float16's range")
    assert not out.exists()
    out.write_bytes(b"keep me")
    assert_one_line_error(run_tinygen("pack", str(tmp_path / "big.pt"), "-o", str(out)),
                          "already exists")
    assert out.read_bytes() == b"keep me"
