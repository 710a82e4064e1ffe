"""The trained checkpoints shipped in models/: they load, match their preset, and hear,
float, int8 and as C, about as well as the README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinygen.speech.checkpoint import check_finite, load_checkpoint, read_checkpoint
from tinygen.speech.config import load_preset
from tinygen.speech.data.synth import synthesize
from tinygen.speech.evaluate import evaluate

# CER (%) of the shipped checkpoints: the README's ablation table (float CER, int8 CER, C CER
# columns, 4.8 s window; baseline-tiny on 1,200 test utterances, mcu-tiny on 400) and, for
# the streaming checkpoint, docs/training.md "The shipped models" (chunk by chunk). Update
# these with those tables when models/ changes. The test allows each figure MARGIN points more.
SHIPPED_CER = {
    "mcu-tiny": {"float": 2.55, "int8-reference": 2.40, "host-c": 2.40},
    "baseline-tiny": {"float": 0.67, "int8-reference": 0.66, "host-c": 0.66},
}
STREAMING_CER = {
    "mcu-tiny-stream": {"float-stream": 4.49, "int8-stream": 4.63, "host-c-stream": 4.63},
}
STREAMING_CHUNK = {"mcu-tiny-stream": (4, 4)}  # chunk_frames, left_chunks
MARGIN = 1.0  # percentage points
WINDOW_MS = 4800  # the README's window
CALIB = 8  # calibration windows from the split's train part (the README used 32)

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = tuple(SHIPPED_CER)


@pytest.fixture(scope="module")
def fresh_test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Seed 1 deals the voice+variant combos as the training corpus did, so the test split
    # holds voices none of the shipped models heard; 300 utterances give 30 test ones.
    out = tmp_path_factory.mktemp("shipped") / "corpus"
    synthesize(out, 300, seed=1, jobs=2, progress=False)
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
def test_shipped_cer_float_int8_and_c(name: str, fresh_test_split: Path,
                                      tmp_path: Path) -> None:
    """float, int8 golden reference and host C CER on unseen voices, each within MARGIN
    points of the README; the C makes exactly the golden reference's errors. Decoded as
    the best entry of a list of the split's transcripts (--words), every backend gets at
    least as many utterances right as greedy spelling."""
    import json

    texts = {json.loads(ln)["text"] for ln in
             (fresh_test_split / "test.jsonl").read_text().splitlines() if ln.strip()}
    listed = tmp_path / "commands.txt"
    listed.write_text("\n".join(sorted(texts)) + "\n")
    report = evaluate(str(MODELS / f"{name}.pt"), fresh_test_split, "test",
                      progress=False, compiled=True, window_ms=WINDOW_MS, calib=CALIB,
                      words_file=listed)
    assert report["utterances"] == 30
    rows = {r["backend"]: r for r in report["rows"]}
    print(name, {b: f"{100 * r['cer']:.2f}%" for b, r in rows.items()})
    for backend, readme in SHIPPED_CER[name].items():
        assert 100 * rows[backend]["cer"] <= readme + MARGIN, (backend, rows[backend])
    assert rows["host-c"]["char_errors"] == rows["int8-reference"]["char_errors"]
    assert report["words"]["entries"] == len(texts)
    word_rows = {r["backend"]: r for r in report["word_rows"]}
    assert word_rows.keys() == rows.keys()
    for backend, r in word_rows.items():
        assert r["exact"] >= rows[backend]["exact"] and r["wer"] <= rows[backend]["wer"], \
            (backend, r, rows[backend])
    assert word_rows["host-c"]["word_errors"] == word_rows["int8-reference"]["word_errors"]


@pytest.mark.parametrize("name", tuple(STREAMING_CER))
def test_streaming_checkpoint_is_its_preset_made_to_stream(name: str) -> None:
    from dataclasses import replace

    path = MODELS / f"{name}.pt"
    assert path.is_file() and path.stat().st_size < 4_000_000
    model = load_checkpoint(path)
    chunk, left = STREAMING_CHUNK[name]
    base = load_preset("mcu-tiny")
    assert model.cfg == replace(base, name=name, chunk_frames=chunk, left_chunks=left)
    assert model.cfg.streaming
    check_finite(model)


@pytest.mark.parametrize("name", tuple(STREAMING_CER))
def test_streaming_cer_float_int8_and_c(name: str, fresh_test_split: Path) -> None:
    """Chunk by chunk over whole utterances: float, int8 golden step and the C step, each
    within MARGIN points of docs/training.md; the C makes exactly the golden step's errors."""
    report = evaluate(str(MODELS / f"{name}.pt"), fresh_test_split, "test",
                      progress=False, compiled=True, calib=CALIB, streaming=True)
    rows = {r["backend"]: r for r in report["rows"]}
    print(name, {b: f"{100 * r['cer']:.2f}%" for b, r in rows.items()})
    for backend, doc in STREAMING_CER[name].items():
        assert 100 * rows[backend]["cer"] <= doc + MARGIN, (backend, rows[backend])
    assert rows["host-c-stream"]["char_errors"] == rows["int8-stream"]["char_errors"]
