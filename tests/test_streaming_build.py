"""A compiled streaming step: C == the golden int8 step, bit for bit, over whole streams.

One streaming model (share-blocks with 80 ms chunks and 160 ms of attention context, so
CI stays fast) is built once for the host and once per QEMU board. Its test vectors are
eight whole streams of different lengths: shorter than one chunk, exactly one chunk, and
up to 213 chunks. Each stream starts at a tg_model_reset(); the QEMU firmware runs all of
them in one process, so stepping across resets is covered too. The expected bytes are the
golden reference's (numpy int8 step from the int8 silence state), never the C's.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tinygen.build import BuildOptions, build
from tinygen.compiler.stream import StreamCompileError, compile_step
from tinygen.speech.calib import inputs
from tinygen.speech.config import load_preset
from tinygen.speech.model import build_model
from tinygen.speech.streaming import (
    chunks_of,
    compile_streaming,
    recorded_steps,
    silence_chunk,
    state_specs,
)
from tinygen.targets import CFLAGS, find_compiler, host, qemu
from tinygen.verify import verify

# log-mel frames per stream; one chunk is 8 frames (C = 2 encoder frames)
LENGTHS = (3, 8, 9, 37, 101, 250, 480, 1700)


def _model():  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(load_preset("share-blocks"), name="share-blocks-stream",
                              chunk_frames=2, left_chunks=2).validate()
    return build_model(cfg, seed=3)


def _streams(cfg: Any) -> list[np.ndarray]:
    return [inputs(cfg, t, 1, seed=10 + i)[0] for i, t in enumerate(LENGTHS)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """target -> (OUT, report) of the same model, calibration and streams."""
    model = _model()
    cal = inputs(model.cfg, 101, 3, seed=0)
    vecs = _streams(model.cfg)
    root = tmp_path_factory.mktemp("stream")
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    compiled = compile_streaming(model, cal)  # once, for every target
    for target in ("host", *sorted(qemu.BOARDS)):
        report = build(model, root / target, cal, vecs,
                       BuildOptions(target=target, vectors=len(vecs)), model.cfg.name,
                       compiled=compiled)
        out[target] = (root / target, report)
    return out


def test_host_c_steps_like_the_golden_reference(built) -> None:  # type: ignore[no-untyped-def]
    out, report = built["host"]
    result = verify(out, sanitize=True)  # AddressSanitizer + UBSan
    assert result["vectors"] == len(LENGTHS)
    assert result["bit_exact"], result["mismatched"]
    assert result["snr_db"] > 20  # float step vs the C's int8 step, pooled
    # each expected_K.bin holds one output per chunk of its stream
    per_step = int(np.prod(report["output"]["shape"]))
    chunk = report["streaming"]["input_frames_per_step"]
    for k, t in enumerate(LENGTHS):
        expected = (out / "test_vectors" / f"expected_{k}.bin").read_bytes()
        assert len(expected) == per_step * max(1, -(-t // chunk))


@pytest.mark.parametrize("target", sorted(qemu.BOARDS))
def test_qemu_steps_like_the_golden_reference(built, target: str) -> None:  # type: ignore[no-untyped-def]
    out, _ = built[target]
    result = verify(out)
    assert result["bit_exact"], result["mismatched"]
    steps = sum(max(1, -(-t // 8)) for t in LENGTHS)
    counts = result["instructions_per_inference"]  # one count per step
    assert len(counts) == steps and min(counts) > 0


def test_golden_step_is_the_graph_and_the_state_settles() -> None:
    """The golden step, stepped by hand through a stream, gives expected_K.bin's bytes;
    and the silence state is a fixed point of the int8 step."""
    model = _model()
    compiled = compile_streaming(model, inputs(model.cfg, 101, 2, seed=0))
    start = compiled.int8.meta["state_init"]
    silence = compiled.quantize_input(silence_chunk(model.cfg).numpy())
    _, again = compiled.run_int8(silence, start)
    assert all(np.array_equal(a, b) for a, b in zip(again, start, strict=True))
    # state tensors keep one quantization from step to step
    assert compiled.state_quants() == [compiled.quant(n) for n in compiled.int8.outputs[1:]]


def test_report_state_layout_by_hand(built) -> None:  # type: ignore[no-untyped-def]
    _, report = built["host"]
    s = report["streaming"]
    cfg = _model().cfg
    specs = state_specs(cfg)
    sizes = [int(np.prod(sp.shape)) for sp in specs]
    assert [t["tensor"] for t in s["state"]] == [sp.name for sp in specs]
    assert [t["bytes"] for t in s["state"]] == sizes
    assert s["state_bytes"] == sum(-(-n // 16) * 16 for n in sizes)  # 16-byte aligned
    assert s["ram_bytes"] == s["state_bytes"] + s["arena_bytes"]
    assert (s["chunk_ms"], s["latency_ms"], s["lookahead_ms"]) == (80.0, 80.0, 0.0)
    assert s["macs_per_second"] == round(s["macs_per_step"] * 1000 / 80)
    assert report["flash"]["state_init_bytes"] == s["state_bytes"]
    out, _ = built["host"]
    assert "## Streaming" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["streaming"] == s


def test_step_before_reset_is_refused_in_c(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, _ = built["host"]
    driver = tmp_path / "driver.c"
    driver.write_text(
        '#include "tinygen_model.h"\n'
        "int main(void)\n{\n"
        "    if (tg_model_step() != TG_ERR_NO_STATE) return 1; /* no state yet */\n"
        "    if (tg_model_reset() != 0 || tg_model_step() != 0) return 2;\n"
        "    return 0;\n}\n")
    srcs = [driver, *sorted((out / "model").glob("*.c")),
            *host.runtime_sources(out / "lib" / "tinygen")]
    exe = tmp_path / "driver"
    subprocess.run([find_compiler(None), *CFLAGS, "-I", str(out / "model"), "-I",
                    str(out / "lib" / "tinygen"), *map(str, srcs), "-o", str(exe)],
                   check=True, capture_output=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_host_runner_refuses_a_partial_chunk(built) -> None:  # type: ignore[no-untyped-def]
    out, report = built["host"]
    size = int(np.prod(report["input"]["shape"]))
    exe = out / host.EXE
    ok = subprocess.run([str(exe)], input=bytes(2 * size), capture_output=True)
    assert ok.returncode == 0 and len(ok.stdout) == 2 * int(np.prod(report["output"]["shape"]))
    bad = subprocess.run([str(exe)], input=bytes(size + 3), capture_output=True)
    assert bad.returncode == 2 and b"whole number" in bad.stderr


def test_a_step_that_drops_its_state_is_refused() -> None:
    class Forgetful(torch.nn.Module):
        def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, s], dim=1) * 2  # the new state is never returned

    x, s = torch.randn(1, 4, 3), torch.randn(1, 2, 3)
    with pytest.raises(StreamCompileError, match="must return 2"):
        compile_step(Forgetful(), (x, s), [[x.numpy(), s.numpy()]])


def test_chunks_complete_the_last_one_with_silence() -> None:
    cfg = _model().cfg
    chunks = chunks_of(np.zeros((1, 9, cfg.n_mels), np.float32), cfg)
    assert len(chunks) == 2 and chunks[1].shape == (1, 8, cfg.n_mels)
    assert np.allclose(chunks[1][0, 1:], chunks[1][0, -1])  # silence after frame 8
    assert len(recorded_steps(_model(), [torch.zeros(1, 9, cfg.n_mels)])) == 2
