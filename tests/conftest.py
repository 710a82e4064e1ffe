from __future__ import annotations

import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_tinygen(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run the CLI in a child process, exactly as a user would."""
    proc = subprocess.run([sys.executable, "-m", "tinygen", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_main(*args: str) -> CliResult:
    """Run ``tinygen.cli.main`` in this process (fast; an escaping exception is a bug and
    fails the test), capturing what it prints."""
    import contextlib
    import io

    from tinygen.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse: usage errors exit 2
            code = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """A user mistake: exit status 2, one 'tinygen: error:' line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tinygen: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(autouse=True)
def _own_torch_seed(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Each test draws from torch's global generator (module initialisation, randn
    without a generator) from a seed of its own, derived from its name, and leaves the
    generator as it found it: its inputs do not depend on which tests ran before it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
        yield


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run_tinygen


def compile_once(mp: pytest.MonkeyPatch) -> None:
    """Make tinygen.build.build compile (calibrate, quantize) each model object only once,
    so that one model can be built for many targets in a test module."""
    import tinygen.build as tb

    compile_model = tb.compile_model
    cache: dict[int, object] = {}

    def cached(model, frames, calib, progress=None, **kwargs):  # type: ignore[no-untyped-def]
        if id(model) not in cache:
            cache[id(model)] = compile_model(model, frames, calib, progress, **kwargs)
        return cache[id(model)]

    mp.setattr(tb, "compile_model", cached)
