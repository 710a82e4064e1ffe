"""The trained checkpoints shipped in models/: they load, match their preset, and hear."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinygen.speech.checkpoint import check_finite, load_checkpoint, read_checkpoint
from tinygen.speech.config import load_preset
from tinygen.speech.data.synth import synthesize
from tinygen.speech.evaluate import evaluate

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("mcu-tiny", "baseline-tiny")


@pytest.fixture(scope="module")
def fresh_test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Seed 1 deals the voice+variant combos as the training corpus did, so the test split
    # holds voices none of the shipped models heard; 100 utterances give 10 test ones.
    out = tmp_path_factory.mktemp("shipped") / "corpus"
    synthesize(out, 100, seed=1, jobs=2, progress=False)
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_is_the_preset_and_small(name: str) -> None:
    path = MODELS / f"{name}.pt"
    assert path.is_file(), f"models/{name}.pt is not shipped"
    assert path.stat().st_size < 4_000_000  # a few MB at most in the repository
    model = load_checkpoint(path)
    assert model.cfg == load_preset(name)
    check_finite(model)
    meta = read_checkpoint(path)["meta"]
    assert meta["preset"] == name and meta["step"] > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_recognises_unseen_voices(name: str, fresh_test_split: Path) -> None:
    report = evaluate(str(MODELS / f"{name}.pt"), fresh_test_split, "test",
                      progress=False, compiled=False)
    assert report["utterances"] == 10
    (row,) = report["rows"]
    # An untrained model scores ~100%; the README reports the full test split.
    assert row["cer"] < 0.35, row
