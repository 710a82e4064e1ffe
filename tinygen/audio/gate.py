"""Energy gate (a simple VAD): decide per audio chunk whether to run the model.

Contract: integer-only and bit-identical with firmware/tinygen/audio/tg_gate.c. For each
chunk of n >= 1 int16 samples:

    level = log2(sum(x^2) // n + 1) in Q4        (bit length + the next 4 bits; 0 .. 495)
    speech = level >= floor + threshold and level >= min_level
    floor  = max(level if level < floor else min(floor + rise, level), min_level)
             (updated after the test)
    hang   = hangover if speech else max(hang - 1, 0)
    run    = speech or hang was > 0 before this chunk

The noise floor drops at once to a quieter chunk (never below ``min_level``) and rises by
``rise`` (1/16 octave of power, 0.19 dB) per chunk, so a steady noise stops triggering
after a while and speech stands out by ``threshold``. ``hangover`` chunks after the last
speech chunk still run, so word tails are not cut. Digital silence (level 0) never runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL_FRAC_BITS = 4


@dataclass(frozen=True)
class GateConfig:
    threshold: int = 48  # Q4 log2 power above the floor that counts as speech (~9 dB)
    rise: int = 1  # Q4 per chunk the floor may rise
    hangover: int = 3  # chunks that still run after the last speech chunk
    min_level: int = 96  # Q4 log2 mean power below which nothing is speech (RMS 8 LSB)
    init_floor: int = 96  # floor at reset (>= min_level)


def level(pcm: np.ndarray) -> int:
    """Q4 log2 of the chunk's mean power plus one."""
    x = np.asarray(pcm, dtype=np.int64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("level() takes a 1-D chunk of at least one sample")
    m = int((x * x).sum()) // len(x) + 1
    e = m.bit_length() - 1
    frac = (m >> (e - LEVEL_FRAC_BITS) if e >= LEVEL_FRAC_BITS
            else m << (LEVEL_FRAC_BITS - e)) & ((1 << LEVEL_FRAC_BITS) - 1)
    return (e << LEVEL_FRAC_BITS) + frac


class Gate:
    def __init__(self, cfg: GateConfig | None = None) -> None:
        self.cfg = cfg or GateConfig()
        self.reset()

    def reset(self) -> None:
        self.floor = self.cfg.init_floor
        self.hang = 0

    def push(self, pcm: np.ndarray) -> bool:
        """Decide for one chunk: True to run the model on it."""
        c = self.cfg
        lvl = level(pcm)
        speech = lvl >= self.floor + c.threshold and lvl >= c.min_level
        run = speech or self.hang > 0
        self.floor = max(lvl if lvl < self.floor else min(self.floor + c.rise, lvl),
                         c.min_level)
        self.hang = c.hangover if speech else max(self.hang - 1, 0)
        return run
