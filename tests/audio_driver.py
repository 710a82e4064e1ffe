"""Build and drive tests/c/tg_audio_driver.c (the audio C) on the host and on qemu-m4.

Shared by tests/test_audio_c.py and bench/bench_frontend.py. The driver's protocol is in
its header comment; the encoders here write it and the decoders read its answers.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinygen.audio import frontend as F
from tinygen.audio.ctc import Token
from tinygen.audio.emit import render_audio_tables
from tinygen.audio.gate import GateConfig
from tinygen.targets import qemu

REPO = Path(__file__).resolve().parent.parent
AUDIO = REPO / "firmware" / "tinygen" / "audio"
DRIVER = REPO / "tests" / "c" / "tg_audio_driver.c"
STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZED = [*STRICT, "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer"]
M4 = qemu.BOARDS["qemu-m4"]


def _i32(*v: int) -> bytes:
    return struct.pack(f"<{len(v)}i", *v)


def write_tables(folder: Path, tables: F.FrontendTables, vocab: str) -> Path:
    for name, text in render_audio_tables(tables, vocab, model_name="test").items():
        (folder / name).write_text(text)
    return folder / "tg_audio_tables.c"


# the front end's test entry point (tg_frontend_split_power_test) for the SPLIT command
HOOKS = "-DTG_FRONTEND_TEST_HOOKS"


def build_host(folder: Path, tables: F.FrontendTables, vocab: str,
               flags: Sequence[str] = SANITIZED) -> Path:
    exe = folder / "tg_audio_driver"
    sources = [DRIVER, write_tables(folder, tables, vocab), *sorted(AUDIO.glob("*.c"))]
    proc = subprocess.run(["gcc", *flags, HOOKS, "-I", str(AUDIO), "-I", str(AUDIO.parent),
                           "-I", str(folder),
                           *map(str, sources), "-o", str(exe)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exe


def build_qemu(folder: Path, tables: F.FrontendTables, vocab: str,
               phases: bool = False) -> Path:
    """The driver as a qemu-m4 ELF (semihosting I/O, instruction-count markers); with
    ``phases``, a step marker at each phase of every frame too."""
    boards = qemu.board_dir().parent
    for name in (*M4.arch.files, *qemu.SHARED_FILES, f"{M4.folder}/{M4.linker_script}"):
        shutil.copyfile(boards / name, folder / Path(name).name)
    tables_c = write_tables(folder, tables, vocab)
    sources = [DRIVER, tables_c, *sorted(AUDIO.glob("*.c")),
               *(folder / s for s in M4.arch.sources)]
    cmd = [M4.arch.cc, *STRICT, *M4.arch.cflags, *M4.cflags, "-ffunction-sections",
           "-fdata-sections", "-DTG_DRIVER_SEMIHOST", HOOKS,
           *(["-DTG_FRONTEND_PHASE(name)=tg_mark_step()", "-include", "tg_qemu_markers.h"]
             if phases else []), "-I", str(AUDIO), "-I", str(AUDIO.parent), "-I", str(folder),
           *map(str, sources), *M4.arch.ldflags, "-L", str(folder), "-T", M4.linker_script,
           "-o", str(folder / "audio.elf")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "audio.elf"


def run_host(exe: Path, payload: bytes) -> bytes:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
    proc = subprocess.run([str(exe)], input=payload + _i32(0), capture_output=True,
                          timeout=300, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-3000:]
    return proc.stdout


def run_qemu(elf: Path, payload: bytes, plugin: Path | None = None
             ) -> tuple[bytes, list[list[int]]]:
    """Run the ELF in its folder: the output file, and per front-end push the instruction
    counts of its steps (the push, or with ``phases`` each phase of each frame)."""
    folder = elf.parent
    (folder / "audio_in.bin").write_bytes(payload + _i32(0))
    out = folder / "audio_out.bin"
    out.unlink(missing_ok=True)
    cmd = ["qemu-system-arm", "-M", M4.machine, "-nographic", "-semihosting-config",
           "enable=on,target=native", "-kernel", elf.name]
    counts = folder / "icount.txt"
    if plugin is not None:
        args = ",".join(f"{k}={v:#x}" for k, v in qemu.marker_addresses(elf).items())
        cmd += ["-plugin", f"{plugin.resolve()},{args},out={counts.resolve()}"]
    proc = subprocess.run(cmd, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    steps = [[int(v) for v in ln.split()[5:]] for ln in counts.read_text().splitlines()] \
        if plugin is not None else []
    return out.read_bytes(), steps


# ------------------------------------------------------------------ the commands
def split_cmd(cases: Sequence[np.ndarray]) -> bytes:
    """SPLIT: each case an int32 (n_fft,) array of doubled half-size FFT values 2Z."""
    return struct.pack("<ii", 6, len(cases)) + b"".join(
        np.asarray(c, dtype="<i4").tobytes() for c in cases)


def split_read(out: bytes, pos: int, n_cases: int, n_fft: int
               ) -> tuple[list[np.ndarray], int]:
    """SPLIT's answers: per case the (n_fft/2 + 1,) power as int64, and the new pos."""
    got = []
    for _ in range(n_cases):
        halves = np.frombuffer(out[pos:pos + 4 * (n_fft + 2)], dtype="<u4").astype(np.int64)
        got.append(halves[0::2] + (halves[1::2] << 32))
        pos += 4 * (n_fft + 2)
    return got, pos


def frontend_cmd(chunks: Sequence[np.ndarray]) -> bytes:
    parts = [_i32(1, len(chunks))]
    for c in chunks:
        parts += [_i32(len(c)), np.ascontiguousarray(c, dtype="<i2").tobytes()]
    return b"".join(parts)


def frontend_read(out: bytes, pos: int, n_chunks: int, n_mels: int
                  ) -> tuple[np.ndarray, int]:
    frames = []
    for _ in range(n_chunks):
        (count,) = struct.unpack_from("<i", out, pos)
        pos += 4
        frames.append(np.frombuffer(out, np.int8, count * n_mels, pos).reshape(count, n_mels))
        pos += count * n_mels
    return np.concatenate(frames) if frames else np.zeros((0, n_mels), np.int8), pos


def ctc_cmd(chunks: Sequence[np.ndarray]) -> bytes:
    parts = [_i32(2, chunks[0].shape[1], len(chunks))]
    for c in chunks:
        parts += [_i32(c.shape[0]), np.ascontiguousarray(c, dtype=np.int8).tobytes()]
    return b"".join(parts)


def ctc_read(out: bytes, pos: int, n_chunks: int) -> tuple[list[list[Token]], bytes, int]:
    groups = []
    for _ in range(n_chunks + 1):  # the pushes, then the flush
        (count,) = struct.unpack_from("<i", out, pos)
        vals = struct.unpack_from(f"<{3 * count}i", out, pos + 4)
        pos += 4 + 12 * count
        groups.append([Token(*vals[3 * i:3 * i + 3]) for i in range(count)])
    (size,) = struct.unpack_from("<i", out, pos)
    return groups, out[pos + 4:pos + 4 + size], pos + 4 + size


def words_cmd(ids: Sequence[Sequence[int]], chunks: Sequence[np.ndarray]) -> bytes:
    parts = [_i32(5, len(ids))]
    for e in ids:
        parts.append(_i32(len(e), *e))
    parts.append(_i32(chunks[0].shape[1], len(chunks)))
    for c in chunks:
        parts += [_i32(c.shape[0]), np.ascontiguousarray(c, dtype=np.int8).tobytes()]
    return b"".join(parts)


def words_read(out: bytes, pos: int, n_chunks: int) -> tuple[list[tuple[int, ...]], int]:
    """Per chunk: (index, score, free, frames) after it."""
    got = [struct.unpack_from("<4i", out, pos + 16 * i) for i in range(n_chunks)]
    return got, pos + 16 * n_chunks


def gate_cmd(cfg: GateConfig, chunks: Sequence[np.ndarray]) -> bytes:
    parts = [_i32(3, cfg.threshold, cfg.rise, cfg.hangover, cfg.min_level, cfg.init_floor,
                  len(chunks))]
    for c in chunks:
        parts += [_i32(len(c)), np.ascontiguousarray(c, dtype="<i2").tobytes()]
    return b"".join(parts)


def gate_read(out: bytes, pos: int, n_chunks: int) -> tuple[list[tuple[int, int, int]], int]:
    vals = struct.unpack_from(f"<{3 * n_chunks}i", out, pos)
    return [tuple(vals[3 * i:3 * i + 3]) for i in range(n_chunks)], pos + 12 * n_chunks


def ring_cmd(capacity: int, ops: Sequence[tuple[int, int]]) -> bytes:
    return _i32(4, capacity, len(ops)) + b"".join(_i32(k, n) for k, n in ops)


def ring_read(out: bytes, pos: int, ops: Sequence[tuple[int, int]]
              ) -> tuple[list[tuple[int, list[int]]], tuple[int, int], int]:
    results = []
    for kind, _ in ops:
        (done,) = struct.unpack_from("<i", out, pos)
        pos += 4
        data: list[int] = []
        if kind == 1:
            data = np.frombuffer(out, "<i2", done, pos).tolist()
            pos += 2 * done
        results.append((done, data))
    over = struct.unpack_from("<2i", out, pos)
    return results, (over[0], over[1]), pos + 8


# ------------------------------------------------------------------ test signals
def speech(n: int, seed: int = 0) -> list[np.ndarray]:
    """n espeak-ng utterances (int16, 16 kHz) through the corpus synthesizer's own steps:
    random phrase, voice, variant, speed, pitch, noise kind and SNR, level, padding."""
    return [pcm for pcm, _ in speech_with_text(n, seed)]


def speech_with_text(n: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """:func:`speech`, with each utterance's text."""
    from tinygen.speech.data import synth
    from tinygen.speech.data.words import phrase

    tools = synth.find_tools()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        plan = synth.Plan(
            uid=f"t{i}", split="test", text=phrase(rng),
            voice=synth.VOICES[int(rng.integers(len(synth.VOICES)))],
            variant=synth.VARIANTS[int(rng.integers(12))],
            speed=int(rng.integers(*synth.SPEED_WPM)), pitch=int(rng.integers(*synth.PITCH)),
            gap=int(rng.integers(*synth.WORD_GAP)),
            noise=synth.NOISES[int(rng.integers(len(synth.NOISES)))],
            snr_db=float(rng.uniform(*synth.SNR_DB)), peak=float(rng.uniform(0.02, 0.9)),
            lead_s=float(rng.uniform(*synth.PAD_S)), tail_s=float(rng.uniform(*synth.PAD_S)),
            seed=int(rng.integers(1 << 30)))
        out.append((synth.mix(synth.speak(tools, plan), plan), plan.text))
    return out


def edge_signals(seed: int = 0) -> list[np.ndarray]:
    """Silence, clipping, noise and the lengths around one frame."""
    rng = np.random.default_rng(seed)
    cfg = F.FrontendConfig()
    square = np.tile(np.r_[np.full(8, 32767), np.full(8, -32768)], 1000).astype(np.int16)
    square_odd = np.where(np.arange(12000) % 37 < 18, 32767, -32768).astype(np.int16)
    return [
        np.zeros(0, np.int16), np.zeros(1, np.int16),
        rng.integers(-32768, 32768, cfg.win_length - 1).astype(np.int16),
        rng.integers(-32768, 32768, cfg.win_length).astype(np.int16),
        rng.integers(-32768, 32768, cfg.win_length + cfg.hop_length).astype(np.int16),
        np.zeros(16000, np.int16),  # digital silence
        square, square_odd,  # full-scale clipping square waves
        np.full(4000, 32767, np.int16), np.full(4000, -32768, np.int16),  # DC rails
        rng.integers(-32768, 32768, 16000).astype(np.int16),  # full-scale white noise
        np.clip(rng.standard_normal(16000) * 2, -32768, 32767).astype(np.int16),  # LSB noise
        np.where(np.arange(8000) % 2 == 0, 32767, -32768).astype(np.int16),  # Nyquist
    ]


def random_chunks(x: np.ndarray, rng: np.random.Generator, most: int = 4096
                  ) -> list[np.ndarray]:
    """x cut at random points: empty chunks, single samples and long runs all occur."""
    chunks, pos = [], 0
    while pos < len(x):
        kind = rng.integers(4)
        n = (0, 1, int(rng.integers(1, 400)), int(rng.integers(1, most + 1)))[kind]
        chunks.append(x[pos:pos + n])
        pos += n
    return chunks or [x]
