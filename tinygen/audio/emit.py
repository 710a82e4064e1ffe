"""The audio tables as C: the front end's constants and the CTC vocabulary.

``render_audio_tables(tables, vocab)`` returns the header and source
(``<prefix>_tables.h``, ``<prefix>_tables.c``), rendered from templates/audio/ with the
generated-file banner. The C declares one ``const tg_frontend_tables_t <prefix>_frontend``
(firmware/tinygen/audio/tg_frontend.h) and one ``const tg_ctc_vocab_t <prefix>_vocab``
(tg_ctc.h); every array is static const, so it sits in flash; ``FrontendTables.nbytes()``
counts the front end's part.
"""

from __future__ import annotations

from typing import Any

import jinja2
import numpy as np

from tinygen import __version__
from tinygen.audio import frontend as F
from tinygen.cdecl import c_ident, c_int, int8_literal, int_list
from tinygen.resources import templates_dir


def _array(name: str, ctype: str, data: np.ndarray, comment: str) -> dict[str, Any]:
    return {"name": name, "ctype": ctype, "length": int(data.size), "comment": comment,
            "body": int_list(data.reshape(-1).astype(np.int64))}


def vocab_bytes(vocab: str) -> tuple[bytes, list[int]]:
    """UTF-8 bytes of all symbols, and the offset of each (plus the end)."""
    pieces = [ch.encode("utf-8") for ch in vocab]
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + len(p))
    return b"".join(pieces), offsets


def vocab_nbytes(vocab: str) -> int:
    """Flash bytes of the vocabulary as the C stores it: text + NUL, uint16 offsets, and
    the tg_ctc_vocab_t (two pointers and a size on a 32-bit target)."""
    text, offsets = vocab_bytes(vocab)
    return len(text) + 1 + 2 * len(offsets) + 12


def render_audio_tables(tables: F.FrontendTables, vocab: str, prefix: str = "tg_audio",
                        version: str = "", model_name: str = "audio") -> dict[str, str]:
    """C header and source holding ``tables`` and ``vocab``, named after ``prefix``."""
    prefix = c_ident(prefix)
    t, cfg = tables, tables.cfg
    if not 2 <= len(vocab) < 65536:
        raise ValueError(f"vocabulary of {len(vocab)} symbols (want 2 .. 65535)")
    text, offsets = vocab_bytes(vocab)
    if len(text) >= 65536:
        raise ValueError("vocabulary text over 64 KiB")
    arrays = [
        _array("window", "int16_t", t.window, "periodic Hann window, Q15"),
        _array("bitrev", "uint16_t", t.bitrev, "bit reversal of the n_fft/2-point FFT"),
        _array("twiddle", "int32_t", t.twiddle_q31(),
               "FFT twiddles (cos, -sin), Q31; W^0 = 1 saturates (the C never reads it)"),
        _array("split", "int32_t", t.split_q31(), "real-FFT split factors (-sin, -cos), Q31"),
        _array("mel_start", "uint16_t", t.mel_start, "first FFT bin of each mel filter"),
        _array("mel_length", "uint16_t", t.mel_length, "FFT bins of each mel filter"),
        _array("mel_offset", "uint16_t", t.mel_offset, "first weight of each mel filter"),
        _array("mel_weight", "uint16_t", t.mel_weight, "mel filter weights, Q12"),
        _array("log_lut", "uint32_t", t.log_lut, "log2(1 + i / 2^bits), Q16"),
    ]
    ctx = {
        "version": version or __version__, "model_name": model_name, "prefix": prefix,
        "guard": f"{prefix.upper()}_TABLES_H", "header": f"{prefix}_tables.h",
        "frontend_comment": f"{cfg.sample_rate} Hz, n_fft {cfg.n_fft}, window "
                            f"{cfg.win_length}, hop {cfg.hop_length}, {cfg.n_mels} mels",
        "frontend_bytes": t.nbytes(), "arrays": arrays,
        "sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "win_length": cfg.win_length,
        "hop_length": cfg.hop_length, "n_mels": cfg.n_mels, "window_shift": t.window_shift,
        "power_shift": F.POWER_SHIFT, "log_lut_bits": F.LOG_LUT_BITS,
        "log_floor": c_int(t.log_floor, 64), "out_mult": c_int(t.out_mult, 64),
        "out_bias": c_int(t.out_bias, 64), "zero_point": F.ZERO_POINT, "scale": F.SCALE,
        "vocab_size": len(vocab), "vocab_bytes": len(text),
        "vocab_text": int8_literal(np.frombuffer(text, dtype=np.uint8).view(np.int8)),
        "vocab_offset": int_list(np.array(offsets)),
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return {f"{prefix}_tables.h": env.get_template("audio/tg_audio_tables.h.j2").render(ctx),
            f"{prefix}_tables.c": env.get_template("audio/tg_audio_tables.c.j2").render(ctx)}
