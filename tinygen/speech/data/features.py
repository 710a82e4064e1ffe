"""A corpus's front-end features in one file (``tinygen data features CORPUS --out FILE``).

Training reads every utterance through the integer front end. A feature file holds those
int8 codes, computed once, so that a run can start without the audio: on another machine
(a GPU host the WAVs are too large to copy to), or just faster. ``tinygen train --features
FILE`` trains on the file's utterances of each split; it refuses a file made with another
front end than the model's. Waveform augmentation still needs the audio.

Format: an xz-compressed ``.npz`` (``FORMAT``) with

- ``header``: JSON; the format and version, the front-end config, the corpus's name and
  license records, the sampling rule, and per split its utterances in order as
  ``[uid, text, source, seconds]`` (seconds as the corpus gives them, or null);
- ``codes``: every utterance's (frames, n_mels) int8 codes, one after another, each frame
  stored as its difference from the frame before (mod 256; the first from zeros), which
  compresses better and decodes exactly;
- ``frames``: int64, the frame count of each utterance in header order.
"""

from __future__ import annotations

import io
import json
import lzma
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.speech.data import DataError, Utterance

FORMAT = "tinygen-features"
VERSION = 1


@dataclass(frozen=True)
class FeatureStore:
    """Int8 front-end codes by utterance id, with the config that made them."""

    frontend: dict[str, int]
    splits: dict[str, list[Utterance]]  # path: the file itself
    codes: dict[str, np.ndarray]  # uid -> (frames, n_mels) int8
    header: dict[str, Any]

    def split(self, name: str) -> list[Utterance]:
        return self.splits.get(name, [])


def sample_utterances(utts: Sequence[Utterance], shares: Mapping[str, float],
                      seed: int) -> list[Utterance]:
    """Keep a seeded share of each source's utterances (``shares[source]``, default 1),
    in their corpus order."""
    by_source: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_source.setdefault(u.source or "", []).append(i)
    keep: set[int] = set()
    for k, (source, idx) in enumerate(sorted(by_source.items())):
        share = shares.get(source, 1.0)
        n = len(idx) if share >= 1.0 else math.floor(share * len(idx) + 0.5)
        rng = np.random.default_rng([seed, k])
        keep.update(int(idx[j]) for j in rng.permutation(len(idx))[:n])
    return [u for i, u in enumerate(utts) if i in keep]


def encode(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Int8 (T, F) arrays -> one flat int8 array of their time differences (mod 256)."""
    parts = []
    for q in frames:
        u = q.astype(np.uint8)
        d = np.empty_like(u)
        d[:1] = u[:1]
        d[1:] = u[1:] - u[:-1]  # uint8 wraps: exact mod 256
        parts.append(d.reshape(-1))
    return np.concatenate(parts).view(np.int8) if parts else np.zeros(0, np.int8)


def decode(flat: np.ndarray, counts: Sequence[int], n_mels: int) -> list[np.ndarray]:
    """Inverse of :func:`encode`."""
    out = []
    pos = 0
    for t in counts:
        d = flat[pos:pos + t * n_mels].view(np.uint8).reshape(t, n_mels)
        out.append(np.cumsum(d, axis=0, dtype=np.uint8).view(np.int8))
        pos += t * n_mels
    if pos != flat.size:
        raise DataError("feature file is damaged: its frame counts do not add up",
                        "make it again with `tinygen data features`")
    return out


def write_store(path: Path, frontend: dict[str, int], splits: dict[str, list[Utterance]],
                compute: Callable[[Utterance], np.ndarray | None],
                info: dict[str, Any], on_item: Callable[[], None] | None = None
                ) -> dict[str, int]:
    """Compute each utterance's codes (None: unusable, left out) and write the file
    atomically; returns the utterances kept per split."""
    ids: dict[str, list[list[str | float | None]]] = {}
    frames: list[np.ndarray] = []
    for split, utts in splits.items():
        ids[split] = []
        for u in utts:
            q = compute(u)
            if on_item is not None:
                on_item()
            if q is None:
                continue
            ids[split].append([u.uid, u.text, u.source, u.duration])
            frames.append(q)
    header = {"format": FORMAT, "version": VERSION, "frontend": frontend,
              "utterances": ids, **info}
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             codes=encode(frames), frames=np.array([len(q) for q in frames], np.int64))
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_bytes(lzma.compress(buf.getvalue(), preset=6))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return {s: len(v) for s, v in ids.items()}


def read_store(path: Path) -> FeatureStore:
    """Load a feature file; one-line DataError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {path} does not exist",
                        "make one with `tinygen data features CORPUS --out FILE`")
    try:
        with np.load(io.BytesIO(lzma.decompress(path.read_bytes())),
                     allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            flat, counts = z["codes"], [int(t) for t in z["frames"]]
    except (lzma.LZMAError, OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a tinygen feature file ({type(err).__name__})",
                        "make one with `tinygen data features CORPUS --out FILE`") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{path} is not a tinygen feature file",
                        "make one with `tinygen data features CORPUS --out FILE`")
    if header.get("version") != VERSION:
        raise DataError(f"{path} is feature file version {header.get('version')}, this "
                        f"tinygen reads version {VERSION}", "make it again")
    frontend = header["frontend"]
    rows = [r for s in header["utterances"].values() for r in s]
    if len(rows) != len(counts):
        raise DataError(f"feature file {path} is damaged: {len(rows)} utterances, "
                        f"{len(counts)} frame counts",
                        "make it again with `tinygen data features`")
    codes = dict(zip((r[0] for r in rows), decode(flat, counts, int(frontend["n_mels"])),
                     strict=True))
    seconds = int(frontend["hop_length"]) / int(frontend["sample_rate"])
    splits = {name: [Utterance(uid, path, text,
                               len(codes[uid]) * seconds if sec is None else sec, source)
                     for uid, text, source, sec in split]
              for name, split in header["utterances"].items()}
    return FeatureStore(frontend=frontend, splits=splits, codes=codes, header=header)


def parse_shares(items: Sequence[str]) -> dict[str, float]:
    """``SOURCE=F`` arguments -> {source: share}; one-line DataError on a bad one."""
    shares: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name or not 0.0 <= share <= 1.0:
            raise DataError(f"--sample {item!r} is not SOURCE=SHARE",
                            "e.g. --sample synth12=0.7 (a share from 0 to 1)")
        shares[name] = share
    return shares


def cmd_features(args: Any) -> int:
    from rich.progress import Progress

    from tinygen.audio.frontend import FrontendConfig
    from tinygen.speech.config import ConformerConfig, load_preset
    from tinygen.speech.data.dataset import UnusableAudio, load_split, read_audio
    from tinygen.speech.features import _tables, frontend_features, to_pcm16

    out: Path = args.out
    if out.exists() and not args.force:
        raise DataError(f"{out} already exists", "choose another --out, or pass --force")
    if not out.parent.is_dir():
        raise DataError(f"folder {out.parent} does not exist", "create it first")
    shares = parse_shares(args.sample)
    cfg = load_preset(args.preset) if args.preset else ConformerConfig()
    fe = FrontendConfig.of(cfg)
    tables = _tables(fe)
    listed = {split: load_split(args.corpus, split, cfg.vocab) for split in args.splits}
    unknown = set(shares) - {u.source or "" for utts in listed.values() for u in utts}
    if unknown:
        raise DataError(f"--sample names no source of {args.corpus}: "
                        f"{', '.join(sorted(unknown))}",
                        "use the source names of its corpus.json (by_source)")
    splits = {split: sample_utterances(utts, shares, args.seed)
              for split, utts in listed.items()}
    info: dict[str, Any] = {"corpus": Path(args.corpus).resolve().name,
                            "sample": shares, "seed": args.seed}
    meta = Path(args.corpus) / "corpus.json"
    if meta.is_file():
        info["corpus_json"] = json.loads(meta.read_text())

    def compute(u: Utterance) -> np.ndarray | None:
        try:
            wave = read_audio(u.path, fe.sample_rate)
        except UnusableAudio:
            return None
        if len(wave) < fe.win_length:
            return None
        return frontend_features(to_pcm16(wave), tables)

    total = sum(len(v) for v in splits.values())
    with Progress(disable=args.quiet) as bar:
        task = bar.add_task("features", total=total)
        kept = write_store(out, asdict(fe), splits, compute, info,
                           on_item=lambda: bar.advance(task))
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB): "
          + ", ".join(f"{s} {n}" for s, n in kept.items())
          + f" utterances of {total}")
    return 0
