"""firmware/tinygen/audio against tinygen/audio, byte for byte, on the host and qemu-m4.

One batch drives tests/c/tg_audio_driver.c (the protocol is in its header):
- the front end on 65 signals (52 espeak-ng utterances through the corpus synthesizer's
  own steps, with noise and levels from -35 dBFS to near full scale, plus digital
  silence, clipping square waves, DC rails, full-scale white noise, LSB noise, Nyquist,
  and the lengths around one frame), each cut into random chunks (empty, one sample,
  up to 4096): the C frames must equal tinygen.audio.features on the whole signal;
- CTC over random logits with many ties and with runs, and over real logits (the shipped
  mcu-tiny model on two utterances' front-end features, scaled to int8), chunked,
  against tinygen.audio.ctc and, for the text, tinygen.speech.evaluate.greedy_decode;
- the gate over the utterances in 100 ms chunks, against tinygen.audio.gate;
- the ring buffer through wraparound and overruns, against a list model;
- word-list decoding (tg_words) over random and real logits, with repeated letters,
  phrases, one-letter entries and too few frames, chunked, against tinygen.audio.words;
- the split and power on chosen FFT values (tg_frontend_split_power_test): random ones,
  and ones built so that hundreds of bins hit the rounding tie of the mirrored product.

The host build has AddressSanitizer and UBSan (any overflow or bad access aborts), with
the firmware's strict flags; the qemu-m4 build runs under qemu-system-arm and reads and
writes its data through semihosting files.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests import audio_driver as D
from tinygen.audio import ctc, gate, words
from tinygen.audio import frontend as F
from tinygen.speech.config import DEFAULT_VOCAB
from tinygen.speech.evaluate import greedy_decode

TABLES = F.frontend_tables()
GATE = gate.GateConfig()
CAPACITY = 256


@dataclass
class Batch:
    payload: bytes
    signals: list[np.ndarray]
    chunks: list[list[np.ndarray]]
    logits: list[list[np.ndarray]]
    gate_chunks: list[np.ndarray]
    ring_ops: list[tuple[int, int]]
    words: list[tuple[words.WordList, list[np.ndarray]]]
    splits: list[np.ndarray]  # (n_fft/2, 2) int64 half-size FFT values Z


def _tie_z(rng: np.random.Generator) -> np.ndarray:
    """Z (n_fft/2, 2) with, for every bin pair k, half - k that has one, O chosen so that
    the real part of T_k O lands exactly half way, sr or - si oi = 2^29 mod 2^30: the tie
    where the mirrored bin's product is not the first one negated (tg_frontend.c)."""
    half = TABLES.cfg.n_fft // 2
    full = F.split_factors(TABLES.split)
    z = rng.integers(-(1 << 26), 1 << 26, size=(half, 2))
    for k in range(1, half // 2):
        sr, si = int(full[k, 0]), int(full[k, 1])
        p = (si & -si).bit_length() - 1  # si = 2^p * odd
        for _ in range(64):
            orr = int(rng.integers(-(1 << 26), 1 << 26))
            need = (sr * orr - (1 << 29)) % (1 << 30)  # si * oi = need (mod 2^30)
            if need % (1 << p) == 0:
                break
        else:
            continue
        mod = 1 << (30 - p)
        oi = (need >> p) * pow(si >> p, -1, mod) % mod
        oi -= mod if oi >= mod // 2 else 0  # |oi| < 2^28
        assert (sr * orr - si * oi) % (1 << 30) == 1 << 29
        # O = Z[k] - conj Z[half - k]: or = zk_r - zm_r, oi = zk_i + zm_i
        z[half - k, 0] = z[k, 0] - orr
        z[half - k, 1] = oi - z[k, 1]
    return z


def _logits(rng: np.random.Generator, frames: int) -> np.ndarray:
    v = len(DEFAULT_VOCAB)
    x = rng.integers(-128, 128, (frames, v)).astype(np.int8) if rng.random() < 0.3 else \
        rng.integers(-2, 2, (frames, v)).astype(np.int8)  # narrow: many ties
    peaks = np.repeat(rng.integers(0, v, frames // 4 + 1), 4)[:frames]
    x[np.arange(frames), peaks] = np.maximum(x[np.arange(frames), peaks], 1)
    return x


ENTRIES = ["one", "two", "three", "hello", "committee", "call waiting", "a", "aa", "it's",
           "zero", "seven", "eleven", "yes", "no", "stop"]


def _word_lists(rng: np.random.Generator) -> list[words.WordList]:
    """The fixed entries (repeats, phrases, one letter), and random lists."""
    lists = [words.word_list(ENTRIES, DEFAULT_VOCAB)]
    for _ in range(3):
        texts = {"".join(rng.choice(list(DEFAULT_VOCAB[1:]), int(rng.integers(1, 9))))
                 for _ in range(int(rng.integers(1, 30)))}
        lists.append(words.word_list(sorted(texts), DEFAULT_VOCAB))
    return lists


def _ring_ops(rng: np.random.Generator) -> list[tuple[int, int]]:
    ops = []
    for _ in range(300):
        ops.append((int(rng.integers(2)), int(rng.integers(0, 3 * CAPACITY // 4))))
    ops += [(0, CAPACITY), (0, 1), (1, CAPACITY), (0, CAPACITY + 1), (1, 5)]  # edges
    return ops


def _model_logits(signals: list[np.ndarray]) -> list[np.ndarray]:
    """mcu-tiny's logits on the int8 front end's features, scaled to int8."""
    import torch

    from tinygen.resources import models_dir
    from tinygen.speech.checkpoint import load_model

    model = load_model(models_dir() / "mcu-tiny.pt").eval()
    out = []
    for pcm in signals:
        feats = torch.from_numpy(F.dequantize(F.features(pcm, TABLES)))[None]
        with torch.no_grad():
            y = model(feats)[0].numpy()
        out.append(np.clip(np.round(y * (127 / np.abs(y).max())), -128, 127).astype(np.int8))
    assert all(ctc.decode(x) for x in out)  # the model hears words in them
    return out


@pytest.fixture(scope="module")
def batch() -> Batch:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed (scripts/setup.sh installs them)")
    rng = np.random.default_rng(11)
    speech = D.speech(52, seed=11)  # the issue asks for 50 or more utterances
    assert len(speech) == 52 and len({len(s) for s in speech}) > 40  # varied lengths
    signals = speech + D.edge_signals(seed=11)
    chunks = [D.random_chunks(s, rng) for s in signals]
    logits = []
    for _ in range(40):
        x = _logits(rng, int(rng.integers(0, 200)))
        cuts = np.sort(rng.integers(0, len(x) + 1, int(rng.integers(0, 5))))
        logits.append(np.split(x, cuts))
    logits += [np.array_split(x, 3) for x in _model_logits(signals[:2])]
    speech = np.concatenate([*signals[:10], np.zeros(16000, np.int16), *signals[10:12]])
    gate_chunks = [speech[i:i + 1600] for i in range(0, len(speech), 1600)]
    ring_ops = _ring_ops(rng)
    word_cases = []
    for i, wl in enumerate(_word_lists(rng)):
        for parts in logits[10 * i:10 * i + 10] + logits[-2:]:
            if sum(len(p) for p in parts) > 0:
                word_cases.append((wl, [p for p in parts if len(p)] or parts))
    long_only = words.word_list(["committee", "call waiting"], DEFAULT_VOCAB)
    x = _logits(rng, 14)  # committee needs 10 frames (the double letters need blanks)
    word_cases.append((long_only, [x[:3], x[3:9], x[9:10], x[10:]]))
    splits = [rng.integers(-(1 << 28), 1 << 28, size=(TABLES.cfg.n_fft // 2, 2))
              for _ in range(3)] + [_tie_z(rng) for _ in range(3)]
    payload = b"".join([*(D.frontend_cmd(c) for c in chunks),
                        *(D.ctc_cmd(c) for c in logits),
                        D.gate_cmd(GATE, gate_chunks), D.ring_cmd(CAPACITY, ring_ops),
                        *(D.words_cmd(wl.ids, parts) for wl, parts in word_cases),
                        D.split_cmd([2 * z.ravel() for z in splits])])
    return Batch(payload, signals, chunks, logits, gate_chunks, ring_ops, word_cases, splits)


def _ring_model(ops: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, list[int]]],
                                                         tuple[int, int]]:
    """All-or-nothing writes of counting samples, reads of what is there."""
    stored: list[int] = []
    counter, overruns, dropped = 0, 0, 0
    results = []
    for kind, n in ops:
        if kind == 0:
            if len(stored) + n > CAPACITY:
                overruns, dropped = overruns + 1, dropped + n
                results.append((0, []))
            else:
                stored += [(counter + i) % 32768 for i in range(n)]
                counter += n
                results.append((n, []))
        else:
            got, stored = stored[:n], stored[n:]
            results.append((len(got), got))
    return results, (overruns, dropped)


def check(out: bytes, b: Batch) -> None:
    pos, bad = 0, []
    for i, (s, ch) in enumerate(zip(b.signals, b.chunks, strict=True)):
        got, pos = D.frontend_read(out, pos, len(ch), TABLES.cfg.n_mels)
        if not np.array_equal(got, F.features(s, TABLES)):
            bad.append(f"signal {i} ({len(s)} samples, {len(ch)} chunks)")
    assert not bad, "front end differs: " + ", ".join(bad)
    assert len(b.signals) >= 50
    for parts in b.logits:
        groups, text, pos = D.ctc_read(out, pos, len(parts))
        dec = ctc.CtcDecoder()
        assert groups == [dec.push(p) for p in parts] + [dec.flush()]
        whole = np.concatenate(parts)
        assert text.decode("utf-8") == greedy_decode(whole, DEFAULT_VOCAB)
    decisions, pos = D.gate_read(out, pos, len(b.gate_chunks))
    g = gate.Gate(GATE)
    want = []
    for c in b.gate_chunks:
        run = g.push(c)
        want.append((gate.level(c), int(run), g.floor))
    assert decisions == want
    assert 0 < sum(d[1] for d in decisions) < len(decisions)  # the gate both runs and skips
    results, over, pos = D.ring_read(out, pos, b.ring_ops)
    want_results, want_over = _ring_model(b.ring_ops)
    assert results == want_results and over == want_over
    assert over[0] > 0 and sum(n for k, n in b.ring_ops if k == 0) > 4 * CAPACITY
    picked = set()
    for wl, parts in b.words:
        got, pos = D.words_read(out, pos, len(parts))
        dec = words.WordDecoder(wl)
        want_words = []
        for p in parts:
            dec.push(p)
            r = dec.result()
            want_words.append((r.index, r.score, r.free, r.frames))
        assert got == want_words
        picked |= {g[0] for g in got}
    assert -1 in picked and len(picked) > 5  # unreachable lists and many winners
    got_split, pos = D.split_read(out, pos, len(b.splits), TABLES.cfg.n_fft)
    for z, got in zip(b.splits, got_split, strict=True):
        want = F.power_of(*F.split_bins(z[:, :1], z[:, 1:], TABLES))[:, 0]
        assert np.array_equal(got, want)
    half, full = TABLES.cfg.n_fft // 2, F.split_factors(TABLES.split)
    ties = sum(int((full[k, 0] * (z[k, 0] - z[half - k, 0]) -
                    full[k, 1] * (z[k, 1] + z[half - k, 1])) % (1 << 30) == 1 << 29)
               for z in b.splits[3:] for k in range(1, half // 2))
    assert ties > 200, ties  # the split's rounding ties, which no audio reaches
    assert pos == len(out)


def test_host_sanitized_equals_python(batch: Batch, tmp_path: Path) -> None:
    exe = D.build_host(tmp_path, TABLES, DEFAULT_VOCAB)
    check(D.run_host(exe, batch.payload), batch)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                    or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc and qemu-system-arm are needed "
                           "(scripts/setup.sh installs them)")
def test_qemu_m4_equals_python(batch: Batch, tmp_path: Path) -> None:
    elf = D.build_qemu(tmp_path, TABLES, DEFAULT_VOCAB)
    out, _ = D.run_qemu(elf, batch.payload)
    check(out, batch)


def test_frontend_objects_need_no_libc_beyond_memory_functions(tmp_path: Path) -> None:
    """Cortex-M4 objects: memcpy/memmove/memset, libgcc's 64-bit division and each other
    (the listen loop calls the front end, gate, decoder and ring), nothing else."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is needed")
    import subprocess

    allowed = {"memcpy", "memmove", "memset", "__aeabi_ldivmod", "__aeabi_uldivmod"}
    undefined, defined = {}, set()
    for src in sorted(D.AUDIO.glob("*.c")):
        obj = tmp_path / f"{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *D.STRICT, "-mthumb", *D.M4.cflags, "-c",
                        str(src), "-o", str(obj)], check=True, timeout=120)
        nm = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
        undefined[src.name] = {ln.split()[-1] for ln in nm if ln.split()[-2] == "U"}
        defined |= {ln.split()[-1] for ln in nm if ln.split()[-2] == "T"}
    for name, needs in undefined.items():
        assert needs <= allowed | defined, (name, needs - allowed - defined)
    assert undefined["tg_frontend.c"] <= allowed  # the front end stands alone


@pytest.mark.parametrize("shape", [(8000, 256, 200, 80, 23), (16000, 1024, 1024, 320, 64),
                                   (16000, 16, 12, 5, 3), (16000, 512, 401, 160, 40),
                                   (16000, 8, 7, 5, 3), (16000, 4, 4, 4, 2)])
def test_host_other_shapes_equal_python(shape: tuple[int, ...], tmp_path: Path) -> None:
    """The C takes every shape from its tables: other sizes, odd windows and the smallest
    FFTs (whose stages and split pairs are the special cases), sanitized, byte for byte."""
    tables = F.frontend_tables(F.FrontendConfig(*shape))
    rng = np.random.default_rng(sum(shape))
    signals = [*D.edge_signals(seed=3)[5:],
               np.clip(rng.standard_normal(7000) * 4000, -32768, 32767).astype(np.int16)]
    most = min(2000, 100 * tables.cfg.hop_length)  # the driver takes 128 frames a push
    chunks = [D.random_chunks(s, rng, most=most) for s in signals]
    exe = D.build_host(tmp_path, tables, "_ab", flags=[*D.SANITIZED,
                                                      "-DTG_FRONTEND_MAX_FFT=1024"])
    out = D.run_host(exe, b"".join(D.frontend_cmd(c) for c in chunks))
    pos = 0
    for s, ch in zip(signals, chunks, strict=True):
        got, pos = D.frontend_read(out, pos, len(ch), tables.cfg.n_mels)
        assert np.array_equal(got, F.features(s, tables))
    assert pos == len(out)


def test_host_optimized_build_equals_python(batch: Batch, tmp_path: Path) -> None:
    """-O3 (the vectoriser's view of the same loops), no sanitizers."""
    exe = D.build_host(tmp_path, TABLES, DEFAULT_VOCAB, flags=[*D.STRICT, "-O3"])
    check(D.run_host(exe, batch.payload), batch)
