"""Model-config fuzz: small random configs that together use every sharing option
tinygen builds (block repeats, ffn/attn/conv groups, macaron, kv projections, low rank
with no, down and up shared factor), compiled for the host and for QEMU Cortex-M4; the C
must equal the golden reference bit for bit. Options that do not build yet (qk/qkv
projection sharing) must be refused in one line. Seeded; bench/fuzz.py runs more seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_main
from tests.fuzzing import (
    FEATURES,
    features_of,
    random_config,
)
from tinygen.build import BuildOptions, build
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import save_checkpoint
from tinygen.speech.model import build_model
from tinygen.verify import verify

HOST_SEEDS = range(6)
QEMU_SEEDS = range(6, 8)


def focus(seed: int) -> tuple[str, ...]:
    """Two FEATURES forced on per seed, so that seeds 0..7 cover all nine."""
    return FEATURES[seed % len(FEATURES)], FEATURES[(seed + 5) % len(FEATURES)]


def build_and_verify(seed: int, target: str, root: Path) -> dict:  # type: ignore[type-arg]
    cfg = random_config(seed, focus(seed))
    model = build_model(cfg, seed=seed)
    frames = window_frames(cfg, 200)
    cal = inputs(cfg, frames, 2, seed=0)
    vecs = inputs(cfg, frames, 2, seed=1)
    out = root / f"{target}-{seed}"
    build(model, out, cal, vecs, BuildOptions(target=target), cfg.name)
    return verify(out)


def test_the_seeds_cover_every_sharing_option() -> None:
    used = set().union(*(features_of(random_config(s, focus(s)))
                         for s in (*HOST_SEEDS, *QEMU_SEEDS)))
    assert used == set(FEATURES)


@pytest.mark.parametrize("seed", HOST_SEEDS)
def test_random_config_host_is_bit_exact(seed: int, tmp_path: Path) -> None:
    result = build_and_verify(seed, "host", tmp_path)
    print(f"config fuzz host seed {seed}: {sorted(features_of(random_config(seed, focus(seed))))}"
          f" bit_exact={result['bit_exact']}")
    assert result["bit_exact"], result


@pytest.mark.parametrize("seed", QEMU_SEEDS)
def test_random_config_qemu_m4_is_bit_exact(seed: int, tmp_path: Path) -> None:
    result = build_and_verify(seed, "qemu-m4", tmp_path)
    assert result["bit_exact"] and result["exit_code"] == 0, result


@pytest.mark.parametrize("sharing", ["qk", "qkv"])
def test_query_key_projection_sharing_builds_bit_exact(sharing: str, tmp_path: Path) -> None:
    """The projection sharings that need a broadcasting multiply, on random configs."""
    cfg = random_config(50, proj_sharing=sharing)
    save_checkpoint(build_model(cfg, seed=0), tmp_path / "m.pt")
    res = run_main("build", str(tmp_path / "m.pt"), "-o", str(tmp_path / "out"), "--calib",
                   "1", "--vectors", "1", "--window-ms", "200")
    assert res.returncode == 0, res.stderr
    assert verify(tmp_path / "out")["bit_exact"]
