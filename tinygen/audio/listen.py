"""The listen loop's golden: int16 PCM -> blocks -> gate -> front end -> model -> CTC -> words.

Contract: for the same PCM, tables, vocabulary, gate and model this gives exactly the
lines firmware/tinygen/audio/tg_listen.c emits (tg_listen.h states the rules: fixed
blocks of ``block_frames`` feature frames, one gate decision per block, segments of
passed blocks, a streaming model stepped per block or a windowed model run once per
segment or full window with silence frames after the segment, words split at " "; or,
with a word list, one line per segment: its best entry by tinygen.audio.words).
The C reads the audio in mic-sized pieces through a ring buffer; the blocks, and so
the result, do not depend on those pieces, which is what the tests check.

The model is passed in as functions, so that this module stays a leaf:
``run_window(frames (W, n_mels) int8) -> logits (T, vocab) int8`` for a windowed model,
``run_stream(chunks [(C, n_mels) int8, ...]) -> [logits (T, vocab) int8, ...]`` for a
streaming one (a fresh stream from the silence state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinygen.audio import ctc, words
from tinygen.audio import frontend as F
from tinygen.audio.gate import Gate, GateConfig

MAX_WORD = 48  # TG_LISTEN_MAX_WORD: bytes of one emitted word piece


@dataclass(frozen=True)
class ListenConfig:
    block_frames: int  # feature frames per block (a streaming model's chunk)
    input_frames: int  # feature frames per model run: the chunk, or the window
    streaming: bool
    subsample: int = 4  # feature frames per encoder frame
    gate: GateConfig = field(default_factory=GateConfig)
    words: words.WordList | None = None  # a command list: one entry per segment
    words_reject: int = -1  # >= 0: drop an entry whose margin exceeds this per frame


@dataclass(frozen=True)
class Line:
    start_ms: int
    end_ms: int
    text: str


@dataclass
class Heard:
    lines: list[Line]
    blocks: int  # blocks heard
    skipped: int  # blocks the gate kept from the model
    runs: int  # model runs (steps or windows)


def block_bounds(n_samples: int, cfg: F.FrontendConfig, block_frames: int
                 ) -> list[tuple[int, int]]:
    """[start, end) samples of every whole block in ``n_samples``."""
    frames = 0 if n_samples < cfg.win_length else 1 + (n_samples - cfg.win_length) // \
        cfg.hop_length
    bounds, start = [], 0
    for j in range(frames // block_frames):
        end = cfg.win_length + ((j + 1) * block_frames - 1) * cfg.hop_length
        bounds.append((start, end))
        start = end
    return bounds


class _Words:
    """Tokens of one segment -> words, as tg_listen.c's add_tokens/emit_word."""

    def __init__(self, vocab: str, tables: F.FrontendTables, subsample: int) -> None:
        self.vocab, self.sub = vocab, subsample
        self.hop, self.rate = tables.cfg.hop_length, tables.cfg.sample_rate
        self.lines: list[Line] = []
        self.word, self.start, self.end = b"", 0, 0

    def ms(self, frame: int) -> int:
        return (frame * self.hop * 1000 // self.rate) & 0xFFFFFFFF

    def emit(self) -> None:
        if self.word:
            self.lines.append(Line(self.start, self.end, self.word.decode("utf-8",
                                                                          "replace")))
            self.word = b""

    def add(self, tokens: list[ctc.Token], seg_frame: int) -> None:
        for t in tokens:
            piece = self.vocab[t.id].encode("utf-8")[:MAX_WORD]
            if piece == b" ":
                self.emit()
                continue
            if len(self.word) + len(piece) > MAX_WORD:
                self.emit()
            if not self.word:
                self.start = self.ms(seg_frame + self.sub * t.start)
            self.word += piece
            self.end = self.ms(seg_frame + self.sub * (t.end + 1))


def listen(pcm: np.ndarray, tables: F.FrontendTables, vocab: str, cfg: ListenConfig,
           run_window: Callable[[np.ndarray], np.ndarray] | None = None,
           run_stream: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
           ) -> Heard:
    """Everything the listen loop emits for ``pcm`` (then tg_listen_finish)."""
    pcm = np.asarray(pcm, dtype=np.int16)
    G, fcfg = cfg.block_frames, tables.cfg
    if cfg.streaming and (run_stream is None or cfg.input_frames != G):
        raise ValueError("a streaming model needs run_stream and block_frames == its chunk")
    if not cfg.streaming and (run_window is None or not 1 <= G <= cfg.input_frames):
        raise ValueError("a windowed model needs run_window and block_frames <= its window")
    bounds = block_bounds(len(pcm), fcfg, G)
    frames = F.features(pcm[:bounds[-1][1]], tables) if bounds else \
        np.zeros((0, fcfg.n_mels), np.int8)
    silence = F.features(np.zeros(fcfg.win_length, np.int16), tables)[0]
    gate = Gate(cfg.gate)
    spelled = _Words(vocab, tables, cfg.subsample)
    skipped = runs = 0
    segment: list[np.ndarray] = []  # the open segment's blocks of frames
    seg_frame = 0

    def close() -> None:
        nonlocal runs
        if cfg.streaming:
            assert run_stream is not None
            logits = np.concatenate(run_stream(segment))
            runs += len(segment)
        else:
            assert run_window is not None
            held = np.concatenate(segment)
            pad = np.repeat(silence[None], cfg.input_frames - len(held), axis=0)
            logits = run_window(np.concatenate([held, pad]))
            runs += 1
        logits = np.asarray(logits, np.int8)
        if cfg.words is None:
            spelled.add(ctc.decode(logits), seg_frame)
            spelled.emit()
        else:
            r = words.decode(logits, cfg.words)
            if r.index >= 0 and not (cfg.words_reject >= 0 and
                                     r.margin > cfg.words_reject * r.frames):
                spelled.lines.append(Line(spelled.ms(seg_frame),
                                          spelled.ms(seg_frame + G * len(segment)),
                                          cfg.words.texts[r.index]))
        segment.clear()

    for j, (start, end) in enumerate(bounds):
        passed = gate.push(pcm[start:end])
        block = frames[j * G:(j + 1) * G]
        if not passed:
            skipped += 1
            if segment:
                close()
            continue
        if not segment:
            seg_frame = j * G
        segment.append(block)
        if not cfg.streaming and (len(segment) + 1) * G > cfg.input_frames:
            close()
    if segment:
        close()
    return Heard(spelled.lines, len(bounds), skipped, runs)
