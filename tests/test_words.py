"""Word-list decoding (tinygen.audio.words) against brute force, and its input errors.

The oracle enumerates every label sequence of T frames, keeps those that collapse (CTC:
merge repeats, drop blanks) to an entry, and takes the best summed logits: the decoder's
Viterbi must give the same score for every entry, and the same winner as scoring by float
log-softmax. The C (tg_words.c) is checked against this decoder in tests/test_audio_c.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tinygen.audio import words

VOCAB = "_ab "  # blank, a, b, space


def _collapse(seq: tuple[int, ...]) -> tuple[int, ...]:
    out, prev = [], -1
    for s in seq:
        if s != prev and s != 0:
            out.append(s)
        prev = s
    return tuple(out)


def _brute(logits: np.ndarray, entry: tuple[int, ...], table: np.ndarray | None = None
           ) -> float | None:
    """Best summed score over every alignment of ``entry`` (None: none fits)."""
    x = logits if table is None else table
    best = None
    for seq in itertools.product(range(x.shape[1]), repeat=x.shape[0]):
        if _collapse(seq) == entry:
            s = sum(x[t, c] for t, c in enumerate(seq))
            best = s if best is None or s > best else best
    return best


def test_viterbi_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    wl = words.word_list(["a", "b", "ab", "aa", "ba b", "abba", "a a"], VOCAB)
    seen = set()
    for trial in range(60):
        frames = int(rng.integers(1, 7))
        logits = rng.integers(-128, 128, (frames, len(VOCAB))).astype(np.int8) \
            if trial % 2 else rng.integers(-2, 3, (frames, len(VOCAB))).astype(np.int8)
        dec = words.WordDecoder(wl)
        cut = int(rng.integers(0, frames + 1))
        dec.push(logits[:cut])
        dec.push(logits[cut:])
        r = dec.result()
        brute = [_brute(logits.astype(np.int64), e) for e in wl.ids]
        fit = [b for b in brute if b is not None]
        if not fit:
            assert (r.index, r.score) == (-1, words.UNREACHABLE)
        else:
            want = max(fit)
            assert r.score == want
            assert r.index == brute.index(want)  # the lowest index of the best
        assert r.free == int(logits.astype(np.int64).max(axis=1).sum()) >= r.score
        # the per-frame normalizer cancels: log-softmax scores pick the same entry
        lp = logits.astype(np.float64)
        lp = lp - np.log(np.exp(lp - lp.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - lp.max(1, keepdims=True)
        soft = [_brute(logits, e, lp) for e in wl.ids]
        if fit and sorted(fit)[-1] != (sorted(fit)[-2] if len(fit) > 1 else None):
            assert int(np.argmax([-np.inf if s is None else s for s in soft])) == r.index
        seen.add(r.index)
    assert len(seen) >= 5


def test_decoder_checks_its_input() -> None:
    dec = words.WordDecoder(words.word_list(["ab"], VOCAB))
    with pytest.raises(TypeError):
        dec.push(np.zeros((3, 4), np.int16))
    assert dec.result().index == -1  # nothing heard yet


@pytest.mark.parametrize(("texts", "needle"), [
    ([], "no entries"), (["", "  "], "no entries"), (["ab", "a b", "ab"], "repeats entry 1"),
    (["ab", "abc"], "cannot spell: 'c'"), (["a" * 300], "300 characters")])
def test_bad_word_lists_say_why(texts: list[str], needle: str) -> None:
    with pytest.raises(words.WordsError) as err:
        words.word_list(texts, VOCAB)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_word_list_file(tmp_path: Path) -> None:
    f = tmp_path / "commands.txt"
    f.write_text("# lights\n  a   b \n\nba\n", encoding="utf-8")
    wl = words.read_word_list(f, VOCAB)
    assert wl.texts == ("a b", "ba") and wl.ids == ((1, 3, 2), (2, 1))
    assert wl.states == 7 + 5
    with pytest.raises(words.WordsError, match="no word list at"):
        words.read_word_list(tmp_path / "missing.txt", VOCAB)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(words.WordsError, match="cannot read the word list"):
        words.read_word_list(tmp_path / "bin.txt", VOCAB)
