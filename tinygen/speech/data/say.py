"""``tinygen data say TEXT -o FILE.wav``: one utterance from the project's own synthesizer.

The same path as ``tinygen data synth`` (espeak-ng, resampled by sox, levelled and padded
by :func:`tinygen.speech.data.synth.mix`) for one chosen voice, with quiet white noise
(40 dB SNR) so the file sounds like the training data. The same arguments give
byte-identical files. An existing FILE is never replaced without ``--force``; the file is
written whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.synth import SAMPLE_RATE, Plan, find_tools, mix, speak, wav_bytes


def say(text: str, voice: str = "en-us", variant: str = "m1", speed: int = 150,
        pitch: int = 50) -> bytes:
    """The WAV file (16 kHz mono int16) of ``text`` spoken by espeak-ng."""
    if not text.strip():
        raise DataError("the text to say is empty", "give a phrase, e.g. \"lights on\"")
    plan = Plan(uid="say", split="say", text=text, voice=voice, variant=variant, speed=speed,
                pitch=pitch, gap=0, noise="white", snr_db=40.0, peak=0.5, lead_s=0.15,
                tail_s=0.15, seed=0)
    return wav_bytes(mix(speak(find_tools(), plan), plan), SAMPLE_RATE)


def cmd_say(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        raise DataError(f"{out} already exists", "pass --force to replace it, or choose "
                        "another -o")
    if out.is_dir():
        raise DataError(f"{out} is a folder", "give a file name, e.g. -o hello.wav")
    data = say(args.text, args.voice, args.variant, args.speed, args.pitch)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    seconds = (len(data) - 44) / 2 / SAMPLE_RATE
    print(f"wrote {out} ({seconds:.2f} s, {SAMPLE_RATE} Hz mono)")
    return 0


def add_parser(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = actions.add_parser("say", help="speak a phrase into a WAV file with espeak-ng",
                           description="Synthesize one phrase with espeak-ng (the corpus "
                                       "synthesizer) as a 16 kHz mono WAV file.")
    s.add_argument("text", metavar="TEXT", help="the phrase to say")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="the WAV file to write")
    s.add_argument("--voice", default="en-us", help="espeak-ng voice (default en-us)")
    s.add_argument("--variant", default="m1", help="espeak-ng variant (default m1)")
    s.add_argument("--speed", type=int, default=150, metavar="WPM",
                   help="words per minute (default 150)")
    s.add_argument("--pitch", type=int, default=50, metavar="P",
                   help="espeak-ng pitch 0-99 (default 50)")
    s.add_argument("--force", action="store_true", help="replace FILE if it exists")
    s.set_defaults(func=cmd_say)
