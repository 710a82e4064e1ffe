"""The audio side of a speech model's build: its input is the integer front end's output.

A tinygen speech model (a :class:`tinygen.speech.model.Conformer`) takes log-mel frames
that ``tinygen.audio.frontend`` computes from int16 PCM. Its build therefore:

- quantizes the model input exactly as the front end does (scale 1/40, zero point -28):
  the input's calibration range is replaced by the front end's representable range
  ``FEATURE_RANGE``, which :func:`audio_tables` checks gives that Quant in float32;
- writes the front end's tables and the CTC vocabulary into ``OUT/model/tg_audio_tables.{h,c}``
  (templates/audio/), counted in report.json's ``flash`` as ``audio_tables_bytes``;
- the targets compile ``lib/tinygen/audio/`` (front end, CTC decoder, gate, ring) with it.

Any other model (one without a front end) builds exactly as before: no range is fixed and
no audio file is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tinygen.audio import FEATURE_RANGE, SCALE, ZERO_POINT, FrontendConfig, frontend_tables
from tinygen.audio.emit import render_audio_tables, vocab_nbytes
from tinygen.errors import TinygenError

TABLES_PREFIX = "tg_audio"


class AudioBuildError(TinygenError):
    """A speech model whose compiled input does not match the audio front end."""


def _speech_cfg(model: torch.nn.Module) -> Any:
    from tinygen.speech.model import Conformer

    return model.cfg if isinstance(model, Conformer) else None


def audio_input_range(model: torch.nn.Module) -> tuple[float, float] | None:
    """The fixed input range of ``model``: the front end's for a speech model, else None."""
    return FEATURE_RANGE if _speech_cfg(model) is not None else None


def front_end_quant_matches(scale: float, zero_point: int) -> bool:
    """True when (scale, zero_point) is the front end's output quantization (float32)."""
    return bool(np.float32(scale) == np.float32(SCALE)) and zero_point == ZERO_POINT


@dataclass
class AudioTables:
    files: dict[str, str] = field(default_factory=dict)  # OUT-relative path -> text
    frontend_bytes: int = 0
    vocab_bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def count(self, report: dict[str, Any]) -> None:
        """Add the tables to report.json's flash and describe the front end."""
        if not self.files:
            return
        flash = report["flash"]
        flash["audio_tables_bytes"] = self.frontend_bytes + self.vocab_bytes
        flash["total_bytes"] += flash["audio_tables_bytes"]
        report["audio"] = {**self.info, "frontend_tables_bytes": self.frontend_bytes,
                           "vocab_bytes": self.vocab_bytes}


def audio_tables(model: torch.nn.Module, compiled: Any, model_name: str) -> AudioTables:
    """The audio tables of a speech model's build (empty for any other model)."""
    cfg = _speech_cfg(model)
    if cfg is None:
        return AudioTables()
    q = compiled.input_quant
    if not front_end_quant_matches(q.s, q.zp):
        raise AudioBuildError(f"the compiled input quantization (scale {q.s}, zero point "
                              f"{q.zp}) is not the audio front end's (1/40, {ZERO_POINT})",
                              "this is a tinygen bug; please report it with the model")
    fcfg = FrontendConfig.of(cfg).validate()
    tables = frontend_tables(fcfg)
    files = render_audio_tables(tables, cfg.vocab, prefix=TABLES_PREFIX,
                                model_name=model_name)
    info = {"sample_rate": fcfg.sample_rate, "n_fft": fcfg.n_fft,
            "win_length": fcfg.win_length, "hop_length": fcfg.hop_length,
            "n_mels": fcfg.n_mels, "feature_scale": SCALE, "feature_zero_point": ZERO_POINT,
            "vocab": cfg.vocab, "tables": sorted(f"model/{n}" for n in files)}
    return AudioTables({f"model/{n}": t for n, t in files.items()}, tables.nbytes(),
                       vocab_nbytes(cfg.vocab), info)
