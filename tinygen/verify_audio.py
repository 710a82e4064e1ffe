"""``tinygen verify OUT --audio FILE``: a QEMU build hears a WAV file; compare with Python.

In: a qemu-m4/m7/m55 build of a speech model (``OUT/qemu/transcribe.elf``) and a WAV file
(read, downmixed and resampled as ``tinygen transcribe`` does). The firmware reads the
PCM through semihosting, runs front end -> model -> greedy CTC and prints every feature
frame, every model output and the tokens; :func:`tinygen.transcribe.golden_transcript`
computes the same in Python (tinygen.audio front end, the golden int8 reference,
tinygen.audio.ctc). Out: whether the features and logits are bit-exact and the
transcripts equal, and the instructions the firmware executed (front end, and model with
its CTC push, counted by the QEMU plugin between markers; reading and printing excluded).

The golden reference needs the int8 graph, which OUT does not hold: it is compiled again
from report.json's ``source`` (MODEL, --window-ms, --calib, --data, as ``tinygen build``
recorded them), and must reproduce the build's own test vectors bit for bit before it is
trusted.

Instructions per second of audio are taken over the audio the firmware processed (the
utterance and the silence that completes the window or the last chunk). Divided by the
clock of the target's PlatformIO board (qemu-m4: the cortex-m4 board, ...) they give a
real-time factor that is a lower bound: real cores need more than one cycle for some
instructions and wait for memory.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.audio import frontend as F
from tinygen.audio_build import audio_input_range
from tinygen.errors import TinygenError
from tinygen.targets import boards, qemu
from tinygen.transcribe import (
    check_window,
    frontend_config,
    golden_transcript,
    parse_output,
    read_wav,
)
from tinygen.verify import load_report


class VerifyAudioError(TinygenError):
    """A build or a file that verify --audio cannot use."""


def golden_of(out: Path, report: dict[str, Any]) -> Any:
    """The build's int8 model compiled again from report.json's ``source``, checked
    against the build's test vectors."""
    from tinygen.build import _streams
    from tinygen.compiler.pipeline import compile_model
    from tinygen.speech.calib import inputs, window_frames
    from tinygen.speech.checkpoint import load_model
    from tinygen.speech.streaming import compile_streaming

    src = report.get("source")
    if not src:
        raise VerifyAudioError(f"{out}/report.json does not say how the model was built",
                               "rebuild OUT with `tinygen build`")
    spec = str(src["model"])
    if not spec.startswith("preset:") and not Path(spec).is_file():
        raise VerifyAudioError(f"the model {spec} that OUT was built from is gone",
                               "rebuild OUT from where the checkpoint is now")
    model = load_model(spec)
    data = Path(src["data"]) if src.get("data") else None
    frames = window_frames(model.cfg, float(src["window_ms"]))
    cal = inputs(model.cfg, frames, int(src["calib"]), seed=0, data=data, split="train")
    if _streams(model):
        compiled = compile_streaming(model, cal)
    else:
        compiled = compile_model(model, frames, cal, input_range=audio_input_range(model))
    folder = out / "test_vectors"
    inp = np.frombuffer((folder / "input_0.bin").read_bytes(), np.int8)
    shape = compiled.int8.values[compiled.int8.inputs[0]].shape
    if "state_init" in compiled.int8.meta:
        step = int(np.prod(shape))
        chunks = [inp[k:k + step].reshape(shape) for k in range(0, len(inp), step)]
        got = b"".join(y.tobytes() for y in
                       compiled.stream_int8(chunks, compiled.int8.meta["state_init"]))
    else:
        got = compiled.run_int8(inp.reshape(shape)).tobytes()
    if got != (folder / "expected_0.bin").read_bytes():
        raise VerifyAudioError(f"compiling {spec} again does not reproduce OUT's test "
                               "vectors (the checkpoint or tinygen changed)",
                               "rebuild OUT with `tinygen build`")
    return compiled


def board_clock_mhz(target: str) -> tuple[str, int]:
    """The PlatformIO board whose core the QEMU target emulates, and its clock."""
    board = boards.resolve("cortex-" + target.removeprefix("qemu-"), None)
    return board.name, int(board.clock_mhz)


def verify_audio(out: Path, wav: Path, compiled: Any = None) -> dict[str, Any]:
    out = Path(out)
    report = load_report(out)
    target = str(report.get("target"))
    board = qemu.BOARDS.get(target)
    elf = out / qemu.TRANSCRIBE_ELF
    if board is None or board.arch is not qemu.ARM or "audio" not in report:
        raise VerifyAudioError(f"{out} is a {target} build; --audio runs the transcriber "
                               "of a speech model's qemu-m4, qemu-m7 or qemu-m55 build",
                               "build the model with --target qemu-m4 (on the host: "
                               "tinygen transcribe)")
    if not elf.is_file():
        raise VerifyAudioError(f"{elf} is missing", "rebuild OUT with `tinygen build`")
    cfg = frontend_config(report)
    vocab = str(report["audio"]["vocab"])
    pcm = read_wav(wav, cfg.sample_rate)
    check_window(report, pcm, wav)
    if compiled is None:
        compiled = golden_of(out, report)
    golden = golden_transcript(compiled, vocab, pcm, F.frontend_tables(cfg))
    with tempfile.TemporaryDirectory(prefix="tinygen-audio-") as tmp:
        (Path(tmp) / "tg_audio.pcm").write_bytes(np.asarray(pcm, "<i2").tobytes())
        console, code, totals, _ = qemu.run_elf(out, elf.resolve(), board, cwd=Path(tmp))
    if code != 0:
        errors = re.findall(r"^tg_error (.*)$", console, re.M) or [f"exit status {code}"]
        raise VerifyAudioError(f"the {target} transcriber failed: {errors[0][:200]}",
                               "rebuild OUT; if it persists, report it")
    got, _ = parse_output(console, vocab, cfg.n_mels)
    regions = re.findall(r"^tg_region ([fm])$", console, re.M)
    if len(regions) != len(totals):
        raise VerifyAudioError(f"{len(regions)} measured regions but {len(totals)} "
                               "instruction counts", "rebuild OUT; if it persists, report it")
    frontend = sum(t for r, t in zip(regions, totals, strict=True) if r == "f")
    model = sum(t for r, t in zip(regions, totals, strict=True) if r == "m")
    processed = cfg.win_length + (len(golden.features) - 1) * cfg.hop_length
    seconds = processed / cfg.sample_rate
    name, mhz = board_clock_mhz(target)
    per_second = (frontend + model) / seconds
    return {
        "target": target, "audio": str(wav),
        "audio_seconds": round(len(pcm) / cfg.sample_rate, 4),
        "processed_seconds": round(seconds, 4),
        "features": len(golden.features),
        "features_bit_exact": bool(np.array_equal(got.features, golden.features)),
        "logits_bit_exact": bool(np.array_equal(got.logits, golden.logits)),
        "tokens_equal": got.tokens == golden.tokens,
        "transcript_equal": got.text == golden.text,
        "text": got.text, "golden_text": golden.text,
        "instructions_frontend": frontend, "instructions_model_and_decoder": model,
        "frontend_share_of_model": round(frontend / model, 4) if model else None,
        "instructions_per_second_of_audio": round(per_second),
        "clock_board": name, "clock_mhz": mhz,
        "real_time_factor_lower_bound": round(per_second / (mhz * 1e6), 4),
    }


def ok(result: dict[str, Any]) -> bool:
    return bool(result["features_bit_exact"] and result["logits_bit_exact"]
                and result["tokens_equal"] and result["transcript_equal"])


def print_result(out: Path, wav: Path, as_json: bool) -> int:
    """``tinygen verify OUT --audio WAV``: print the comparison; 0 when all three agree."""
    import json

    result = verify_audio(out, wav)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        def yes(flag: bool) -> str:
            return "yes" if flag else "NO"

        print(f"{result['target']} heard: {result['text']!r} (Python: "
              f"{result['golden_text']!r})\n"
              f"features bit-exact {yes(result['features_bit_exact'])} "
              f"({result['features']} frames), logits bit-exact "
              f"{yes(result['logits_bit_exact'])}, transcript equal "
              f"{yes(result['transcript_equal'])}\n"
              f"{result['instructions_per_second_of_audio']:,} instructions per second of "
              f"audio (front end {result['instructions_frontend']:,}, model and decoder "
              f"{result['instructions_model_and_decoder']:,} over "
              f"{result['processed_seconds']} s); at {result['clock_mhz']} MHz "
              f"({result['clock_board']}) that is a real-time factor of at least "
              f"{result['real_time_factor_lower_bound']} (instructions / clock is a lower "
              "bound on time)")
    return 0 if ok(result) else 1
