"""tinygen.audio: from microphone samples to text, defined once for every target.

- :mod:`tinygen.audio.frontend`: the integer log-mel front end (int16 PCM -> int8 frames),
  the numpy reference that training, evaluation, the golden reference and the C agree
  with byte for byte, and the tables it runs on (``frontend_tables``).
- :mod:`tinygen.audio.ctc`: greedy CTC decoding over int8 logits, incremental, with frame
  timestamps.
- :mod:`tinygen.audio.gate`: an integer energy gate that decides per chunk whether the
  model runs.
- :mod:`tinygen.audio.emit`: the tables and the vocabulary as C (templates/audio/).

The C twins live in firmware/tinygen/audio/ (tg_frontend, tg_ctc, tg_gate, and the SPSC
audio ring buffer tg_ring). This package is a leaf: it imports only tinygen.errors,
tinygen.cdecl and tinygen.resources, so the compiler, the targets and the speech code can
all import it (tinygen/layers.py).
"""

from tinygen.audio.frontend import (
                                    FEATURE_RANGE,
                                    SCALE,
                                    ZERO_POINT,
                                    FrontendConfig,
                                    FrontendStream,
                                    FrontendTables,
                                    features,
                                    frontend_tables,
)

__all__ = ["FEATURE_RANGE", "SCALE", "ZERO_POINT", "FrontendConfig", "FrontendStream",
           "FrontendTables", "features", "frontend_tables"]
