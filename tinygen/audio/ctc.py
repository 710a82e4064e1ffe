"""CTC greedy decoding over int8 logits, whole or incremental.

Contract: per encoder frame, the symbol is the argmax of the int8 logits (ties go to the
lowest index); runs of one symbol collapse into one token; the blank (index 0) emits
nothing. The text equals ``tinygen.speech.evaluate.greedy_decode`` on the same logits.
Each token carries the first and last encoder frame of its run (inclusive, counted from
the decoder's reset). :class:`CtcDecoder` takes the logits in any chunking and emits a
token when its run ends (a different symbol follows, or :meth:`CtcDecoder.flush`), so
chunked decoding gives exactly the tokens of whole decoding. firmware/tinygen/audio/
tg_ctc.c is the same, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLANK = 0


@dataclass(frozen=True)
class Token:
    id: int  # index into the vocabulary, never the blank
    start: int  # first encoder frame of the run
    end: int  # last encoder frame of the run (inclusive)


class CtcDecoder:
    """Incremental greedy CTC: push (frames, vocab) int8 logits, get finished tokens."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prev = BLANK  # symbol of the open run (blank: nothing to emit)
        self.run_start = 0
        self.frame = 0  # frames consumed since reset

    def push(self, logits: np.ndarray) -> list[Token]:
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.dtype != np.int8:
            raise TypeError(f"push() takes (frames, vocab) int8, got {logits.dtype} "
                            f"{logits.shape}")
        out: list[Token] = []
        for best in logits.argmax(axis=1).tolist():  # argmax: first maximum wins
            if best != self.prev:
                if self.prev != BLANK:
                    out.append(Token(self.prev, self.run_start, self.frame - 1))
                self.prev, self.run_start = best, self.frame
            self.frame += 1
        return out

    def flush(self) -> list[Token]:
        """Close the open run (end of stream); the decoder stays usable (a blank run)."""
        out = [Token(self.prev, self.run_start, self.frame - 1)] if self.prev != BLANK else []
        self.prev, self.run_start = BLANK, self.frame
        return out


def decode(logits: np.ndarray) -> list[Token]:
    """All tokens of (frames, vocab) int8 logits."""
    dec = CtcDecoder()
    return dec.push(logits) + dec.flush()


def text(tokens: list[Token], vocab: str) -> str:
    return "".join(vocab[t.id] for t in tokens)


def greedy_text(logits: np.ndarray, vocab: str) -> str:
    return text(decode(logits), vocab)
