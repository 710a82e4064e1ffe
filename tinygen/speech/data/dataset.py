"""A torch Dataset of (log-mel, label ids) over a manifest or a LibriSpeech folder.

``--data DIR`` is either a corpus from ``tinygen data synth`` (``DIR/{split}.jsonl``,
lines with at least ``path`` and ``text``; a relative path is relative to DIR) or a
LibriSpeech root (``DIR/{split}-*/speaker/chapter/*.flac``). :func:`load_split` hides
the difference.

An audio file that cannot be used (unreadable, corrupt, empty, another sample rate) never
stops a run: ``__getitem__`` returns :class:`Skipped`, :func:`collate` leaves it out of the
batch and passes it on, and :class:`SkipLog` warns once and counts the distinct files.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tinygen.speech.config import ConformerConfig
from tinygen.speech.data import DataError, Utterance, normalize_text
from tinygen.speech.data.librispeech import is_librispeech, read_librispeech, soundfile, split_dirs
from tinygen.speech.features import frontend_logmel


class DataWarning(UserWarning):
    """Audio that was skipped."""


# ---------------------------------------------------------------------- sources
def read_manifest(path: Path, vocab: str) -> list[Utterance]:
    """A JSONL manifest: one object per line with ``path`` and ``text``."""
    root = path.parent
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"cannot read manifest {path}: {err.strerror}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{lineno} is not a JSON object",
                            "regenerate the manifest") from None
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and isinstance(entry.get("text"), str)):
            raise DataError(f"{path}:{lineno} needs string fields 'path' and 'text'",
                            "regenerate the manifest")
        audio = Path(entry["path"])
        duration = entry.get("duration")
        out.append(Utterance(
            uid=str(entry.get("uid", f"{path.stem}-{lineno}")),
            path=(audio if audio.is_absolute() else root / audio).resolve(),
            text=normalize_text(entry["text"], vocab),
            duration=float(duration) if isinstance(duration, (int, float)) else None,
            source=str(entry["source"]) if isinstance(entry.get("source"), str) else None))
    return out


def has_split(data: Path, split: str) -> bool:
    """True when :func:`load_split` finds ``split`` in ``data`` (without reading it)."""
    data = Path(data)
    if (data / f"{split}.jsonl").is_file():
        return True
    return data.is_dir() and is_librispeech(data) and (
        bool(split_dirs(data, split)) or data.name == split
        or data.name.startswith(f"{split}-"))


def load_split(data: Path, split: str, vocab: str) -> list[Utterance]:
    """The utterances of ``split`` in a synth corpus or a LibriSpeech root."""
    data = Path(data)
    if data.exists() and not data.is_dir():
        raise DataError(f"--data {data} is a file, not a corpus folder",
                        "give the folder that holds train.jsonl/dev.jsonl/test.jsonl, or a "
                        "LibriSpeech root")
    if not data.is_dir():
        raise DataError(f"data folder {data} does not exist",
                        "make one with `tinygen data synth --out DIR --utterances N`")
    manifest = data / f"{split}.jsonl"
    if manifest.is_file():
        return read_manifest(manifest, vocab)
    if is_librispeech(data):
        subsets = split_dirs(data, split)
        if data.name == split or data.name.startswith(f"{split}-"):
            subsets = [data]  # a single subset given directly, e.g. .../test-clean
        if not subsets:
            raise DataError(f"LibriSpeech folder {data} has no subset for split '{split}'",
                            f"expected a folder named {split}-* (e.g. {split}-clean)")
        return [u for d in subsets for u in read_librispeech(d, vocab)]
    raise DataError(f"{data} has no {split}.jsonl and is not a LibriSpeech folder",
                    "make a corpus with `tinygen data synth`, or give a LibriSpeech root")


# ------------------------------------------------------------------------ audio
class UnusableAudio(Exception):
    """Why one file was skipped (internal; never reaches the user as an error)."""


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """(samples,) float32 mono in [-1, 1]; raise UnusableAudio when it cannot be used."""
    sf = soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except (RuntimeError, OSError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnusableAudio(first[:120]) from None
    if rate != sample_rate:
        raise UnusableAudio(f"sample rate {rate} Hz, the model expects {sample_rate} Hz")
    if data.shape[0] == 0:
        raise UnusableAudio("no samples")
    if not np.isfinite(data).all():
        raise UnusableAudio("NaN or Inf samples")
    return np.ascontiguousarray(data.mean(axis=1))


# ---------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Example:
    uid: str
    feats: torch.Tensor  # (T, n_mels) log-mel
    labels: torch.Tensor  # (L,) int64 vocab ids, never the blank
    text: str


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


WaveAugment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SpeechDataset(Dataset):  # type: ignore[type-arg]
    """Item i: the front-end features and label ids of utterance i, or Skipped.

    Features come from the one integer front end (:func:`frontend_logmel`), so a model
    trains on the values the device computes. ``cache`` keeps them in memory after the
    first read (for corpora that fit). With ``augment`` (a waveform augmentation, see
    :mod:`tinygen.speech.data.augment`) an item may also be asked for as ``(draw, i)``:
    utterance i augmented with the generator seeded by ``draw``, then run through the
    front end (not cached); ``augment_prob`` of the draws augment, the rest are clean.
    ``prepare``, a fixed function of the waveform (e.g. ``tinygen eval --room-tone-ms``),
    is applied to every item read from audio, before any augmentation.
    """

    def __init__(self, utterances: Sequence[Utterance], cfg: ConformerConfig,
                 cache: bool = False, augment: WaveAugment | None = None,
                 augment_prob: float = 0.0,
                 features: Mapping[str, np.ndarray] | None = None,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.prepare = prepare
        self.utterances = list(utterances)
        self.features = features  # uid -> int8 front-end codes (a feature file)
        self.cfg = cfg
        self.ids = {ch: i for i, ch in enumerate(cfg.vocab)}
        self.cache: dict[int, Example | Skipped] | None = {} if cache else None
        self.augment = augment
        self.augment_prob = augment_prob

    def __len__(self) -> int:
        return len(self.utterances)

    def durations(self) -> list[float]:
        """Seconds per item, 0 where unknown (for length bucketing)."""
        return [u.duration or 0.0 for u in self.utterances]

    def __getitem__(self, key: int | tuple[int, int]) -> Example | Skipped:
        draw, i = key if isinstance(key, tuple) else (None, key)
        if draw is not None and self.augment is not None:
            rng = np.random.default_rng(draw)
            if rng.random() < self.augment_prob:
                return self._load(self.utterances[i], lambda w: self.augment(w, rng))
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        utt = self.utterances[i]
        if self.features is not None and utt.uid in self.features:
            return self._stored(utt, self.features[utt.uid])
        item = self._load(utt)
        if self.cache is not None:
            self.cache[i] = item
        return item

    def _stored(self, utt: Utterance, codes: np.ndarray) -> Example | Skipped:
        from tinygen.audio.frontend import dequantize

        feats = torch.from_numpy(dequantize(codes))
        if self.cfg.subsampled_frames(feats.shape[0]) < 1:
            return Skipped(utt.path, f"too short ({feats.shape[0]} frames)")
        return Example(utt.uid, feats, self._labels(utt), utt.text)

    def _labels(self, utt: Utterance) -> torch.Tensor:
        return torch.tensor([self.ids[c] for c in utt.text if c in self.ids and
                             self.ids[c] != 0], dtype=torch.long)

    def _load(self, utt: Utterance,
              augment: Callable[[np.ndarray], np.ndarray] | None = None) -> Example | Skipped:
        try:
            wave = read_audio(utt.path, self.cfg.sample_rate)
            if len(wave) < self.cfg.win_length:
                raise UnusableAudio(f"too short ({len(wave)} samples)")
        except UnusableAudio as err:
            return Skipped(utt.path, str(err))
        if self.prepare is not None:
            wave = self.prepare(wave)
        if augment is not None:
            wave = augment(wave)
        feats = torch.from_numpy(frontend_logmel(wave, self.cfg))  # (T, n_mels)
        if self.cfg.subsampled_frames(feats.shape[0]) < 1:
            return Skipped(utt.path, f"too short ({len(wave)} samples)")
        return Example(utt.uid, feats, self._labels(utt), utt.text)


@dataclass
class Batch:
    feats: torch.Tensor  # (B, T, n_mels), zero past each length
    feat_lens: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B, L) vocab ids, zero past each length
    label_lens: torch.Tensor  # (B,)
    texts: list[str]
    uids: list[str]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def collate(items: Sequence[Example | Skipped]) -> Batch:
    """Pad the usable items into one Batch; carry the skipped ones along."""
    good = [x for x in items if isinstance(x, Example)]
    skipped = [x for x in items if isinstance(x, Skipped)]
    n_mels = good[0].feats.shape[1] if good else 0
    t_max = max((x.feats.shape[0] for x in good), default=0)
    l_max = max((x.labels.shape[0] for x in good), default=0)
    feats = torch.zeros(len(good), t_max, n_mels)
    labels = torch.zeros(len(good), l_max, dtype=torch.long)
    for b, x in enumerate(good):
        feats[b, :x.feats.shape[0]] = x.feats
        labels[b, :x.labels.shape[0]] = x.labels
    return Batch(feats=feats,
                 feat_lens=torch.tensor([x.feats.shape[0] for x in good], dtype=torch.long),
                 labels=labels,
                 label_lens=torch.tensor([x.labels.shape[0] for x in good], dtype=torch.long),
                 texts=[x.text for x in good], uids=[x.uid for x in good], skipped=skipped)


class SkipLog:
    """Distinct skipped files: the first one raises a DataWarning, the rest are counted."""

    def __init__(self) -> None:
        self.reasons: dict[Path, str] = {}

    def add(self, skipped: Iterable[Skipped]) -> None:
        for s in skipped:
            if not self.reasons:
                warnings.warn(f"skipping unusable audio {s.path} ({s.reason}); further "
                              "ones are skipped and counted", DataWarning, stacklevel=2)
            self.reasons.setdefault(s.path, s.reason)

    @property
    def count(self) -> int:
        return len(self.reasons)

    def summary(self) -> str:
        return f"skipped {self.count} unusable audio file(s)"


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show DataWarnings as ``tinygen: warning: ...`` lines on stderr (for the CLI)."""

    def show(message: Warning | str, category: type[Warning], *_: object,
             **__: object) -> None:
        print(f"tinygen: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = show  # restored by catch_warnings
        yield


# ----------------------------------------------------------------- augmentation
def deployment_window(feats: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator,
                      max_lead: int = 40, frames: int = 480) -> torch.Tensor:
    """Place each utterance in a window of digital silence, as a compiled model sees it.

    A compiled model runs on fixed windows with no padding mask: whatever is not speech
    is silence that the model must read as blanks. Each utterance starts after 0 to
    ``max_lead`` frames of silence; the window is drawn uniformly between the shortest
    that holds every utterance of the batch and ``frames`` (the longest deployment window
    trained for), so short commands also learn to sit in a long window of silence.
    (B, T, F) -> (B, T2, F); no frame is masked.
    """
    from tinygen.speech.features import silence_value

    b, t, f = feats.shape
    leads = torch.randint(0, max_lead + 1, (b,), generator=gen)
    need = max(int((leads + lengths).max()), t)
    t2 = need + int(torch.randint(0, max(frames - need, 0) + 1, (1,), generator=gen))
    out = torch.full((b, t2, f), silence_value())
    for i in range(b):
        n, s = int(lengths[i]), int(leads[i])
        out[i, s:s + n] = feats[i, :n]
    return out


def stream_window(feats: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator,
                  lead_chunks: int, chunk: int, max_tail: int = 0) -> torch.Tensor:
    """Place each utterance where a stream from the silence state meets it.

    A streaming model runs from the silence state (docs/streaming.md): every cache full of
    what the model computed on digital silence. The chunk-masked full pass reproduces that
    state with enough silence in front: ``lead_chunks`` whole chunks of ``chunk`` log-mel
    frames, whose outputs the caller drops, then a phase of 0 to ``chunk - 1`` more
    silence frames, because speech does not start on a chunk boundary. After the
    utterance, silence up to a whole number of chunks plus 0 to ``max_tail`` frames.
    (B, T, F) -> (B, lead_chunks * chunk + T2, F); no frame is masked.
    """
    from tinygen.speech.features import silence_value

    b, _, f = feats.shape
    lead = lead_chunks * chunk
    phase = torch.randint(0, chunk, (b,), generator=gen)
    need = int((phase + lengths).max()) + int(torch.randint(0, max_tail + 1, (1,),
                                                            generator=gen))
    t2 = -(-need // chunk) * chunk
    out = torch.full((b, lead + t2, f), silence_value())
    for i in range(b):
        n, s = int(lengths[i]), lead + int(phase[i])
        out[i, s:s + n] = feats[i, :n]
    return out


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator,
                 freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 20, time_frac: float = 0.1) -> torch.Tensor:
    """SpecAugment (Park et al., 2019) without time warping, on a padded batch.

    (B, T, F) -> (B, T, F). Each utterance gets ``freq_masks`` bands of up to
    ``freq_width`` mel bins and ``time_masks`` spans of up to
    ``min(time_width, time_frac * length)`` frames, filled with its own mean log-mel
    (log-mel is not zero-mean, so zeros would read as a loud event).
    """
    out = feats.clone()
    _, _, n_freq = feats.shape

    def draw(high: int) -> int:  # uniform in [0, high]
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=gen))

    for b in range(feats.shape[0]):
        n = int(lengths[b])
        if n == 0:
            continue
        fill = out[b, :n].mean()
        for _ in range(freq_masks):
            w = draw(min(freq_width, n_freq))
            f0 = draw(n_freq - w)
            out[b, :n, f0:f0 + w] = fill
        for _ in range(time_masks):
            w = draw(min(time_width, int(time_frac * n)))
            t0 = draw(n - w)
            out[b, t0:t0 + w] = fill
    return out
