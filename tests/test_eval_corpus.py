"""``tinygen eval`` never reports a CER over nothing: a split with no usable utterance is
an error (exit 2, one line), and an empty transcript is skipped rather than scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import assert_one_line_error, run_main


def corpus(root: Path, entries: list[tuple[str, bytes | None, str]]) -> Path:
    """A corpus folder with test.jsonl; None audio writes 1 s of speech-like noise."""
    import soundfile as sf

    root.mkdir()
    lines = []
    for name, raw, text in entries:
        if raw is None:
            rng = np.random.default_rng(0)
            sf.write(root / name, (0.1 * rng.standard_normal(16000)).astype(np.float32),
                     16000)
        else:
            (root / name).write_bytes(raw)
        lines.append(json.dumps({"path": name, "text": text}))
    (root / "test.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_no_usable_audio_is_an_error_not_cer_zero(tmp_path: Path) -> None:
    data = corpus(tmp_path / "c", [("a.wav", b"not audio", "hello"),
                                   ("b.wav", b"", "world")])
    res = run_main("eval", "preset:share-blocks", "--data", str(data), "--float-only",
                   "--json")
    assert_one_line_error(res, "no usable utterance", "2 listed, 2 skipped", "a.wav")
    assert res.stdout == ""


def test_an_empty_transcript_is_skipped_not_scored(tmp_path: Path) -> None:
    data = corpus(tmp_path / "c", [("a.wav", None, "abc"), ("b.wav", None, "")])
    res = run_main("eval", "preset:share-blocks", "--data", str(data), "--float-only",
                   "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["utterances"] == 1 and report["skipped"] == 1
    (row,) = report["rows"]
    assert row["chars"] == 3 and row["words"] == 1  # only "abc" is scored
    only_empty = corpus(tmp_path / "d", [("b.wav", None, "")])
    res = run_main("eval", "preset:share-blocks", "--data", str(only_empty), "--float-only")
    assert_one_line_error(res, "no usable utterance", "empty transcript")


def test_room_tone_fills_each_recording_to_the_asked_length(tmp_path: Path) -> None:
    """--room-tone-ms lengthens what is scored (the front end sees 3 s per 1 s clip), and
    the report says so; without it the clips are scored as they are."""
    from tinygen.speech.config import load_preset
    from tinygen.speech.features import frontend_logmel

    data = corpus(tmp_path / "c", [("a.wav", None, "abc"), ("b.wav", None, "de")])
    base = ("eval", "preset:share-blocks", "--data", str(data), "--float-only", "--json")
    plain = json.loads(run_main(*base).stdout)
    res = run_main(*base, "--room-tone-ms", "3000")
    assert res.returncode == 0, res.stderr
    toned = json.loads(res.stdout)
    cfg = load_preset("share-blocks")
    frames = len(frontend_logmel(np.zeros(3 * cfg.sample_rate, np.float32), cfg))
    assert toned["room_tone_ms"] == 3000.0 and plain["room_tone_ms"] is None
    assert toned["feature_frames"] == 2 * frames > plain["feature_frames"]
    assert_one_line_error(run_main(*base, "--room-tone-ms", "-1"), "--room-tone-ms")
