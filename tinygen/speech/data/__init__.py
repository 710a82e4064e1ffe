"""Speech data for training and evaluation.

- :mod:`tinygen.speech.data.synth`: a synthetic corpus made with espeak-ng (``tinygen data synth``).
- :mod:`tinygen.speech.data.librispeech`: a local LibriSpeech-format directory (flac + .trans.txt).
- :mod:`tinygen.speech.data.imports`: real recordings in the same corpus format
  (``tinygen data import KIND SRC``; one module per source: ``wakeword``, ``dctts``,
  ``asterisk``, ``pocketsphinx``, ``speechtophrase``), and ``tinygen data merge`` to join
  corpora.
- :mod:`tinygen.speech.data.augment`: waveform augmentation for training.
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

from tinygen.errors import TinygenError, int_arg

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
    source: str | None = None  # the corpus it came from (manifests of `data merge`)


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
    s.add_argument("--utterances", type=int_arg(1, 1_000_000), required=True, metavar="N",
                   help="total utterances (80%% train, 10%% dev, 10%% test)")
    s.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0, metavar="S",
                   help="the same seed gives byte-identical files (default 0)")
    s.add_argument("--jobs", type=int_arg(1, 256), default=min(4, os.cpu_count() or 1), metavar="J",
                   help="utterances rendered in parallel (default: min(4, cores))")
    s.add_argument("--engines", default="espeak-ng", metavar="LIST",
                   help="comma-separated TTS engines: espeak-ng, flite, festival (optional "
                        "Debian packages; default espeak-ng alone)")
    s.add_argument("--force", action="store_true", help="replace DIR if it exists")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)
    from tinygen.speech.data.say import add_parser as add_say

    add_say(actions)

    kinds = ("wake-word-benchmark", "dc-tts", "asterisk", "pocketsphinx", "speech-to-phrase",
             "speech-commands", "common-voice", "recordings")
    i = actions.add_parser(
        "import", help="turn a real speech source into a corpus",
        description="Convert real recordings to 16 kHz WAV plus JSONL manifests, with the "
                    "source, its revision and license, and the split rule in corpus.json. "
                    "SRC: wake-word-benchmark, dc-tts, speech-to-phrase: a checkout of the "
                    "GitHub repository; speech-commands: a folder in Speech Commands' layout "
                    "(<word>/<id>_nohash_<n>.wav) or a checkout that holds one, digits left "
                    "out; asterisk and pocketsphinx: a folder into which the Debian "
                    "packages were extracted with `dpkg -x`; common-voice: the language "
                    "folder of a Common Voice release (clips/, train.tsv, dev.tsv, "
                    "test.tsv); recordings: your own recordings, listed in "
                    "SRC/transcripts.tsv as FILE<TAB>TEXT[<TAB>SPEAKER] (see "
                    "docs/training.md).")
    i.add_argument("kind", choices=kinds, metavar="KIND", help=", ".join(kinds))
    i.add_argument("src", type=Path, metavar="SRC", help="the source folder")
    i.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="corpus folder to create")
    i.add_argument("--revision", default=None, metavar="REV",
                   help="the source's commit or version, recorded in corpus.json (Debian "
                        "sources: read from the package's changelog)")
    i.add_argument("--max-per-split", type=int_arg(1, 10**9), default=None, metavar="N",
                   help="import at most N recordings of each split, chosen by a hash of "
                        "their names (the same N keeps the same ones; default: all)")
    i.add_argument("--split", default=None, choices=("hash", "train", "dev", "test"),
                   help="recordings only: deal them by a hash of their bytes (10%% test, "
                        "10%% dev; the default) or put all in one split")
    i.add_argument("--name", default=None, metavar="NAME",
                   help="recordings only: the corpus's source name (default recordings)")
    i.add_argument("--license", default=None, metavar="TEXT",
                   help="recordings only: their license, recorded in corpus.json")
    i.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), metavar="J",
                   help="files converted in parallel (default: min(4, cores))")
    i.add_argument("--force", action="store_true", help="replace DIR if it exists")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=_cmd_import)

    pr = actions.add_parser(
        "prompts", help="write a list of phrases to record, for `data import recordings`",
        description="Write DIR/transcripts.tsv: N distinct phrases of the model's vocabulary, "
                    "each with the file to record it into (0001.wav, ...). Record them, "
                    "then `tinygen data import recordings DIR --out CORPUS`.")
    pr.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="folder for transcripts.tsv and the recordings")
    pr.add_argument("--count", type=int_arg(1, 10_000), default=200, metavar="N",
                    help="phrases (default 200)")
    pr.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0, metavar="S",
                    help="the same seed gives the same phrases (default 0)")
    pr.add_argument("--speaker", default="me", metavar="NAME",
                    help="speaker written on every line (default me)")
    pr.set_defaults(func=_cmd_prompts)

    m = actions.add_parser(
        "merge", help="join corpora into one, with a source field per utterance",
        description="Join the splits of corpora made by `data import` or `data synth` "
                    "into one corpus (WAVs hard-linked where possible). Each utterance "
                    "gains a `source` field, which `tinygen eval --source` filters on.")
    m.add_argument("corpora", type=Path, nargs="+", metavar="CORPUS",
                   help="corpus folders to join")
    m.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="corpus folder to create")
    m.add_argument("--splits", nargs="+", choices=SPLITS, default=None, metavar="SPLIT",
                   help="only these splits (default: all)")
    m.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="leave out utterances longer than S seconds")
    m.add_argument("--vocabulary-only", action="store_true",
                   help="keep only utterances whose every word is in the vocabulary of "
                        "`data synth` (numbers, commands, ...)")
    m.add_argument("--force", action="store_true", help="replace DIR if it exists")
    m.set_defaults(func=_cmd_merge)

    f = actions.add_parser(
        "features", help="compute a corpus's front-end features once, into one file",
        description="Run the integer front end over the utterances of a corpus and store "
                    "their int8 features, transcripts and sources in one xz-compressed file. "
                    "`tinygen train --data FILE` then trains without the audio (e.g. on "
                    "another machine); waveform augmentation still needs the corpus.")
    f.add_argument("corpus", type=Path, metavar="CORPUS", help="a corpus folder")
    f.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="feature file to write (e.g. mix.feat)")
    f.add_argument("--splits", nargs="+", choices=SPLITS, default=["train", "dev"],
                   metavar="SPLIT", help="splits to store (default: train dev)")
    f.add_argument("--sample", nargs="+", default=[], metavar="SOURCE=SHARE",
                   help="keep a seeded share of a source's utterances (default: all), "
                        "e.g. synth12=0.7")
    f.add_argument("--preset", default=None, metavar="P",
                   help="the model preset whose front end to run (default: the standard "
                        "40-mel front end every preset uses)")
    f.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0, metavar="S",
                   help="seed of --sample (default 0)")
    f.add_argument("--force", action="store_true", help="replace FILE if it exists")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_cmd_features)


def _cmd_features(args: argparse.Namespace) -> int:
    from tinygen.speech.data.features import cmd_features

    return cmd_features(args)


def _cmd_import(args: argparse.Namespace) -> int:
    from tinygen.speech.data.imports import cmd_import

    return cmd_import(args)


def _cmd_prompts(args: argparse.Namespace) -> int:
    from tinygen.speech.data.recordings import cmd_prompts

    return cmd_prompts(args)


def _cmd_merge(args: argparse.Namespace) -> int:
    from tinygen.speech.data.imports import cmd_merge

    return cmd_merge(args)


def _cmd_synth(args: argparse.Namespace) -> int:
    from tinygen.speech.data.synth import cmd_synth

    return cmd_synth(args)
