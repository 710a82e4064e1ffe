"""``--app listen``: the listen loop (firmware/tinygen/audio/tg_listen.c) wired to the model.

What every listen build gets, in the target's own folder (host/, qemu/ or src/):

    tg_listen_app.h, tg_listen_app.c   the loop's static storage (ring, block, frames,
                                       tokens, the tg_listen_t), its configuration and the
                                       model binding, sized here (templates/listen/)

Then per target a thin driver: ``host/listen.c`` and ``qemu/listen.c`` read int16 PCM
(stdin, or the host file tg_listen.pcm over semihosting) and write it into the loop in
mic-sized blocks, which is how the tests run the same loop as the boards;
``src/listen_espidf.c`` (I2S standard-mode MEMS microphone) and ``src/listen_zephyr.c``
(Zephyr's DMIC API, the nRF52840's PDM) are the hardware glue, one file per framework,
which cannot be compiled here (no ESP-IDF or Zephyr headers).

:func:`plan` fixes the sizes; :func:`ram_flash` gives report.json's ``listen`` block: RAM
= ring + block + frames + tokens + the tg_listen_t (front-end state, gate, decoder, word)
+ the model's arena and state + the glue's buffers and stacks; flash = the model's flash
(tables included) + the code estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.targets import TargetError

APPS = ("selftest", "listen")
BLOCK_FRAMES_WINDOWED = 8  # a windowed model's gate block: 8 frames (80 ms at a 10 ms hop)
RING_MS = 500  # the ring holds at least this much audio (the model's run time)
SUBSAMPLE = 4  # feature frames per encoder frame (tinygen.speech.config.SUBSAMPLE)

# sizeof of the C structs on a 32-bit target (ILP32: 4-byte pointers; uint64_t and
# int64_t 8-byte aligned, as the Arm EABI and Xtensa ABIs have it). The tests compare
# these with arm-none-eabi-gcc's symbol sizes.
FRONTEND_MAX_FFT, FRONTEND_MAX_MELS, MAX_WORD, TOKEN_BYTES = 512, 64, 48, 12
# sizeof(tg_listen_config_t): 2 table pointers, the gate (5 int32), the model binding (4
# function pointers, 3 int32), block_frames, subsample, emit, user, words, words_reject
CONFIG_BYTES = 2 * 4 + 5 * 4 + (4 * 4 + 3 * 4) + 4 + 4 + 4 + 4 + 4 + 4

# Microphone glue (the figures the glue templates are rendered with).
ESPIDF = {"dma_desc_num": 6, "dma_frame_num": 256, "slot_bytes": 4,
          "listen_stack": 8192, "mic_stack": 3072}
ZEPHYR = {"block_ms": 20, "block_count": 4, "mic_stack": 1024}
ZEPHYR_MAIN_STACK = 4096  # prj.conf CONFIG_MAIN_STACK_SIZE (the pipeline runs in main)


class ListenError(TargetError):
    """--app listen asked of a build that cannot listen."""


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def frontend_state_bytes() -> int:
    """sizeof(tg_frontend_state_t): pending int16[MAX_FFT], fill, fft int32[MAX_FFT],
    power uint32[MAX_FFT + 2] (every field 4-aligned)."""
    n = _align(2 * FRONTEND_MAX_FFT, 4) + 4
    return n + 4 * FRONTEND_MAX_FFT + 4 * (FRONTEND_MAX_FFT + 2)


def listen_state_bytes() -> int:
    """sizeof(tg_listen_t) on a 32-bit target (tg_listen.h's field order)."""
    n = 4 + 9 * 4 + 6 * 4  # cfg; tg_listen_buffers_t; tg_ring_t
    n = _align(n, 4) + frontend_state_bytes()
    n += 3 * 4 + 3 * 4 + 3 * 4 + FRONTEND_MAX_MELS  # gate, ctc, words, silence
    n += 5 * 4 + MAX_WORD + 3 * 4 + 3 * 4  # frame .. seg_frames, word, word_len/ms, counters
    return _align(n, 4)


@dataclass(frozen=True)
class ListenPlan:
    streaming: bool
    block_frames: int
    input_frames: int
    output_frames: int
    n_mels: int
    vocab_size: int
    block_samples: int  # the first (longest) block
    ring_samples: int
    sample_rate: int
    hop_length: int
    word_texts: tuple[str, ...] = ()  # --words: the command list (empty: spell words)
    word_ids: tuple[tuple[int, ...], ...] = ()

    @property
    def word_states(self) -> int:
        return sum(2 * len(e) + 1 for e in self.word_ids)

    def words_bytes(self) -> int:
        """Flash of the list: ids, their offsets, the UTF-8 texts (+ NUL) and their
        offsets."""
        entries = len(self.word_texts)
        return sum(len(e) for e in self.word_ids) + 2 * (entries + 1) + \
            sum(len(t.encode()) for t in self.word_texts) + 1 + 2 * (entries + 1)

    def buffers(self) -> dict[str, int]:
        """Bytes of each static buffer tg_listen_app.c declares."""
        out = {"ring_bytes": 2 * self.ring_samples, "block_bytes": 2 * self.block_samples,
               "frames_bytes": self.block_frames * self.n_mels,
               "tokens_bytes": TOKEN_BYTES * (self.output_frames + 1),
               "state_bytes": listen_state_bytes(), "config_bytes": CONFIG_BYTES}
        if self.word_texts:
            out["word_scores_bytes"] = 4 * self.word_states
        return out


def plan(report: dict[str, Any]) -> ListenPlan:
    """The listen loop's sizes for a speech model's build (report.json so far)."""
    audio = report.get("audio")
    if audio is None:
        raise ListenError("--app listen needs a speech model (one with the audio front "
                          "end); this model takes no audio", "build it with --app selftest")
    n_mels, vocab = int(audio["n_mels"]), len(audio["vocab"])
    input_frames = int(report["input"]["shape"][1])
    output_frames = int(report["output"]["shape"][1])
    streaming = "streaming" in report
    block = input_frames if streaming else min(BLOCK_FRAMES_WINDOWED, input_frames)
    win, hop, rate = int(audio["win_length"]), int(audio["hop_length"]), \
        int(audio["sample_rate"])
    block_samples = win + (block - 1) * hop
    ring = 1
    while ring < max(2 * block_samples, rate * RING_MS // 1000):
        ring *= 2
    texts: tuple[str, ...] = tuple(report.get("words", ()))
    ids: tuple[tuple[int, ...], ...] = ()
    if texts:
        from tinygen.audio.words import word_list

        ids = word_list(list(texts), str(audio["vocab"])).ids
    return ListenPlan(streaming, block, input_frames, output_frames, n_mels, vocab,
                      block_samples, ring, rate, hop, texts, ids)


def render_app(folder: Path, p: ListenPlan, version: str, model_name: str) -> None:
    """tg_listen_app.h and tg_listen_app.c into ``folder``."""
    from tinygen.audio.gate import GateConfig
    from tinygen.cdecl import int8_literal, int_list
    from tinygen.compiler.codegen import render

    words = None
    if p.word_texts:
        texts = [t.encode() for t in p.word_texts]
        offsets, text_offsets = [0], [0]
        for e, t in zip(p.word_ids, texts, strict=True):
            offsets.append(offsets[-1] + len(e))
            text_offsets.append(text_offsets[-1] + len(t))
        words = {"entries": len(texts), "states": p.word_states,
                 "ids": int_list([i for e in p.word_ids for i in e]),
                 "offset": int_list(offsets), "text_offset": int_list(text_offsets),
                 "text": int8_literal(np.frombuffer(b"".join(texts), np.uint8).view(np.int8))}
    ctx = {"version": version, "model_name": model_name, "p": p, "subsample": SUBSAMPLE,
           "gate": GateConfig(), "words": words}
    (folder / "tg_listen_app.h").write_text(render("listen/tg_listen_app.h.j2", **ctx))
    (folder / "tg_listen_app.c").write_text(render("listen/tg_listen_app.c.j2", **ctx))


def glue_ram(framework: str, sample_rate: int = 16000) -> dict[str, int]:
    """RAM of the microphone glue: DMA or driver buffers and the stacks it configures."""
    if framework == "espidf":
        e = ESPIDF
        return {"dma_bytes": e["dma_desc_num"] * e["dma_frame_num"] * e["slot_bytes"],
                "mic_buffer_bytes": e["dma_frame_num"] * (e["slot_bytes"] + 2),
                "stack_bytes": e["listen_stack"] + e["mic_stack"]}
    if framework == "zephyr":
        z = ZEPHYR
        block = 2 * sample_rate * z["block_ms"] // 1000  # int16 mono
        return {"dma_bytes": z["block_count"] * block, "mic_buffer_bytes": 0,
                "stack_bytes": ZEPHYR_MAIN_STACK + z["mic_stack"]}
    return {}


def ram_flash(report: dict[str, Any], p: ListenPlan, framework: str = "",
              code_bytes: int | None = None) -> dict[str, Any]:
    """report.json's ``listen``: the loop's sizes, RAM and flash totals by part."""
    model_ram = int(report["streaming"]["ram_bytes"]) if p.streaming else \
        int(report["arena_bytes"])
    ram = {**p.buffers(), "model_ram_bytes": model_ram, **glue_ram(framework, p.sample_rate)}
    out: dict[str, Any] = {
        "streaming": p.streaming, "block_frames": p.block_frames,
        "block_ms": round(1000 * p.block_frames * p.hop_length / p.sample_rate, 3),
        "first_block_samples": p.block_samples, "ring_samples": p.ring_samples,
        "ring_ms": round(1000 * p.ring_samples / p.sample_rate, 3),
        "ram": {**ram, "total_bytes": sum(ram.values())},
        "stacks_known": bool(framework),
    }
    flash = {"model_bytes": int(report["flash"]["total_bytes"])}
    if p.word_texts:
        flash["words_bytes"] = p.words_bytes()
        out["words"] = {"entries": len(p.word_texts), "states": p.word_states}
    if code_bytes is not None:
        flash["code_estimate_bytes"] = int(code_bytes)
    out["flash"] = {**flash, "total_bytes": sum(flash.values())}
    return out


def check_board(board: Any) -> None:
    """Refuse a board (a tinygen.targets.boards.Board) with no microphone driver."""
    from tinygen.targets import boards

    if board.framework == "zephyr" and not board.dmic_node:
        able = sorted(b.name for b in boards.BOARDS.values()
                      if b.dmic_node or b.framework == "espidf")
        raise ListenError(
            f"--app listen on {board.name}: tinygen knows no microphone driver in its "
            f"Zephyr {board.zephyr_version} (the DMIC API has drivers for nRF PDM, not "
            "for this board's SoC)", f"use --board {' | '.join(able)}")


def app_option(ctx_options: dict[str, Any]) -> str:
    app = ctx_options.get("app") or "selftest"
    if app not in APPS:
        raise ListenError(f"unknown --app '{app}'", f"choose one of: {', '.join(APPS)}")
    return str(app)
