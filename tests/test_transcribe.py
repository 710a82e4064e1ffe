"""Audio in, text out on the host: front end -> model -> CTC in C == the Python golden path.

The shipped mcu-tiny is built once for the host with a 2 s window (4 calibration inputs,
so CI stays fast), and a small streaming model (share-blocks, 80 ms chunks, random
weights) once too. Test WAVs are made here with espeak-ng and sox (never committed): 22
phrases in several voices, at 8, 16, 22.05, 44.1 and 48 kHz, mono and stereo, int16,
24-bit and float. For each, ``tinygen_transcribe --trace`` must print the features, the
logits and the tokens of :func:`tinygen.transcribe.golden_transcript` (tinygen.audio's
front end, the golden int8 reference, tinygen.audio.ctc), byte for byte; the oracle for
the words themselves is the phrase that was spoken.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygen.audio import FEATURE_RANGE, SCALE, ZERO_POINT, frontend_tables
from tinygen.audio_build import audio_input_range
from tinygen.build import BuildOptions, build
from tinygen.cli import main
from tinygen.compiler.pipeline import compile_model
from tinygen.compiler.quantize import activation_quant
from tinygen.resources import models_dir
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.speech.config import load_preset
from tinygen.speech.data.say import say
from tinygen.speech.evaluate import edit_distance
from tinygen.speech.model import build_model
from tinygen.speech.streaming import compile_streaming
from tinygen.targets import host
from tinygen.transcribe import golden_transcript, read_wav, run_c, transcribe

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox make the test audio "
                                       "(scripts/setup.sh installs them)")

PHRASES = ("lights on", "turn off the fan", "open the door", "stop the music",
           "what time is it", "call my mother", "play some jazz", "close the window",
           "is it raining", "set an alarm", "volume up", "where is my phone",
           "lock the door", "turn on the radio", "good morning", "start the timer",
           "next song", "open the garage", "the lights are off", "dim the lights",
           "make some coffee", "cancel that")
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-029")
# (sample rate, channels, sox encoding options) per phrase, cycling
FORMATS = ((16000, 1, ["-b", "16"]), (8000, 1, ["-b", "16"]), (44100, 1, ["-b", "16"]),
           (48000, 1, ["-b", "16"]), (16000, 2, ["-b", "16"]), (48000, 2, ["-b", "24"]),
           (22050, 1, ["-e", "floating-point", "-b", "32"]))
WINDOW_MS = 2000


def _espeak(text: str, voice: str, path: Path, speed: int = 190) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)


def _sox(src: Path, dst: Path, rate: int, channels: int, enc: list[str],
         seconds: float = 1.9) -> None:
    subprocess.run(["sox", "-V1", str(src), *enc, "-r", str(rate), "-c", str(channels),
                    str(dst), "trim", "0", str(seconds)], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str, int, int]]:
    """(path, phrase, rate, channels) of every test WAV."""
    root = tmp_path_factory.mktemp("wavs")
    found = []
    for i, text in enumerate(PHRASES):
        raw = root / f"raw{i}.wav"
        _espeak(text, VOICES[i % len(VOICES)], raw)
        rate, channels, enc = FORMATS[i % len(FORMATS)]
        path = root / f"utt{i}_{rate}_{channels}ch.wav"
        _sox(raw, path, rate, channels, enc)
        found.append((path, text, rate, channels))
    return found


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = load_model(str(models_dir() / "mcu-tiny.pt"))
    cfg = model.cfg
    frames = window_frames(cfg, WINDOW_MS)
    cal = inputs(cfg, frames, 4, seed=0)
    compiled = compile_model(model, frames, cal, input_range=audio_input_range(model))
    out = tmp_path_factory.mktemp("win") / "host"
    report = build(model, out, cal, cal[:1], BuildOptions(target="host", vectors=1),
                   "mcu-tiny", compiled=compiled)
    return {"out": out, "report": report, "compiled": compiled, "cfg": cfg,
            "tables": frontend_tables(cfg)}


def _same(built: dict[str, Any], pcm: np.ndarray, exe: Path | None = None) -> str:
    cfg = built["cfg"]
    golden = golden_transcript(built["compiled"], cfg.vocab, pcm, built["tables"])
    got, cpu = run_c(exe or built["out"] / "host" / "tinygen_transcribe", pcm, cfg.vocab,
                     cfg.n_mels, trace=True)
    assert np.array_equal(got.features, golden.features)
    assert np.array_equal(got.logits, golden.logits)
    assert got.tokens == golden.tokens
    assert got.text == golden.text
    assert cpu >= 0
    return golden.text


def test_input_quantization_is_the_front_ends(windowed) -> None:  # type: ignore[no-untyped-def]
    q = windowed["report"]["input"]
    assert np.float32(q["scale"]) == np.float32(1 / 40) and q["zero_point"] == -28
    assert (SCALE, ZERO_POINT) == (1 / 40, -28)
    # the range maps to exactly that Quant, by TFLite's converter rule
    hand = activation_quant(-2.5, 3.875)
    assert FEATURE_RANGE == (-2.5, 3.875)
    assert np.float32(hand.s) == np.float32(0.025) and hand.zp == -28


def test_audio_tables_in_flash(windowed) -> None:  # type: ignore[no-untyped-def]
    report, out = windowed["report"], windowed["out"]
    flash = report["flash"]
    assert flash["total_bytes"] == (flash["weights_bytes"] + flash["quant_bytes"]
                                    + flash["schedule_bytes"] + flash["audio_tables_bytes"])
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc measures the tables' size")
    obj = out / "tables.o"
    subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-O2", "-c",
                    f"-I{out / 'lib' / 'tinygen'}",
                    str(out / "model" / "tg_audio_tables.c"), "-o", str(obj)], check=True)
    size = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True,
                          text=True, check=True).stdout
    rodata = sum(int(ln.split()[1]) for ln in size.splitlines()
                 if ln.startswith((".rodata", ".data")))
    assert abs(rodata - flash["audio_tables_bytes"]) <= 64, (rodata, flash)


def test_c_transcribes_like_the_golden_path(windowed, wavs) -> None:  # type: ignore[no-untyped-def]
    rates = {rate for _, _, rate, _ in wavs}
    assert len(wavs) >= 20 and {8000, 44100, 48000} <= rates
    assert any(ch == 2 for *_, ch in wavs)
    errors = chars = 0
    for path, text, _, _ in wavs:
        pcm = read_wav(path, 16000)
        said = _same(windowed, pcm)
        assert transcribe(windowed["out"], path)["text"] == said
        errors += edit_distance(text, said)
        chars += len(text)
    assert errors / chars < 0.35  # the words were heard (mcu-tiny, synthetic voices)


def test_word_list_picks_the_command_like_the_golden_path(windowed, wavs, tmp_path: Path,
                                                         capsys) -> None:  # type: ignore[no-untyped-def]
    """--words: the C's tg_words picks the golden decoder's entry with the same scores, and
    the entry is the phrase that was spoken more often than greedy spelling gets it right."""
    import json

    from tinygen.audio import words

    cfg = windowed["cfg"]
    listed = tmp_path / "commands.txt"
    listed.write_text("# the phrases the test audio says\n" + "\n".join(PHRASES) + "\n")
    wl = words.read_word_list(listed, cfg.vocab)
    exact_words = exact_greedy = 0
    for path, text, _, _ in wavs:
        pcm = read_wav(path, 16000)
        golden = golden_transcript(windowed["compiled"], cfg.vocab, pcm, windowed["tables"],
                                   wl)
        got, _ = run_c(windowed["out"] / "host" / "tinygen_transcribe", pcm, cfg.vocab,
                       cfg.n_mels, word_list=wl)
        assert got.entry == golden.entry and got.entry is not None and got.entry.index >= 0
        assert got.entry.margin >= 0
        result = transcribe(windowed["out"], path, listed)
        assert result["text"] == wl.texts[got.entry.index]
        assert result["greedy_text"] == golden.text
        exact_words += result["text"] == text
        exact_greedy += golden.text == text
    assert exact_words >= exact_greedy and exact_words >= 0.8 * len(wavs)
    assert main(["transcribe", str(windowed["out"]), str(wavs[0][0]), "--words", str(listed),
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["words"]["margin"] >= 0 and shown["text"] in PHRASES


def test_bad_word_list_is_one_line(windowed, wavs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import assert_one_line_error, run_tinygen

    bad = tmp_path / "bad.txt"
    bad.write_text("lights on\nzwölf\n", encoding="utf-8")
    for listed, needle in ((bad, "cannot spell"), (tmp_path / "none.txt", "no word list")):
        result = run_tinygen("transcribe", str(windowed["out"]), str(wavs[0][0]), "--words",
                             str(listed))
        assert_one_line_error(result, needle)
    assert bad.read_text(encoding="utf-8") == "lights on\nzwölf\n"  # the user's file


def test_read_wav_downmixes_and_resamples(wavs, tmp_path: Path) -> None:
    path, *_ = wavs[0]  # 16 kHz mono int16: the samples as they are
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.array_equal(read_wav(path, 16000), samples)
    stereo = tmp_path / "stereo.wav"  # both channels the same: the mean is the channel
    subprocess.run(["sox", str(path), "-c", "2", str(stereo)], check=True)
    assert np.array_equal(read_wav(stereo, 16000), samples)
    high = tmp_path / "48k.wav"  # sox up to 48 kHz, soxr back down: the same signal
    subprocess.run(["sox", str(path), "-r", "48000", str(high)], check=True)
    back = read_wav(high, 16000).astype(np.float64)
    n = min(len(back), len(samples))
    err = back[:n] - samples[:n]
    assert 10 * np.log10(np.sum(samples[:n].astype(np.float64) ** 2) / np.sum(err ** 2)) > 30


def test_bad_audio_is_one_line(windowed, wavs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = str(windowed["out"])
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n")
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    long = tmp_path / "long.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(long), "synth", "2.5",
                    "sine", "440"], check=True)
    for path, words in ((text, "not an audio file"), (empty, "holds no samples"),
                        (long, "longer than the model's")):
        assert main(["transcribe", out, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tinygen: error:") and words in err[0]


def test_clipping_and_silence(windowed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Full-scale square noise, all zeros and a single sample, through the transcriber
    built with AddressSanitizer and UBSan (any finding aborts the run)."""
    exe = host.compile_exe(windowed["out"], extra=("-fsanitize=address,undefined",
                                                   "-fno-sanitize-recover=all", "-g"),
                           exe=tmp_path / "transcribe_sanitized", main="transcribe.c")
    rng = np.random.default_rng(0)
    loud = np.where(rng.random(20000) < 0.5, -32768, 32767).astype(np.int16)
    _same(windowed, loud, exe)
    _same(windowed, np.zeros(16000, np.int16), exe)
    _same(windowed, np.zeros(1, np.int16), exe)  # one sample: the window is silence


def test_streaming_model_steps_like_the_golden_path(wavs, tmp_path: Path) -> None:
    cfg = dataclasses.replace(load_preset("share-blocks"), name="share-blocks-stream",
                              chunk_frames=2, left_chunks=2).validate()
    model = build_model(cfg, seed=3)
    cal = inputs(cfg, 101, 3, seed=0)
    compiled = compile_streaming(model, cal)
    q = compiled.input_quant
    assert np.float32(q.s) == np.float32(SCALE) and q.zp == ZERO_POINT
    out = tmp_path / "host"
    build(model, out, cal, [], BuildOptions(target="host"), cfg.name, compiled=compiled)
    built = {"out": out, "compiled": compiled, "cfg": cfg, "tables": frontend_tables(cfg)}
    for path, *_ in wavs[:4]:
        _same(built, read_wav(path, 16000))
    _same(built, np.zeros(100, np.int16))  # shorter than a frame: one chunk of silence
    _same(built, np.full(1300, 1000, np.int16))  # exactly one chunk (8 frames)


def test_data_say_is_reproducible(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    a = say("turn on the kitchen lights")
    assert a == say("turn on the kitchen lights")
    path = tmp_path / "hello.wav"
    assert main(["data", "say", "lights on", "-o", str(path)]) == 0
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    before = path.read_bytes()
    assert main(["data", "say", "lights off", "-o", str(path)]) == 2
    assert path.read_bytes() == before  # never replaced without --force
    assert "already exists" in capsys.readouterr().err
