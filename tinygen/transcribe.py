"""``tinygen transcribe OUT audio.wav``: a host build hears a WAV file and prints the text.

In: a host build of a speech model (``OUT/host/tinygen_transcribe``, templates/host/
transcribe.c.j2) and a WAV file of any sample rate and channel count. The file is read
with soundfile, downmixed (mean of the channels), resampled to the model's rate with soxr
(HQ) and rounded to int16; the C program then runs front end -> model -> greedy CTC.

Out: the transcript; with ``--json`` also each token's start and end (ms) and the real-time
factor (the C program's CPU time after reading the audio / the audio's duration).

With ``--words FILE`` (one word or phrase per line, tinygen.audio.words) the C also scores
every entry of the list by its best CTC path (tg_words.c) and the output is the best
entry, a command recognizer's answer; ``--json`` adds its score and margin, and the
greedy spelling.

Input rules (one line and exit 2 otherwise): the file must be audio, hold at least one
sample, last at most ``MAX_SECONDS``, and, for a windowed model, fit the compiled window
(the window is filled with the utterance, then silence; longer audio is refused, not
cut into segments: rebuild with a longer ``--window-ms``). A streaming model steps
through audio of any length up to ``MAX_SECONDS``.

:func:`golden_transcript` is the same path in Python (tinygen.audio.frontend -> the golden
int8 reference -> tinygen.audio.ctc); the C must give its features, logits and tokens.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.audio import ctc, words
from tinygen.audio import frontend as F
from tinygen.errors import TinygenError

MAX_SECONDS = 60.0  # longest audio tinygen transcribe accepts
SUBSAMPLE = 4  # feature frames per encoder frame (tinygen.speech.config.SUBSAMPLE)


class TranscribeError(TinygenError):
    """Audio or a build that cannot be transcribed."""


# ---------------------------------------------------------------------------- audio
def read_wav(path: Path, sample_rate: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A WAV file as int16 mono PCM at ``sample_rate``: downmixed, resampled, rounded."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise TranscribeError(f"{path} does not exist", "give the path of a WAV file")
    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError):
        raise TranscribeError(f"{path} is not an audio file soundfile can read",
                              "give a WAV file (any rate, mono or stereo)") from None
    if data.shape[0] == 0:
        raise TranscribeError(f"{path} holds no samples", "give a WAV file with audio in it")
    seconds = data.shape[0] / rate
    if seconds > max_seconds:
        raise TranscribeError(f"{path} lasts {seconds:.1f} s, over the {max_seconds:.0f} s "
                              "limit", "cut it into shorter files")
    mono = data.mean(axis=1)  # (samples,)
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- golden
@dataclass
class Transcript:
    text: str
    tokens: list[ctc.Token]
    features: np.ndarray = field(repr=False)  # (frames, n_mels) int8 the model read
    logits: np.ndarray = field(repr=False)  # (encoder frames, vocab) int8
    entry: words.WordResult | None = None  # with a word list: its best entry


def padded_frames(pcm: np.ndarray, frames: int, tables: F.FrontendTables) -> np.ndarray:
    """The first ``frames`` feature frames of ``pcm`` followed by digital silence."""
    cfg = tables.cfg
    tail = np.zeros(cfg.win_length + (frames - 1) * cfg.hop_length, np.int16)
    return F.features(np.concatenate([np.asarray(pcm, np.int16), tail]), tables)[:frames]


def window_samples(window_frames: int, cfg: F.FrontendConfig) -> int:
    """Samples whose features fill a window of ``window_frames`` frames."""
    return cfg.win_length + (window_frames - 1) * cfg.hop_length


def golden_transcript(compiled: Any, vocab: str, pcm: np.ndarray,
                      tables: F.FrontendTables, word_list: words.WordList | None = None
                      ) -> Transcript:
    """front end -> golden int8 (window or steps) -> greedy CTC, as the C does it."""
    shape = compiled.int8.values[compiled.int8.inputs[0]].shape  # (1, frames, n_mels)
    n = shape[1]
    if "state_init" in compiled.int8.meta:  # streaming: whole chunks, at least one
        have = tables.cfg.frames_for(len(pcm))
        frames = padded_frames(pcm, max(1, -(-have // n)) * n, tables)
        chunks = [frames[None, k:k + n] for k in range(0, len(frames), n)]
        outs = compiled.stream_int8(chunks, compiled.int8.meta["state_init"])
        logits = np.concatenate([y.reshape(-1, len(vocab)) for y in outs])
    else:
        if len(pcm) > window_samples(n, tables.cfg):
            raise TranscribeError("the audio is longer than the window")
        frames = padded_frames(pcm, n, tables)
        logits = compiled.run_int8(frames[None]).reshape(-1, len(vocab))
    tokens = ctc.decode(logits)
    chosen = words.decode(logits, word_list) if word_list is not None else None
    return Transcript(ctc.text(tokens, vocab), tokens, frames, logits, chosen)


# -------------------------------------------------------------------------- the C
def parse_output(text: str, vocab: str, n_mels: int) -> tuple[Transcript, float]:
    """The transcriber's stdout (with or without --trace) and its CPU seconds."""
    tokens, feats, logits, cpu, said = [], [], [], 0.0, None
    chosen = None
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "tg_token":
            i, s, e = (int(v) for v in rest.split())
            tokens.append(ctc.Token(i, s, e))
        elif tag == "tg_feat":
            feats.append(np.frombuffer(bytes.fromhex(rest), np.int8))
        elif tag == "tg_logits":
            logits.append(np.frombuffer(bytes.fromhex(rest), np.int8))
        elif tag == "tg_cpu_s":
            cpu = float(rest)
        elif tag == "tg_text":
            said = rest
        elif tag == "tg_words":
            i, sc, free, n = (int(v) for v in rest.split())
            chosen = words.WordResult(i, sc, free, n)
    if said is None:
        raise TranscribeError("the transcriber printed no text line")
    f = np.concatenate(feats).reshape(-1, n_mels) if feats else np.zeros((0, n_mels), np.int8)
    lg = np.concatenate(logits).reshape(-1, len(vocab)) if logits else \
        np.zeros((0, len(vocab)), np.int8)
    return Transcript(said, tokens, f, lg, chosen), cpu


def load_build(out: Path) -> tuple[dict[str, Any], Path]:
    """report.json of a host build of a speech model, and its transcriber."""
    from tinygen.verify import load_report

    out = Path(out)
    report = load_report(out)
    if report.get("target") != "host":
        raise TranscribeError(f"{out} is a {report.get('target')} build",
                              "build the model with --target host to transcribe on this "
                              "machine (qemu builds: tinygen verify OUT --audio FILE)")
    exe = out / "host" / "tinygen_transcribe"
    if "audio" not in report or not exe.is_file():
        raise TranscribeError(f"{out} has no transcriber (not a speech model's build, or "
                              "built by an older tinygen)", "rebuild it with `tinygen build`")
    return report, exe


def run_c(exe: Path, pcm: np.ndarray, vocab: str, n_mels: int, trace: bool = False,
          timeout: float = 600, word_list: words.WordList | None = None
          ) -> tuple[Transcript, float]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tinygen-words-") as tmp:
        args = ["--trace"] if trace else []
        if word_list is not None:
            path = Path(tmp) / "words.txt"
            path.write_text(" ".join(str(v) for v in [len(word_list.ids), *[
                x for e in word_list.ids for x in (len(e), *e)]]) + "\n")
            args += ["--words", str(path)]
        proc = subprocess.run([str(exe), *args], input=np.asarray(pcm, "<i2").tobytes(),
                              capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        msg = (proc.stderr.decode(errors="replace").strip().splitlines() or
               [f"exit status {proc.returncode}"])[0]
        raise TranscribeError(f"{exe.name} failed: {msg[:200]}", "rebuild OUT")
    result = parse_output(proc.stdout.decode("utf-8", errors="replace"), vocab, n_mels)
    if word_list is not None and result[0].entry is None:
        raise TranscribeError(f"{exe.name} cannot decode word lists (built by an older "
                              "tinygen)", "rebuild OUT with `tinygen build`")
    return result


def frontend_config(report: dict[str, Any]) -> F.FrontendConfig:
    a = report["audio"]
    return F.FrontendConfig(int(a["sample_rate"]), int(a["n_fft"]), int(a["win_length"]),
                            int(a["hop_length"]), int(a["n_mels"]))


def check_window(report: dict[str, Any], pcm: np.ndarray, wav: Path) -> None:
    """Refuse audio longer than a windowed build's window, in one line."""
    if "streaming" in report:
        return
    cfg = frontend_config(report)
    limit = window_samples(int(report["window_frames"]), cfg)
    if len(pcm) > limit:
        rate = cfg.sample_rate
        seconds = len(pcm) / rate
        window_ms = round(1000 * (report["window_frames"] - 1) * cfg.hop_length / rate)
        need = int(np.ceil(seconds + 0.5)) * 1000
        raise TranscribeError(
            f"{wav} lasts {seconds:.2f} s, longer than the model's {limit / rate:.2f} s "
            f"window (--window-ms {window_ms})",
            f"rebuild OUT with --window-ms {need}, or cut the audio")


def transcribe(out: Path, wav: Path, words_file: Path | None = None) -> dict[str, Any]:
    report, exe = load_build(out)
    cfg = frontend_config(report)
    rate, vocab = cfg.sample_rate, str(report["audio"]["vocab"])
    word_list = words.read_word_list(words_file, vocab) if words_file is not None else None
    pcm = read_wav(wav, rate)
    seconds = len(pcm) / rate
    check_window(report, pcm, wav)
    result, cpu = run_c(exe, pcm, vocab, cfg.n_mels, word_list=word_list)
    frame_ms = 1000.0 * SUBSAMPLE * cfg.hop_length / rate
    extra: dict[str, Any] = {}
    text = result.text
    if word_list is not None and result.entry is not None:
        w = result.entry
        text = word_list.texts[w.index] if w.index >= 0 else ""
        extra = {"greedy_text": result.text,
                 "words": {"index": w.index, "score": w.score, "free": w.free,
                           "margin": w.margin if w.index >= 0 else None,
                           "margin_per_frame": round(w.margin / w.frames, 4)
                           if w.index >= 0 and w.frames else None}}
    return {"text": text, **extra,
            "tokens": [{"text": vocab[t.id], "start_ms": round(t.start * frame_ms),
                        "end_ms": round((t.end + 1) * frame_ms)} for t in result.tokens],
            "audio_seconds": round(seconds, 4), "cpu_seconds": round(cpu, 6),
            "real_time_factor": round(cpu / seconds, 6) if seconds > 0 else None}


def cmd_transcribe(args: argparse.Namespace) -> int:
    result = transcribe(args.out, args.audio, args.words)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["text"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("transcribe", help="run a host build on a WAV file and print the text",
                       description="Read a WAV file (any rate and channel count: downmixed "
                                   "and resampled), run the build's audio front end, model "
                                   "and CTC decoder in C, and print the transcript.")
    p.add_argument("out", metavar="OUT", type=Path, help="a host build of a speech model")
    p.add_argument("audio", metavar="AUDIO", type=Path, help="a WAV file")
    p.add_argument("--json", action="store_true",
                   help="print the text, token times (ms) and the real-time factor as JSON")
    p.add_argument("--words", metavar="FILE", type=Path, default=None,
                   help="a word list (one word or phrase per line): print the entry the "
                        "audio fits best instead of the spelled text (command recognition)")
    p.set_defaults(func=cmd_transcribe)
