"""--app listen: the boards' listen loop (tg_listen.c) == its Python golden, on the host and
on qemu-m4, for any mic block size; clipping and zeros under ASan/UBSan; RAM and flash
of the listen app against counts made here.

Audio: a "conversation" made here with espeak-ng (tinygen data say's synthesizer: never
committed): three phrases with quiet gaps (low noise) between them. The oracle for the
lines is tinygen.audio.listen.listen (tinygen.audio's front end, gate and CTC, and the
golden int8 reference for the model); the words themselves are checked against the
phrases only loosely (mcu-tiny on synthetic voices).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygen.audio import frontend_tables
from tinygen.audio.listen import Heard, Line, ListenConfig, listen
from tinygen.audio_build import audio_input_range
from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.resources import models_dir
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.speech.config import load_preset
from tinygen.speech.model import build_model
from tinygen.speech.streaming import compile_streaming
from tinygen.targets import host

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox make the test audio "
                                       "(scripts/setup.sh installs them)")

PHRASES = ("turn on the lights", "open the door", "stop the music")
WINDOW_MS = 2000
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


def _conversation() -> np.ndarray:
    """The phrases with 0.4 .. 1.2 s of quiet noise (RMS ~3 LSB) around them."""
    from tinygen.speech.data.say import say

    rng = np.random.default_rng(7)
    parts = []
    for k, text in enumerate(PHRASES):
        gap = int(16000 * (0.4 + 0.4 * k))
        parts.append(np.round(rng.standard_normal(gap) * 3).astype(np.int16))
        with wave.open(io.BytesIO(say(text))) as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), "<i2"))
    parts.append(np.round(rng.standard_normal(12000) * 3).astype(np.int16))
    return np.concatenate(parts).astype(np.int16)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return _conversation()


def _built(model: Any, compiled: Any, cal: list[np.ndarray], out: Path, name: str,
           target: str = "host", words: tuple[str, ...] = ()) -> dict[str, Any]:
    report = build(model, out, cal, cal[:1], BuildOptions(target=target, vectors=1,
                                                          app="listen", words=words), name,
                   compiled=compiled)
    return {"out": out, "report": report, "compiled": compiled, "cfg": model.cfg,
            "tables": frontend_tables(model.cfg)}


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = load_model(str(models_dir() / "mcu-tiny.pt"))
    frames = window_frames(model.cfg, WINDOW_MS)
    cal = inputs(model.cfg, frames, 4, seed=0)
    compiled = compile_model(model, frames, cal, input_range=audio_input_range(model))
    built = _built(model, compiled, cal, tmp_path_factory.mktemp("lw") / "host", "mcu-tiny")
    built["model"], built["cal"] = model, cal
    return built


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = dataclasses.replace(load_preset("share-blocks"), name="share-blocks-stream",
                              chunk_frames=2, left_chunks=2).validate()
    model = build_model(cfg, seed=3)
    cal = inputs(cfg, 101, 3, seed=0)
    compiled = compile_streaming(model, cal)
    built = _built(model, compiled, cal, tmp_path_factory.mktemp("ls") / "host", cfg.name)
    built["model"], built["cal"] = model, cal
    return built


def golden(built: dict[str, Any], pcm: np.ndarray) -> Heard:
    report, compiled = built["report"], built["compiled"]
    listen_info = report["listen"]
    vocab = built["cfg"].vocab
    from tinygen.audio.words import word_list

    listed = word_list(report["words"], vocab) if "words" in report else None
    cfg = ListenConfig(block_frames=listen_info["block_frames"],
                       input_frames=report["input"]["shape"][1],
                       streaming=listen_info["streaming"], words=listed)

    def run_window(frames: np.ndarray) -> np.ndarray:
        return compiled.run_int8(frames[None]).reshape(-1, len(vocab))

    def run_stream(chunks: list[np.ndarray]) -> list[np.ndarray]:
        outs = compiled.stream_int8([c[None] for c in chunks],
                                    compiled.int8.meta["state_init"])
        return [y.reshape(-1, len(vocab)) for y in outs]

    return listen(pcm, built["tables"], vocab, cfg, run_window, run_stream)


def parse(text: str) -> Heard:
    lines, stats = [], None
    for ln in text.splitlines():
        tag, _, rest = ln.partition(" ")
        if tag == "tg_text":
            start, end, word = rest.split(" ", 2)
            lines.append(Line(int(start), int(end), word))
        elif tag == "tg_listen":
            stats = [int(v) for v in rest.split()]
    assert stats is not None and stats[3] == 0, text[-500:]  # no ring overrun
    return Heard(lines, stats[0], stats[1], stats[2])


def run_host(exe: Path, pcm: np.ndarray, block: int) -> Heard:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
    proc = subprocess.run([str(exe)], input=struct.pack("<i", block) +
                          np.asarray(pcm, "<i2").tobytes(), capture_output=True,
                          timeout=600, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-2000:]
    return parse(proc.stdout.decode())


def test_windowed_host_equals_golden_for_any_mic_block(windowed, audio) -> None:  # type: ignore[no-untyped-def]
    want = golden(windowed, audio)
    assert 0 < want.skipped < want.blocks and want.runs >= len(PHRASES)
    said = " ".join(line.text for line in want.lines)
    assert len(said) >= 8, want  # the model heard words
    exe = windowed["out"] / "host" / "tinygen_listen"
    for block in (1, 160, 333, 4096):  # a sample, a hop, odd, and a big DMA block
        assert run_host(exe, audio, block) == want, block
    print(f"gate skipped {want.skipped}/{want.blocks} blocks; heard: {said}")


COMMANDS = (*PHRASES, "turn off the lights", "close the door", "play the music", "yes", "no")


def test_command_list_host_equals_golden(windowed, streaming, audio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--words: one line per segment, the best entry, C == golden under ASan/UBSan for any
    mic block; mcu-tiny picks the phrase each segment says. The list's RAM and flash are
    in the report."""
    for built, blocks in ((windowed, (160, 4096)), (streaming, (7, 4096))):
        out = tmp_path / built["cfg"].name
        b = _built(built["model"], built["compiled"], built["cal"], out, built["cfg"].name,
                   words=COMMANDS)
        want = golden(b, audio)
        exe = host.compile_exe(out, extra=SANITIZE, exe=tmp_path / f"{out.name}_listen",
                               main="listen.c")
        for block in blocks:
            assert run_host(exe, audio, block) == want, block
        assert all(ln.text in COMMANDS for ln in want.lines)
        if built is windowed:  # the trained model: the oracle is what was said
            assert [ln.text for ln in want.lines] == list(PHRASES)
        info = b["report"]["listen"]
        states = sum(2 * len(c) + 1 for c in COMMANDS)
        assert info["words"] == {"entries": len(COMMANDS), "states": states}
        assert info["ram"]["word_scores_bytes"] == 4 * states
        text = sum(len(c) for c in COMMANDS)
        assert info["flash"]["words_bytes"] == \
            text + 2 * (len(COMMANDS) + 1) + text + 1 + 2 * (len(COMMANDS) + 1)


def test_streaming_host_equals_golden_for_any_mic_block(streaming, audio) -> None:  # type: ignore[no-untyped-def]
    want = golden(streaming, audio)
    assert 0 < want.skipped < want.blocks
    assert want.runs == want.blocks - want.skipped  # one step per passed block
    exe = streaming["out"] / "host" / "tinygen_listen"
    for block in (7, 256, 4096):
        assert run_host(exe, audio, block) == want, block


def test_clipping_and_zeros_under_sanitizers(windowed, streaming, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Full-scale square noise, DC at both rails and all zeros through the loop built with
    AddressSanitizer and UBSan (any finding aborts): the lines still equal the golden."""
    rng = np.random.default_rng(1)
    loud = np.where(rng.random(40000) < 0.5, -32768, 32767).astype(np.int16)
    rails = np.r_[np.full(9000, 32767), np.full(9000, -32768)].astype(np.int16)
    zeros = np.zeros(30000, np.int16)
    mixed = np.r_[zeros[:8000], loud[:20000], zeros[:8000]].astype(np.int16)
    for built in (windowed, streaming):
        exe = host.compile_exe(built["out"], extra=SANITIZE, exe=tmp_path / "listen_san",
                               main="listen.c")
        for pcm in (loud, rails, zeros, mixed, zeros[:10]):
            want = golden(built, pcm)
            assert run_host(exe, pcm, 509) == want
        assert golden(built, zeros).runs == 0  # digital silence never runs the model


def test_listen_report_counts_by_hand(windowed, streaming) -> None:  # type: ignore[no-untyped-def]
    """RAM parts against sizeof arithmetic done here (ILP32) and, where arm-none-eabi-gcc
    is installed, against the symbol sizes of tg_listen_app.c compiled for Cortex-M4."""
    for built in (windowed, streaming):
        report = built["report"]
        info, cfg = report["listen"], built["cfg"]
        n_mels, vocab = cfg.n_mels, len(cfg.vocab)
        frames_in = report["input"]["shape"][1]
        frames_out = report["output"]["shape"][1]
        block = frames_in if info["streaming"] else 8
        first = cfg.win_length + (block - 1) * cfg.hop_length
        ring = 8192  # 500 ms at 16 kHz, rounded up to a power of two
        assert (info["block_frames"], info["first_block_samples"], info["ring_samples"]) \
            == (block, first, ring)
        frontend_state = 512 * 2 + 4 + 512 * 4 + 514 * 4  # pending, fill, fft, power halves
        # cfg, buffers (9 fields), ring, front end, gate, ctc, words, silence,
        # frame .. seg_frames, word, word_len and ms, counters
        loop = (4 + 36 + 24 + frontend_state + 12 + 12 + 12 + 64 + 20 + 48 + 12 + 12)
        loop += -loop % 4
        model = report["streaming"]["ram_bytes"] if info["streaming"] else \
            report["arena_bytes"]
        want = {"ring_bytes": 2 * ring, "block_bytes": 2 * first,
                "frames_bytes": block * n_mels, "tokens_bytes": 12 * (frames_out + 1),
                "state_bytes": loop, "config_bytes": 80, "model_ram_bytes": model}
        assert frames_out * vocab == int(np.prod(report["output"]["shape"]))
        ram = info["ram"]
        assert {k: ram[k] for k in want} == want
        assert ram["total_bytes"] == sum(want.values())  # host: no stacks are known
        assert info["flash"]["total_bytes"] == report["flash"]["total_bytes"]
        gcc = shutil.which("arm-none-eabi-gcc")
        if gcc is None:
            continue
        out = built["out"]
        obj = out / "listen_app.o"
        subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-O2", "-std=c99", "-c",
                        f"-I{out / 'host'}", f"-I{out / 'model'}",
                        f"-I{out / 'lib' / 'tinygen'}",
                        f"-I{out / 'lib' / 'tinygen' / 'audio'}",
                        str(out / "host" / "tg_listen_app.c"), "-o", str(obj)], check=True)
        nm = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], capture_output=True,
                            text=True, check=True).stdout
        sizes = {ln.split()[3]: int(ln.split()[1], 16) for ln in nm.splitlines()
                 if len(ln.split()) == 4}
        measured = {"ring_bytes": sizes["tg_listen_ring"],
                    "block_bytes": sizes["tg_listen_block"],
                    "frames_bytes": sizes["tg_listen_frames"],
                    "tokens_bytes": sizes["tg_listen_tokens"],
                    "state_bytes": sizes["tg_listen_loop"],
                    "config_bytes": sizes["tg_listen_config"]}
        assert measured == {k: want[k] for k in measured}


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and
                         shutil.which("qemu-system-arm")),
                    reason="arm-none-eabi-gcc and qemu-system-arm run the qemu-m4 build")
def test_qemu_m4_equals_golden(windowed, audio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same loop on the emulated Cortex-M4, PCM from the host over semihosting."""
    from tinygen.targets import qemu

    built = _built(windowed["model"], windowed["compiled"], windowed["cal"],
                   tmp_path / "m4", "mcu-tiny", target="qemu-m4")
    assert built["report"]["listen"] == windowed["report"]["listen"]
    want = golden(windowed, audio)
    elf = (built["out"] / qemu.LISTEN_ELF).resolve()
    for block in (256, 1001):
        run = tmp_path / f"run{block}"
        run.mkdir()
        (run / "tg_listen.pcm").write_bytes(struct.pack("<i", block) +
                                            np.asarray(audio, "<i2").tobytes())
        console, code, _, _ = qemu.run_elf(built["out"], elf, qemu.BOARDS["qemu-m4"],
                                           count=False, cwd=run)
        assert code == 0, console[-2000:]
        assert parse(console) == want, block


def _loop_ram(report: dict[str, Any]) -> int:
    """The loop's RAM parts of tests' hand count (as in test_listen_report_counts_by_hand)."""
    r = report["listen"]["ram"]
    return sum(r[k] for k in ("ring_bytes", "block_bytes", "frames_bytes", "tokens_bytes",
                              "state_bytes", "config_bytes", "model_ram_bytes"))


def test_esp32s3_listen_project(windowed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from platformio.project.config import ProjectConfig

    built = _built(windowed["model"], windowed["compiled"], windowed["cal"],
                   tmp_path / "esp", "mcu-tiny", target="esp32s3")
    out, report = built["out"], built["report"]
    src = out / "src"
    assert (src / "listen_espidf.c").is_file() and not (src / "main.c").exists()
    assert not (src / "tinygen_vectors.c").exists()  # listen embeds no test vectors
    for name in ("tg_listen_app.c", "tg_listen_app.h", "tg_audio_tables.c"):
        assert (src / name).is_file()
    config = ProjectConfig(str(out / "platformio.ini"), parse_extra=False)
    config.validate(envs=["esp32-s3-devkitc-1"])
    flags = config.get("env:esp32-s3-devkitc-1", "build_flags")
    assert flags == ["-DTG_MIC_BCLK=4", "-DTG_MIC_WS=5", "-DTG_MIC_DIN=6",
                     "-DTG_MIC_SHIFT=14"]
    glue = (src / "listen_espidf.c").read_text()
    for pin, value in (("BCLK", 4), ("WS", 5), ("DIN", 6), ("SHIFT", 14)):
        assert f"#ifndef TG_MIC_{pin}\n#define TG_MIC_{pin} {value}\n" in glue
    # the ESP-IDF 5 standard-mode API (driver/i2s_std.h), left slot of 32-bit frames
    for call in ("i2s_new_channel(", "i2s_channel_init_std_mode(", "i2s_channel_enable(",
                 "i2s_channel_read(", "I2S_DATA_BIT_WIDTH_32BIT", "I2S_STD_SLOT_LEFT",
                 "I2S_STD_CLK_DEFAULT_CONFIG(TG_LISTEN_SAMPLE_RATE)"):
        assert call in glue, call
    assert glue.count("\n") < 150  # thin: the loop is lib/tinygen/audio/tg_listen.c
    ram = report["listen"]["ram"]
    # 6 DMA descriptors x 256 frames x 4-byte slots; the 256-frame int32 + int16 buffers;
    # the 8192 B listen task and 3072 B mic task stacks
    assert (ram["dma_bytes"], ram["mic_buffer_bytes"], ram["stack_bytes"]) == \
        (6 * 256 * 4, 256 * 4 + 256 * 2, 8192 + 3072)
    assert ram["total_bytes"] == _loop_ram(report) + 6 * 256 * 4 + 256 * 6 + 8192 + 3072
    assert _loop_ram(report) - ram["model_ram_bytes"] == \
        _loop_ram(windowed["report"]) - windowed["report"]["listen"]["ram"]["model_ram_bytes"]
    flash = report["listen"]["flash"]
    assert flash["model_bytes"] == report["flash"]["total_bytes"] > \
        report["flash"]["audio_tables_bytes"] > 0
    assert flash["total_bytes"] == flash["model_bytes"] + flash["code_estimate_bytes"]


def test_nrf52840_listen_project(windowed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "nrf"
    report = build(windowed["model"], out, windowed["cal"], windowed["cal"][:1],
                   BuildOptions(target="cortex-m4", board="nrf52840_dk", vectors=1,
                                app="listen"), "mcu-tiny", compiled=windowed["compiled"])
    glue = (out / "src" / "listen_zephyr.c").read_text()
    for call in ("dmic_configure(", "dmic_trigger(mic_dev, DMIC_TRIGGER_START)",
                 "dmic_read(", "k_mem_slab_free(", "DT_NODELABEL(dmic_dev)"):
        assert call in glue, call
    assert glue.count("\n") < 150
    overlay = (out / "zephyr" / "app.overlay").read_text()
    assert "dmic_dev: &pdm0 {" in overlay and "clk-pin = <30>;" in overlay
    conf = (out / "zephyr" / "prj.conf").read_text()
    assert "CONFIG_AUDIO=y" in conf and "CONFIG_AUDIO_DMIC=y" in conf
    ram = report["listen"]["ram"]
    # 4 slab blocks of 20 ms of int16 at 16 kHz; main stack 4096 + mic thread 1024
    assert (ram["dma_bytes"], ram["stack_bytes"]) == (4 * 320 * 2, 4096 + 1024)
    assert ram["total_bytes"] == _loop_ram(report) + 4 * 640 + 5120
    if shutil.which("arm-none-eabi-gcc"):  # the audio C is measured like the runtime
        assert 0 < report["listen"]["audio_code_bytes"] < 16384


def test_listen_refusals_are_one_line(tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error, run_tinygen

    for args, needle in ((("--target", "cortex-m4"), "no microphone driver"),
                         (("--target", "host", "--backend", "tflm"), "--backend tflm"),
                         (("--target", "qemu-xtensa"), "qemu-xtensa")):
        result = run_tinygen("build", "preset:mcu-tiny", *args, "--app", "listen", "-o",
                             str(tmp_path / "out"))
        assert_one_line_error(result, needle)
        assert not (tmp_path / "out").exists()


def test_build_words_refusals_are_one_line(tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error, run_tinygen

    good, bad = tmp_path / "commands.txt", tmp_path / "bad.txt"
    good.write_text("lights on\nlights off\n")
    bad.write_text("lights on\nlichter aus!\n")
    for args, needle in ((("--words", str(good)), "--app listen"),
                         (("--app", "listen", "--words", str(bad)), "cannot spell: '!'"),
                         (("--app", "listen", "--words", str(tmp_path / "no.txt")),
                          "no word list")):
        result = run_tinygen("build", "preset:mcu-tiny", *args, "-o", str(tmp_path / "out"))
        assert_one_line_error(result, needle)
        assert not (tmp_path / "out").exists()


def test_report_md_lists_the_listen_ram(windowed) -> None:  # type: ignore[no-untyped-def]
    text = (windowed["out"] / "report.md").read_text()
    ram = windowed["report"]["listen"]["ram"]
    assert "## Listen app" in text
    assert f"| audio ring buffer (int16 samples) | {2 * 8192:,} |" in text
    assert f"| **total** | **{ram['total_bytes']:,}** |" in text


def test_cli_listen_on_the_board_it_names(tmp_path: Path) -> None:
    """docs/listen.md's command: --board nrf52840_dk alone picks its target, and the
    listen check looks at that board, not at the target's default board. The output folder
    is relative, as in the docs (the compile check of the project once ran elsewhere)."""
    from tests.conftest import run_tinygen

    out = tmp_path / "mic-nrf"
    result = run_tinygen("build", "preset:share-blocks", "--board", "nrf52840_dk", "--app",
                         "listen", "--window-ms", "400", "--calib", "2", "--vectors", "1",
                         "-o", "mic-nrf", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert (report["board"], report["listen"]["streaming"]) == ("nrf52840_dk", False)
    assert (out / "src" / "listen_zephyr.c").is_file()
