"""Mutation check: do the tests notice a planted bug?

Each mutant below replaces one exact piece of tinygen's source with a wrong one, in a
temporary copy of the tree, and runs the few tests that are meant to catch it there. A
mutant is *killed* when those tests fail, *survived* when they pass; a mutant whose text
is no longer in the source is reported *stale* (update the list). Not part of CI: it
takes tens of minutes (run it under ``nice``).

    python bench/mutants.py                # every mutant
    python bench/mutants.py calib-127 ...  # some of them, by name
    python bench/mutants.py --list
    python bench/mutants.py --control      # also run every selection on the clean tree

Exit status 0 when every mutant run is killed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str  # the planted bug, in words
    path: str  # file to change, relative to the repository
    old: str  # exact text, found exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


MUTANTS = [
    Mutant("sanitize-off", "--sanitize compiles without the sanitizer flags (issue 21.1)",
           "tinygen/verify.py",
           'extra = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g") \\\n'
           "                if sanitize else ()",
           "extra = ()",
           ("tests/test_verify_damaged.py", "-k", "sanitize")),
    Mutant("verify-always-match", "verify() reports every vector as matching (21.2)",
           "tinygen/verify.py",
           "if k >= len(outputs) or outputs[k] != exp]", "if False]",
           ("tests/test_verify_damaged.py", "-k", "mismatch")),
    Mutant("verify-ignores-missing", "verify() skips vectors the runner gave no output for",
           "tinygen/verify.py",
           "if k >= len(outputs) or outputs[k] != exp]",
           "if k < len(outputs) and outputs[k] != exp]",
           ("tests/test_verify_damaged.py", "-k", "mismatch")),
    Mutant("arena-overlap", "a buffer may take the bytes of one that dies at the step "
           "where it is born (21.2)",
           "tinygen/compiler/plan.py",
           "if not (z < first or last < f))", "if not (z <= first or last < f))",
           ("tests/test_arena.py", "-k", "share")),
    Mutant("calib-127", "activation ranges spread over 127 steps instead of 255 (21.3)",
           "tinygen/compiler/quantize.py",
           "scale = float(np.float32((hi - lo) / 255.0))",
           "scale = float(np.float32((hi - lo) / 127.0))",
           ("tests/test_calibration.py",)),
    Mutant("no-in-place", "elementwise ops never write in place (21.4)",
           "tinygen/compiler/plan.py",
           'IN_PLACE = ("lut", "add", "mul")', "IN_PLACE = ()",
           ("tests/test_arena.py", "-k", "floor")),
    Mutant("arena-pad-4k", "every arena buffer padded by 4 KB (21.4)",
           "tinygen/compiler/plan.py",
           "size = -(-plan.sizes[b] // ALIGN) * ALIGN",
           "size = -(-plan.sizes[b] // ALIGN) * ALIGN + 4096",
           ("tests/test_arena.py", "-k", "floor")),
    Mutant("exit-1", "a user mistake exits 1 instead of 2 (21.5)",
           "tinygen/cli.py",
           "        return err.exit_code\n", "        return 1\n",
           ("tests/test_verify_damaged.py", "-k", "damaged")),
    Mutant("check-skips-main", "the compile check silently leaves out src/main.c (21.6)",
           "tinygen/targets/platformio.py",
           'units = [(p, f"src/{p.name}") for p in sorted(src.iterdir())',
           'units = [(p, f"src/{p.name}") for p in sorted(src.glob("tinygen_*"))',
           ("tests/test_platformio.py", "-k", "accounts and f446re")),
    Mutant("check-skips-adapters", "the compile check silently leaves out the CMSIS-NN "
           "adapters (21.6)",
           "tinygen/targets/platformio.py",
           'for rel in library_sources(lib)]',
           'for rel in library_sources(lib) if "cmsis_nn" not in rel]',
           ("tests/test_platformio.py", "-k", "accounts and f446re")),
    Mutant("c-input-plus-3", "the eval feeds the C build its input shifted by +3 int8 "
           "steps (21.7)",
           "tinygen/speech/evaluate.py",
           "input=compiled.quantize_input(x).tobytes(),",
           "input=np.clip(compiled.quantize_input(x).astype(np.int16) + 3, -128, 127)"
           ".astype(np.int8).tobytes(),",
           ("tests/test_train.py", "-k", "golden_outputs")),
    # (4-bit weights, max_abs / 7, survive it: the shipped models stay within a point.)
    Mutant("weights-ternary", "weights quantized to -1, 0, 1 steps: the shipped model's "
           "int8 and C CER rise, its float CER does not (21.8)",
           "tinygen/compiler/quantize.py",
           "max_abs / 127.0, 1.0 / 127.0)", "max_abs / 1.0, 1.0 / 1.0)",
           ("tests/test_shipped.py", "-k", "cer and mcu")),
    Mutant("layernorm-eps-d", "the integer LayerNorm's eps off by a factor of D (21.9)",
           "tinygen/reference/layernorm.py",
           "eps_q = max(1, _round_half_away(eps * d ** 3 / (s_x * s_x)))",
           "eps_q = max(1, _round_half_away(eps * d ** 2 / (s_x * s_x)))",
           ("tests/test_compiler.py", "-k", "eps")),
    Mutant("rounding-tie", "RoundingDivideByPOT rounds ties toward zero on the wrong side",
           "tinygen/reference/kernels.py",
           "threshold = (mask >> 1) + (v < 0)", "threshold = (mask >> 1) + (v > 0)",
           ("tests/test_kernels_tflm.py", "-k", "fully_connected")),
]


def copy_tree(dest: Path) -> None:
    """The working tree, without git data, caches or build output."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "*.egg-info",
        ".pio", "build"))


def run_tests(tree: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *tests], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = -1
    return code, time.monotonic() - start


def verdict(code: int) -> str:
    # pytest: 0 all passed, 1 some failed; 2-5 interrupted, internal or usage error, or
    # nothing collected: the selection did not run, which proves nothing.
    return {0: "survived", 1: "killed", -1: "timeout"}.get(code, f"error (pytest {code})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--control", action="store_true",
                    help="first run each selection on the unchanged tree (must pass)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per test run")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        ap.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:24s} {m.what}\n{'':24s} {m.path}; tests: {' '.join(m.tests)}")
        return 0
    results: list[tuple[Mutant, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="tinygen-mutants-") as tmp:
        if args.control:
            clean = Path(tmp) / "clean"
            copy_tree(clean)
            for m in chosen:
                code, secs = run_tests(clean, m.tests, args.timeout)
                print(f"control {m.name:24s} {'pass' if code == 0 else verdict(code):>10s}"
                      f"  {secs:6.0f} s", flush=True)
        for m in chosen:
            tree = Path(tmp) / m.name
            copy_tree(tree)
            target = tree / m.path
            text = target.read_text()
            if text.count(m.old) != 1:
                results.append((m, "stale", 0.0))
            else:
                target.write_text(text.replace(m.old, m.new))
                code, secs = run_tests(tree, m.tests, args.timeout)
                results.append((m, verdict(code), secs))
            shutil.rmtree(tree)
            _, v, secs = results[-1]
            print(f"{m.name:24s} {v:>10s}  {secs:6.0f} s  {m.what}", flush=True)
    killed = sum(v == "killed" for _, v, _ in results)
    print(f"\nkill rate: {killed}/{len(results)} mutants killed")
    for m, v, _ in results:
        if v != "killed":
            print(f"  not killed: {m.name} ({v})")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
