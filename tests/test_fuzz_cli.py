"""CLI fuzz: random command lines over good, damaged and hostile files. Every run exits
0, 1 or 2 without a traceback, prints at most one line on stderr when it fails, changes
nothing outside its OUT, and leaves OUT complete or untouched. Seeded and bounded (150
cases, most refused before any work); bench/fuzz.py runs the same for longer."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.fuzzing import check_run, cli_case, make_sandbox, run_in_process, run_subprocess
from tests.fuzzing import snapshot as snap

CASES = 150
SEED = 13
SUBPROCESS_EVERY = 30  # these also run as a real process: real stderr and exit status


def test_cli_fuzz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = make_sandbox(tmp_path / "box")
    monkeypatch.chdir(box.root)
    rng = random.Random(SEED)
    counts = {"cases": 0, "ok": 0, "built": 0, "refused": 0, "mismatch": 0,
              "tracebacks": 0, "subprocess": 0}
    failures = []
    spent: dict[str, float] = {}
    for i in range(CASES):
        argv, out = cli_case(rng)
        before = snap(box.root)
        in_sub = i % SUBPROCESS_EVERY == 0
        start = time.perf_counter()
        run = run_subprocess(argv, box.root) if in_sub else run_in_process(argv)
        spent[argv[0]] = spent.get(argv[0], 0.0) + time.perf_counter() - start
        broken = check_run(run, before, snap(box.root), out, box.root)
        counts["cases"] += 1
        counts["subprocess"] += in_sub
        counts["tracebacks"] += bool(run.traceback)
        counts["ok" if run.code == 0 else "mismatch" if run.code == 1 else "refused"] += 1
        counts["built"] += run.code == 0 and argv[0] == "build"
        if broken:
            failures.append(f"{argv!r}: {'; '.join(broken)}")
    print("cli fuzz:", counts, {k: round(v, 1) for k, v in spent.items()})
    assert not failures, "\n".join(failures[:10])
    assert counts["tracebacks"] == 0
    assert counts["built"] >= 3 and counts["refused"] >= CASES // 2  # both paths exercised
