"""The error contract at the edges: degenerate weights, file names that reach C, paths,
signals and modes, CLI values, warnings on stderr, messages that name the real problem,
and write errors. Each test reproduces one way past the contract that was found by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_one_line_error, run_main
from tests.test_force import FAST, tiny_checkpoint
from tinygen.build import BuildOptions, build
from tinygen.cdecl import c_text
from tinygen.fsutil import OutputError
from tinygen.resources import firmware_dir
from tinygen.speech.calib import inputs
from tinygen.speech.checkpoint import save_checkpoint
from tinygen.verify import verify


def _tiny_model():  # type: ignore[no-untyped-def]
    from tinygen.speech.config import ConformerConfig
    from tinygen.speech.model import build_model

    return build_model(ConformerConfig(name="tiny", d_model=16, n_heads=2, ff_dim=32,
                                       n_mels=16, subsample_channels=4, conv_kernel=3,
                                       block_order=(0,)), seed=0)


def _scaled(path: Path, factor: float, which: str = "") -> Path:
    model = _tiny_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if which in name:
                p.mul_(factor)
    save_checkpoint(model, path)
    return path


# ------------------------------------------------------------ 3: degenerate weights
@pytest.mark.parametrize("factor,which", [(0.0, ""), (1e-38, ""), (1e-6, "attn"),
                                          (1e30, "ffn1.w1"), (1e30, "")])
def test_degenerate_weights_build_bit_exact_or_refuse_in_one_line(
        tmp_path: Path, factor: float, which: str) -> None:
    ckpt = _scaled(tmp_path / "m.pt", factor, which)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "tinygen", "build", str(ckpt), "-o", str(out),
                           *FAST], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        assert proc.stderr == ""
        assert verify(out)["bit_exact"]
    else:
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert not out.exists()


def test_negative_batch_norm_variance_is_named(tmp_path: Path) -> None:
    model = _tiny_model()
    with torch.no_grad():
        model.blocks[0].conv.bn.running_var[3] = -1.0
    save_checkpoint(model, tmp_path / "m.pt")
    res = run_main("build", str(tmp_path / "m.pt"), "-o", str(tmp_path / "o"), *FAST)
    assert_one_line_error(res, "batch-norm variance", "running_var", "1 negative")


# ------------------------------------------------------------ 7: file names into C
@pytest.mark.parametrize("name", ['q"uote', "bs\\", "x??=", "new\nline", "star*x"])
def test_any_file_name_compiles(tmp_path: Path, name: str) -> None:
    ckpt = tiny_checkpoint(tmp_path / f"{name}.pt")
    res = run_main("build", str(ckpt), "-o", str(tmp_path / "out"), *FAST)
    assert res.returncode == 0, res.stderr
    header = (tmp_path / "out" / "model" / "tinygen_model.h").read_text()
    assert f'#define TG_MODEL_NAME "{c_text(name)}"' in header
    assert verify(tmp_path / "out")["bit_exact"]


def test_c_text_keeps_only_safe_characters() -> None:
    assert c_text('q"uote') == "q_uote"
    assert c_text("x??=/*\\\n") == "x" + "_" * 7
    assert c_text("mcu-tiny.v2+fp16") == "mcu-tiny.v2+fp16"
    assert c_text("") == "model" and len(c_text("a" * 300)) == 64


# ------------------------------------------------------------ 8: paths and signals
def test_out_inside_the_runtime_sources_is_refused(tmp_path: Path) -> None:
    out = firmware_dir() / "tinygen" / "out"
    res = run_main("build", "preset:share-blocks", "-o", str(out), *FAST)
    assert_one_line_error(res, "inside tinygen's own firmware/")
    assert not out.exists()


def test_a_300_character_out_is_one_line(tmp_path: Path) -> None:
    res = run_main("build", "preset:share-blocks", "-o", str(tmp_path / ("o" * 300)), *FAST)
    assert_one_line_error(res, "300 bytes long")
    assert list(tmp_path.iterdir()) == []


def test_out_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        model = _tiny_model()
        x = inputs(model.cfg, 21, 1, seed=0)
        build(model, tmp_path / "out", x, x, BuildOptions(), "tiny")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


def test_out_filled_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()  # empty: allowed without --force
    model = _tiny_model()
    x = inputs(model.cfg, 21, 1, seed=0)

    def another_build_lands(done: int) -> None:
        (out / "report.json").write_text("{}")  # e.g. a second build to the same OUT

    with pytest.raises(OutputError, match="filled by something else"):
        build(model, out, x, x, BuildOptions(), "tiny", progress=another_build_lands)
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sigterm_leaves_no_partial_folder(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "tinygen", "build", str(ckpt), "-o",
                             str(out), *FAST], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert proc.poll() is None, "the build ended before its temp folder was seen"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == "tinygen: terminated (SIGTERM)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


# ------------------------------------------------------------ 9, 11: CLI values, messages
@pytest.mark.parametrize("argv,needle", [
    (["build", "preset:share-blocks", "-o", "X", "--window-ms", "nan"], "--window-ms: nan"),
    (["build", "preset:share-blocks", "-o", "X", "--window-ms", "inf"], "--window-ms: inf"),
    (["build", "preset:share-blocks", "-o", "X", "--window-ms", "1e7"], "--window-ms: 1e+07"),
    (["build", "preset:share-blocks", "-o", "X", "--vectors", "0"], "--vectors: 0 is outside"),
    (["build", "preset:share-blocks", "-o", "X", "--calib", "-3"], "--calib: -3 is outside"),
    (["data", "synth", "--out", "X", "--utterances", "3", "--seed", "-1"],
     "--seed: -1 is outside"),
    (["eval", "preset:share-blocks", "--data", "X", "--window-ms", "nan"], "--window-ms"),
    (["build", "preset:share-blocks"], "required: -o/--output"),
])
def test_bad_cli_values_are_one_line_before_any_work(tmp_path: Path, argv: list[str],
                                                     needle: str) -> None:
    argv = [str(tmp_path / "x") if a == "X" else a for a in argv]
    start = time.perf_counter()
    res = run_main(*argv)
    assert_one_line_error(res, needle)
    assert time.perf_counter() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_window_hint_names_a_window_that_works(tmp_path: Path) -> None:
    res = run_main("build", "preset:share-blocks", "-o", str(tmp_path / "o"), "--window-ms",
                   "50", "--calib", "1", "--vectors", "1")
    assert_one_line_error(res, "gives no encoder frame", "use --window-ms 60 or more")
    res = run_main("build", "preset:share-blocks", "-o", str(tmp_path / "o"), "--window-ms",
                   "60", "--calib", "1", "--vectors", "1")
    assert res.returncode == 0, res.stderr


def test_data_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("{}\n")
    res = run_main("build", "preset:share-blocks", "-o", str(tmp_path / "o"), "--data",
                   str(tmp_path / "corpus.jsonl"), *FAST)
    assert_one_line_error(res, "is a file, not a corpus folder")


# ------------------------------------------------------------ 10: warnings on stderr
def test_a_good_build_prints_nothing_on_stderr(tmp_path: Path) -> None:
    ckpt = _scaled(tmp_path / "m.pt", 1e30, "ffn1.w1")  # overflowed exp() before the fix
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "tinygen", "build",
                           str(ckpt), "-o", str(tmp_path / "out"), *FAST],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# ------------------------------------------------------------ 12: write errors
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_host_runner_reports_a_full_disk(tmp_path: Path) -> None:
    res = run_main("build", "preset:share-blocks", "-o", str(tmp_path / "out"), *FAST)
    assert res.returncode == 0, res.stderr
    exe = tmp_path / "out" / "host" / "tinygen_model"
    xq = (tmp_path / "out" / "test_vectors" / "input_0.bin").read_bytes()
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([str(exe)], input=xq, stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 1 and b"cannot write the output" in proc.stderr


def test_pack_to_a_folder_is_one_line(tmp_path: Path) -> None:  # found by the CLI fuzz
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    (tmp_path / "dir").mkdir()
    res = run_main("pack", str(ckpt), "-o", str(tmp_path / "dir"), "--force")
    assert_one_line_error(res, "is a folder")
    assert list((tmp_path / "dir").iterdir()) == []
