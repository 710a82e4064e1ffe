"""Word-list (command) decoding over int8 CTC logits: which entry of a list was said.

A recognizer for a fixed set of commands does better to choose among them than to spell
freely: each entry (a word or a phrase, e.g. "call waiting") is scored by its best CTC
path through the logits, and the best entry wins.

Contract (firmware/tinygen/audio/tg_words.c is the same, value for value):
- An entry is a sequence of n >= 1 vocabulary ids (never the blank). Its CTC states are
  ``blank, c1, blank, c2, ..., cn, blank`` (2n + 1).
- A path's score is the sum of the int8 logits of the states it visits, one per frame, as
  int32. Every path visits every frame once, so the per-frame log-softmax normalizer
  adds the same to every path: the best path by summed logits is the best path by
  log-probability, and no exp or log is needed.
- Viterbi, frame by frame: at the first frame a path starts in state 0 or 1; then state s
  comes from s, s - 1, or s - 2 when ``c_s`` is not the blank and differs from ``c_(s-2)``
  (a repeated symbol needs a blank between). Unreachable states hold ``UNREACHABLE`` and
  take no logit. An entry's score is the better of its last two states.
- The best entry has the highest score; ties go to the lower index. No entry is
  reachable (fewer frames than an entry needs) -> index -1.
- ``free`` is the sum over frames of the largest logit: the best unconstrained path.
  ``free - score >= 0``, the *margin*, grows as the audio fits the entry worse; an
  application may reject a result whose margin per frame is too large.

Scores stay exact while frames * 127 < 2^30 (8.4 M frames, 93 hours at 40 ms): the
decoder is reset per utterance or segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinygen.errors import TinygenError

BLANK = 0
UNREACHABLE = -(1 << 30)
MAX_ENTRIES = 4096
MAX_LABELS = 255  # ids per entry (the C stores offsets as uint16 and ids as uint8)


class WordsError(TinygenError):
    """A word list that cannot be decoded with this vocabulary."""


@dataclass(frozen=True)
class WordList:
    """Entries as text and as vocabulary ids."""

    texts: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]

    @property
    def states(self) -> int:
        return sum(2 * len(e) + 1 for e in self.ids)


def word_list(texts: list[str], vocab: str, where: str = "the word list") -> WordList:
    """Entries (stripped, inner runs of spaces made one) -> ids; one-line errors."""
    entries = [" ".join(t.split()) for t in texts]
    entries = [e for e in entries if e]
    if not entries:
        raise WordsError(f"{where} has no entries", "put one word or phrase per line")
    if len(entries) > MAX_ENTRIES:
        raise WordsError(f"{where} has {len(entries)} entries",
                         f"use at most {MAX_ENTRIES}")
    if len(vocab) > 256:
        raise WordsError(f"the model's vocabulary has {len(vocab)} symbols",
                         "word lists need at most 256")
    seen: dict[str, int] = {}
    ids: list[tuple[int, ...]] = []
    for n, e in enumerate(entries, 1):
        if e in seen:
            raise WordsError(f"{where}: entry {n} repeats entry {seen[e]} ('{e}')",
                             "list each word or phrase once")
        seen[e] = n
        bad = sorted({c for c in e if c not in vocab[1:]})
        if bad:
            raise WordsError(f"{where}: entry {n} ('{e}') has characters the model cannot "
                             f"spell: {' '.join(repr(c) for c in bad)}",
                             f"use only: {vocab[1:]!r}")
        if len(e) > MAX_LABELS:
            raise WordsError(f"{where}: entry {n} is {len(e)} characters long",
                             f"use at most {MAX_LABELS}")
        ids.append(tuple(vocab.index(c) for c in e))
    return WordList(tuple(entries), tuple(ids))


def read_word_list(path: Path, vocab: str) -> WordList:
    """One entry per line (UTF-8; blank lines and lines starting with # are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise WordsError(f"no word list at {path}",
                         "give a text file, one entry per line") from None
    except (OSError, UnicodeDecodeError) as err:
        raise WordsError(f"cannot read the word list {path}: {err}",
                         "give a UTF-8 text file, one entry per line") from None
    return word_list([ln for ln in lines if not ln.lstrip().startswith("#")], vocab,
                     str(path))


@dataclass(frozen=True)
class WordResult:
    index: int  # best entry, -1 if none is reachable
    score: int  # its path score (UNREACHABLE if none)
    free: int  # best unconstrained path score
    frames: int

    @property
    def margin(self) -> int:
        return self.free - self.score


class WordDecoder:
    """Viterbi over every entry at once; push int8 logits in any chunking."""

    def __init__(self, words: WordList) -> None:
        self.words = words
        labels, start, skip, last = [], [], [], []
        for e in words.ids:
            ext = [BLANK]
            for c in e:
                ext += [c, BLANK]
            for s, c in enumerate(ext):
                labels.append(c)
                start.append(s == 0)
                skip.append(s >= 2 and c != BLANK and c != ext[s - 2])
            last.append(len(labels) - 1)
        self.labels = np.array(labels, np.int64)
        self.first = np.array(start, bool)
        self.second = np.r_[False, self.first[:-1]]  # state 1 of an entry
        self.skip = np.array(skip, bool)
        self.last = np.array(last, np.int64)
        self.reset()

    def reset(self) -> None:
        self.score = np.full(len(self.labels), UNREACHABLE, np.int64)
        self.free = 0
        self.frames = 0

    def push(self, logits: np.ndarray) -> None:
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.dtype != np.int8:
            raise TypeError(f"push() takes (frames, vocab) int8, got {logits.dtype} "
                            f"{logits.shape}")
        x = logits.astype(np.int64)
        for row in x:
            a = self.score
            if self.frames == 0:
                best = np.where(self.first | self.second, 0, UNREACHABLE)
            else:
                prev1 = np.r_[UNREACHABLE, a[:-1]]
                prev1[self.first] = UNREACHABLE  # no path enters an entry from the one before
                prev2 = np.r_[UNREACHABLE, UNREACHABLE, a[:-2]]
                prev2[~self.skip] = UNREACHABLE
                best = np.maximum(np.maximum(a, prev1), prev2)
            self.score = np.where(best == UNREACHABLE, UNREACHABLE, best + row[self.labels])
            self.free += int(row.max())
            self.frames += 1

    def result(self) -> WordResult:
        a = self.score
        ends = np.maximum(a[self.last], a[self.last - 1])
        if self.frames == 0 or ends.max() == UNREACHABLE:
            return WordResult(-1, UNREACHABLE, self.free, self.frames)
        i = int(np.argmax(ends))  # the first maximum: ties go to the lower index
        return WordResult(i, int(ends[i]), self.free, self.frames)


def decode(logits: np.ndarray, words: WordList) -> WordResult:
    dec = WordDecoder(words)
    dec.push(logits)
    return dec.result()


def best_entry(scores: np.ndarray, words: WordList) -> int:
    """The same Viterbi over float scores (a float model's logits, for evaluation):
    the best entry's index, -1 if none fits."""
    dec = WordDecoder(words)
    x = np.asarray(scores, np.float64)
    if x.ndim != 2 or len(x) == 0:
        return -1
    a = np.where(dec.first | dec.second, x[0, dec.labels], -np.inf)
    for row in x[1:]:
        prev1 = np.r_[-np.inf, a[:-1]]
        prev1[dec.first] = -np.inf
        prev2 = np.r_[-np.inf, -np.inf, a[:-2]]
        prev2[~dec.skip] = -np.inf
        a = np.maximum(np.maximum(a, prev1), prev2) + row[dec.labels]
    ends = np.maximum(a[dec.last], a[dec.last - 1])
    return int(np.argmax(ends)) if np.isfinite(ends.max()) else -1
