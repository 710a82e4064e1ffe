"""Speech data for training and evaluation.

- :mod:`tinygen.speech.data.synth`: a synthetic corpus made with espeak-ng (``tinygen data synth``).
- :mod:`tinygen.speech.data.librispeech`: a local LibriSpeech-format directory (flac + .trans.txt).
- :mod:`tinygen.speech.data.dataset`: a torch Dataset of (log-mel, label ids) over either source.

Both sources describe audio as :class:`Utterance` records. This module stays free of torch
so that the command line starts fast.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinygen.errors import TinygenError

SPLITS = ("train", "dev", "test")


class DataError(TinygenError):
    """A corpus, manifest or audio tool that cannot be used."""


@dataclass(frozen=True)
class Utterance:
    """One audio file and its transcript (already in the model's vocabulary)."""

    uid: str
    path: Path  # absolute
    text: str
    duration: float | None = None  # seconds, when the source knows it


def normalize_text(text: str, vocab: str) -> str:
    """Lowercase, map characters outside ``vocab`` to spaces, collapse whitespace.

    ``vocab[0]`` is the CTC blank and never appears in a transcript.
    """
    allowed = set(vocab[1:])
    chars = [c if c in allowed else " " for c in text.lower()]
    return re.sub(r"\s+", " ", "".join(chars)).strip()


# --------------------------------------------------------------------------- CLI
def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tinygen data ...`` to the top-level subcommands."""
    p = sub.add_parser("data", help="build speech corpora for training and evaluation")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = actions.add_parser(
        "synth", help="synthesize a speech corpus with espeak-ng",
        description="Synthesize short device phrases with espeak-ng in several voices, "
                    "with speed/pitch jitter and noise, as 16 kHz WAV plus JSONL manifests "
                    "(train/dev/test; voice+variant combinations disjoint between splits).")
    s.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="corpus folder to create")
    s.add_argument("--utterances", type=int, required=True, metavar="N",
                   help="total utterances (80%% train, 10%% dev, 10%% test)")
    s.add_argument("--seed", type=int, default=0, metavar="S",
                   help="the same seed gives byte-identical files (default 0)")
    s.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), metavar="J",
                   help="utterances rendered in parallel (default: min(4, cores))")
    s.add_argument("--force", action="store_true", help="replace DIR if it exists")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)
    from tinygen.speech.data.say import add_parser as add_say

    add_say(actions)


def _cmd_synth(args: argparse.Namespace) -> int:
    from tinygen.speech.data.synth import cmd_synth

    return cmd_synth(args)
