"""Real speech in tinygen's corpus format (``tinygen data import KIND SRC --out DIR``).

Each source has its own module that reads the source's layout and yields
:class:`SourceItem` records (audio path, transcript, speaker, split); this module turns
them into a corpus laid out exactly like ``tinygen data synth`` writes it::

    OUT/corpus.json               source, version or commit, license, split rule, counts
    OUT/{train,dev,test}.jsonl    path, text, uid, duration, speaker, source, original
    OUT/wav/{split}/{uid}.wav     16 kHz mono 16-bit PCM

Audio is decoded and resampled by an outside tool, never by hand: ``sox`` for WAV and
FLAC (its resampler is libsoxr), ``ffmpeg`` for G.722. Both write 32-bit float, which is
rounded to int16 here, so there is no dither and the same source gives byte-identical
files. The corpus is built beside ``--out`` and renamed into place when complete.

Splits are fixed rules of the source, recorded in corpus.json: a source can be held out
whole (every utterance in ``test``), or split by a hash of each file's bytes, which does
not change when files are renamed or listed in another order.

``tinygen data merge`` joins the splits of several corpora (imported or synthetic) into
one, with a ``source`` field per utterance, so that ``tinygen eval`` can report each
source separately and ``tinygen train`` can read a mix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen import __version__
from tinygen.speech.config import DEFAULT_VOCAB
from tinygen.speech.data import SPLITS, DataError, normalize_text
from tinygen.speech.data.words import number

SAMPLE_RATE = 16000
SOX_HINT = "install it with: sudo apt-get install sox"
FFMPEG_HINT = "install it with: sudo apt-get install ffmpeg"


@dataclass(frozen=True)
class SourceItem:
    """One recording of a source, before conversion."""

    key: str  # unique within the source; becomes the uid (after sanitizing)
    audio: Path  # the source file
    text: str  # already normalized to the model vocabulary
    speaker: str
    split: str
    decoder: str = "sox"  # "sox" (wav, flac) or "ffmpeg" (g722)


@dataclass(frozen=True)
class Source:
    """What an importer found: the items and what corpus.json says of their origin."""

    meta: dict[str, Any]  # source, version, license, url, split_rule, ...
    items: list[SourceItem]


# ------------------------------------------------------------------------- text
_NUMBER = re.compile(r"\d+")
_SYMBOLS = {"#": " pound ", "*": " star ", "&": " and ", "%": " percent ", "@": " at "}


def spell_numbers(text: str) -> str:
    """Digits written out as the synthetic corpus writes them: "press 12" -> "press twelve"."""
    def words(m: re.Match[str]) -> str:
        n = int(m.group())
        return f" {number(n)} " if n < 1_000_000 else " ".join(number(int(d)) for d in m.group())

    return _NUMBER.sub(words, text)


def fold_accents(text: str) -> str:
    """Letters without their accents ("café" -> "cafe") and typographic apostrophes as
    ``'``, for sources written by people rather than for a telephone system."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def transcript(text: str, vocab: str = DEFAULT_VOCAB) -> str:
    """A source's transcript in the model vocabulary: numbers and key names spelled out,
    bracketed notes (``[beep tone]``) dropped, everything else as :func:`normalize_text`."""
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = text.replace("-", " ")
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    return normalize_text(spell_numbers(text), vocab)


# ------------------------------------------------------------------------ split
def hash_fraction(path: Path) -> float:
    """A number in [0, 1) fixed by the file's bytes (first 8 hex digits of its SHA-256)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return int(digest[:8], 16) / 2**32


def hash_split(path: Path, test: float, dev: float) -> str:
    """test when hash_fraction < test, dev when below test + dev, else train."""
    f = hash_fraction(path)
    return "test" if f < test else "dev" if f < test + dev else "train"


def hash_rule(test: float, dev: float) -> str:
    return (f"by file hash: f = int(sha256(file bytes)[:8], 16) / 2**32; test if f < {test}, "
            f"dev if f < {round(test + dev, 6)}, else train")


# ------------------------------------------------------------------------ audio
def need_tool(name: str, hint: str) -> str:
    where = shutil.which(name)
    if where is None:
        raise DataError(f"{name} not found on PATH; tinygen data import needs it", hint)
    return where


def decode(item: SourceItem) -> np.ndarray:
    """(samples,) float32 at 16 kHz mono, decoded and resampled by sox or ffmpeg."""
    if item.decoder == "ffmpeg":
        cmd = [need_tool("ffmpeg", FFMPEG_HINT), "-nostdin", "-v", "error", "-i",
               str(item.audio), "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
        hint = FFMPEG_HINT
    else:
        cmd = [need_tool("sox", SOX_HINT), "-V1", str(item.audio), "-t", "raw", "-e",
               "floating-point", "-b", "32", "-r", str(SAMPLE_RATE), "-c", "1", "-"]
        hint = SOX_HINT
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DataError(f"cannot decode {item.audio}: {err[-1] if err else 'no message'}",
                        hint)
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


SOX_TYPES = frozenset({".wav", ".flac"})


def decoder_for(path: Path) -> str:
    """sox for WAV and FLAC, ffmpeg for every other audio type (MP3, Ogg, M4A, ...)."""
    return "sox" if path.suffix.lower() in SOX_TYPES else "ffmpeg"


def limit_split(items: Sequence[SourceItem], n: int) -> list[SourceItem]:
    """At most ``n`` items of each split: those whose key has the smallest SHA-256, so the
    same source and ``n`` always keep the same recordings, and a larger ``n`` keeps them
    all and more."""
    def rank(it: SourceItem) -> str:
        return hashlib.sha256(it.key.encode()).hexdigest()

    kept: list[SourceItem] = []
    for split in SPLITS:
        kept += sorted((it for it in items if it.split == split), key=rank)[:n]
    return kept


def limit_rule(n: int) -> str:
    return (f"at most {n} per split: those with the smallest sha256(key), key being the "
            "'original' field")


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x.astype(np.float64), -1.0, 32767 / 32768) * 32768).astype(np.int16)


def safe_uid(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")


# ------------------------------------------------------------------------ corpus
def check_out(out: Path, force: bool) -> None:
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty",
                        "choose another --out, or pass --force to replace it")


def build_corpus(source: Source, out: Path, force: bool = False, jobs: int = 1,
                 progress: bool = True) -> dict[str, Any]:
    """Convert ``source`` into a corpus at ``out``, completely or not at all."""
    from tinygen.speech.data.synth import staged, wav_bytes, write_json

    out = Path(out)
    check_out(out, force)
    items = sorted(source.items, key=lambda it: it.key)
    uids = [safe_uid(it.key) for it in items]
    if len(set(uids)) != len(uids):
        raise DataError(f"{source.meta['source']}: two recordings map to one name",
                        "report this as a tinygen bug")
    if not items:
        raise DataError(f"{source.meta['source']}: no usable recordings found",
                        "check SRC")
    with staged(out) as tmp:
        def convert(i: int) -> dict[str, Any]:
            it, uid = items[i], uids[i]
            samples = to_int16(decode(it))
            rel = f"wav/{it.split}/{uid}.wav"
            (tmp / rel).write_bytes(wav_bytes(samples))
            return {"uid": uid, "path": rel, "text": it.text, "speaker": it.speaker,
                    "source": source.meta["source"], "original": it.key,
                    "duration": round(len(samples) / SAMPLE_RATE, 4)}

        for split in SPLITS:
            (tmp / "wav" / split).mkdir(parents=True)
        entries = _run_all(convert, len(items), jobs, progress, source.meta["source"])
        sizes = {}
        for split in SPLITS:
            lines = [json.dumps(e, sort_keys=True) + "\n"
                     for e, it in zip(entries, items, strict=True)
                     if it.split == split]
            sizes[split] = len(lines)
            (tmp / f"{split}.jsonl").write_text("".join(lines))
        meta = {
            "format": "tinygen-imported-corpus",
            "version": 1,
            **source.meta,
            "utterances": sizes,
            "speakers": {s: sorted({it.speaker for it in items if it.split == s})
                         for s in SPLITS},
            "sample_rate": SAMPLE_RATE,
            "hours": round(sum(e["duration"] for e in entries) / 3600, 4),
            "tools": {"tinygen": __version__, **tool_versions({it.decoder for it in items})},
        }
        write_json(tmp / "corpus.json", meta)
    return meta


def tool_versions(decoders: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in sorted(decoders):
        flag = "--version" if name == "sox" else "-version"
        proc = subprocess.run([need_tool(name, SOX_HINT if name == "sox" else FFMPEG_HINT),
                               flag], capture_output=True, check=False)
        first = proc.stdout.decode(errors="replace").strip().splitlines()
        out[name] = first[0].strip() if first else "unknown"
    return out


def _run_all(fn: Callable[[int], dict[str, Any]], n: int, jobs: int, progress: bool,
             what: str) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if jobs < 1:
        raise DataError(f"--jobs {jobs} is too few", "give at least 1")
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    with (Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                   disable=not progress) as bar, ThreadPoolExecutor(jobs) as pool):
        task = bar.add_task(f"import {what}", total=n)
        for i, entry in enumerate(pool.map(fn, range(n))):
            results[i] = entry
            bar.advance(task)
    return results


# ------------------------------------------------------------------------- merge
def merge(out: Path, corpora: Sequence[Path], splits: Sequence[str] = SPLITS,
          max_seconds: float | None = None, force: bool = False,
          vocabulary_only: bool = False) -> dict[str, Any]:
    """Join ``splits`` of several corpora into one at ``out`` (WAVs hard-linked or copied).

    Each manifest line gains ``source`` (the corpus's source name, or its folder name for
    a synthetic corpus) and its path is rewritten under ``wav/<source>/``. Utterances
    longer than ``max_seconds`` are left out, and with ``vocabulary_only`` those with a
    word outside the synthetic corpus's phrase vocabulary (:func:`words.vocabulary`).
    corpus.json lists every part with its own corpus.json, so licenses and versions
    travel with the mix.
    """
    from tinygen.speech.data.words import vocabulary

    known = vocabulary()
    from tinygen.speech.data.synth import staged, write_json

    out = Path(out)
    check_out(out, force)
    if not corpora:
        raise DataError("nothing to merge", "give one or more corpus folders")
    parts, names = [], set()
    for c in corpora:
        meta_path = Path(c) / "corpus.json"
        if not meta_path.is_file():
            raise DataError(f"{c} has no corpus.json",
                            "give folders made by `tinygen data import` or `data synth`")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path} is not a corpus description", "rebuild that corpus")
        name = str(meta.get("source", Path(c).resolve().name))
        if name in names:
            raise DataError(f"two corpora named {name}", "merge each source once")
        names.add(name)
        parts.append((Path(c), name, meta))
    with staged(out) as tmp:
        sizes: dict[str, int] = {}
        by_source: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            lines = []
            for root, name, _ in parts:
                manifest = root / f"{split}.jsonl"
                if split not in splits or not manifest.is_file():
                    continue
                kept = 0
                for lineno, line in enumerate(manifest.read_text().splitlines(), 1):
                    if not line.strip():
                        continue
                    entry = _manifest_entry(manifest, lineno, line)
                    dur = entry.get("duration")
                    if max_seconds is not None and isinstance(dur, (int, float)) \
                            and dur > max_seconds:
                        continue
                    if vocabulary_only and not set(entry["text"].split()) <= known:
                        continue
                    src = root / entry["path"]
                    rel = f"wav/{name}/{entry['path'].removeprefix('wav/')}"
                    dst = tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(src, dst)
                    entry.update(path=rel, source=name,
                                 uid=f"{name}-{entry.get('uid', Path(rel).stem)}")
                    lines.append(json.dumps(entry, sort_keys=True) + "\n")
                    kept += 1
                by_source.setdefault(name, {})[split] = kept
            sizes[split] = len(lines)
            (tmp / f"{split}.jsonl").write_text("".join(lines))
        meta = {"format": "tinygen-merged-corpus", "version": 1, "utterances": sizes,
                "splits": list(splits), "max_seconds": max_seconds,
                "vocabulary_only": vocabulary_only,
                "by_source": by_source, "sample_rate": SAMPLE_RATE,
                "parts": {name: m for _, name, m in parts}}
        write_json(tmp / "corpus.json", meta)
    return meta


def _manifest_entry(manifest: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        entry = None
    if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
            and isinstance(entry.get("text"), str)):
        raise DataError(f"{manifest}:{lineno} needs string fields 'path' and 'text'",
                        "rebuild that corpus")
    if not (manifest.parent / entry["path"]).is_file():
        raise DataError(f"{manifest}:{lineno}: {entry['path']} is missing", "rebuild that corpus")
    return entry


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# --------------------------------------------------------------------------- CLI
def importers() -> dict[str, Callable[[Path, str | None], Source]]:
    """KIND -> scan(SRC) for every source tinygen imports."""
    from tinygen.speech.data import (
        asterisk,
        commonvoice,
        dctts,
        pocketsphinx,
        recordings,
        speechcommands,
        speechtophrase,
        wakeword,
    )

    return {m.KIND: m.scan for m in (wakeword, dctts, asterisk, pocketsphinx, speechtophrase,
                                     speechcommands, commonvoice, recordings)}


def cmd_import(args: argparse.Namespace) -> int:
    from tinygen.speech.data import recordings

    src = Path(args.src)
    own = {"--split": args.split, "--name": args.name, "--license": args.license}
    given = [flag for flag, value in own.items() if value is not None]
    if given and args.kind != recordings.KIND:
        raise DataError(f"{given[0]} applies to recordings only",
                        f"{args.kind} has a fixed split rule, name and license")
    if not src.exists():
        raise DataError(f"source folder {src} does not exist", "give the folder SRC "
                        "described by `tinygen data import --help`")
    check_out(Path(args.out), args.force)
    if args.kind == recordings.KIND:
        source = recordings.scan(src, args.revision, split=args.split or "hash",
                                 license=args.license, name=args.name)
    else:
        source = importers()[args.kind](src, args.revision)
    if args.max_per_split is not None:
        source = Source(meta={**source.meta, "selection": limit_rule(args.max_per_split)},
                        items=limit_split(source.items, args.max_per_split))
    meta = build_corpus(source, args.out, force=args.force, jobs=args.jobs,
                        progress=not args.quiet)
    sizes = meta["utterances"]
    print(f"wrote {sum(sizes.values())} utterances ({meta['hours'] * 60:.1f} min) of "
          f"{meta['source']} ({meta['license']}) to {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    meta = merge(args.out, args.corpora, splits=args.splits or SPLITS,
                 max_seconds=args.max_seconds, force=args.force,
                 vocabulary_only=args.vocabulary_only)
    sizes = meta["utterances"]
    print(f"wrote {sum(sizes.values())} utterances to {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0
