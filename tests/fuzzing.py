"""Seeded generators and invariant checks shared by the CI fuzz tests (tests/test_fuzz_*.py)
and the long runs of bench/fuzz.py. The same seed gives the same cases.

Two generators:
- :func:`random_config`: a small random Conformer config that uses the sharing options
  of every level (block repeats, module groups, macaron, attention projections, low rank);
- :func:`cli_case`: a random ``tinygen`` command line over a sandbox of good, damaged and
  hostile files, and the invariants every run must keep (:func:`check_run`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tinygen.speech.config import LINEAR_ROLES, ConformerConfig, LowRank

# attn_proj_sharing values: every one builds (qk and qkv through broadcasting mul).
BUILDS_PROJ_SHARING = ("none", "kv", "qk", "qkv")
FEATURES = ("repeat", "ffn_groups", "attn_groups", "conv_groups", "macaron", "kv",
            "lowrank-none", "lowrank-down", "lowrank-up")


def _grouping(rng: random.Random, blocks: int) -> tuple[int, ...]:
    """A random map of unique blocks to module instances, numbered 0..N-1 in order."""
    raw = [rng.randrange(max(1, blocks - 1)) for _ in range(blocks)]
    order: dict[int, int] = {}
    return tuple(order.setdefault(g, len(order)) for g in raw)


def random_config(seed: int, focus: tuple[str, ...] = (),
                  proj_sharing: str | None = None) -> ConformerConfig:
    """A tiny valid config; ``focus`` features (from FEATURES) are forced on."""
    rng = random.Random(seed)
    d = rng.choice([8, 16, 24])
    unique = rng.randint(2 if "repeat" in focus or any(
        f.endswith("_groups") for f in focus) else 1, 3)
    order = list(range(unique)) + [rng.randrange(unique) for _ in range(
        rng.randint(1 if "repeat" in focus else 0, 2))]
    rng.shuffle(order)
    groups = {}
    for kind in ("ffn", "attn", "conv"):
        on = f"{kind}_groups" in focus or rng.random() < 0.3
        groups[kind] = (0,) * unique if on and unique > 1 and rng.random() < 0.5 else (
            _grouping(rng, unique) if on else ())
    sharing = proj_sharing or ("kv" if "kv" in focus else rng.choice(BUILDS_PROJ_SHARING))
    lowrank = LowRank()
    lr_focus = [f for f in focus if f.startswith("lowrank")]
    if lr_focus or rng.random() < 0.4:
        shared = lr_focus[0].split("-")[1] if lr_focus else rng.choice(["none", "down", "up"])
        roles = [r for r in LINEAR_ROLES if rng.random() < 0.4] or ["ffn.w1"]
        proj = {"qk": ("attn.q", "attn.k"), "kv": ("attn.k", "attn.v"),
                "qkv": ("attn.q", "attn.k", "attn.v")}.get(sharing, ())
        if any(r in roles for r in proj):  # a shared projection factors as one
            roles = sorted(set(roles) | set(proj))
        lowrank = LowRank(targets=tuple(r for r in LINEAR_ROLES if r in roles),
                          ranks=(rng.randint(1, min(4, d)),), shared_factor=shared)
    cfg = ConformerConfig(
        name=f"fuzz{seed}", n_mels=rng.choice([16, 20]), subsample_channels=rng.choice([2, 4]),
        d_model=d, n_heads=rng.choice([h for h in (1, 2, 4) if d % h == 0]),
        ff_dim=rng.choice([16, 32, 48]), conv_kernel=rng.choice([1, 3, 5]),
        block_order=tuple(order), ffn_groups=groups["ffn"], attn_groups=groups["attn"],
        conv_groups=groups["conv"],
        share_macaron="macaron" in focus or rng.random() < 0.3,
        attn_proj_sharing=sharing, lowrank=lowrank)
    return cfg.validate()


def features_of(cfg: ConformerConfig) -> set[str]:
    """The FEATURES a config uses (to check that a set of cases covers them all)."""
    used = set()
    if len(cfg.block_order) > cfg.unique_blocks:
        used.add("repeat")
    for kind in ("ffn", "attn", "conv"):
        groups = getattr(cfg, f"{kind}_groups")
        if groups and len(set(groups)) < len(groups):
            used.add(f"{kind}_groups")
    if cfg.share_macaron:
        used.add("macaron")
    if cfg.attn_proj_sharing == "kv":
        used.add("kv")
    if cfg.lowrank.targets:
        used.add(f"lowrank-{cfg.lowrank.shared_factor}")
    return used


# --------------------------------------------------------------------------- CLI
@dataclass
class Run:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    traceback: str = ""


def run_in_process(argv: list[str]) -> Run:
    """``tinygen.cli.main(argv)`` here, with what it prints; an escaping exception is
    recorded as a traceback (the invariant it breaks)."""
    from tinygen.cli import main

    out, err = io.StringIO(), io.StringIO()
    tb = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # the fuzz target: anything that escapes
            tb = traceback.format_exc()
            code = -1
    return Run(argv, code, out.getvalue(), err.getvalue(), tb)


def run_subprocess(argv: list[str], cwd: Path) -> Run:
    proc = subprocess.run([sys.executable, "-m", "tinygen", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=300)
    tb = proc.stderr if "Traceback" in proc.stderr else ""
    return Run(argv, proc.returncode, proc.stdout, proc.stderr, tb)


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 (or "dir") of everything below ``root``."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink() or not p.exists():
            found[rel] = "link"
        elif p.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


@dataclass
class Sandbox:
    """A folder of inputs for the CLI fuzz: good, damaged and hostile."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to root


def make_sandbox(root: Path) -> Sandbox:
    import torch

    from tinygen.speech.checkpoint import save_checkpoint
    from tinygen.speech.model import build_model

    root.mkdir(parents=True, exist_ok=True)
    cfg = random_config(0)
    good = root / "tiny.pt"
    save_checkpoint(build_model(cfg, seed=0), good)
    raw = bytearray(good.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(b ^ 0xFF for b in raw[mid:mid + 64])
    (root / "rot.pt").write_bytes(bytes(raw))
    (root / "trunc.pt").write_bytes(good.read_bytes()[:1000])
    huge = {**cfg.to_dict(), "d_model": 10**9, "block_order": [0] * 100_000}
    torch.save({"format": "tinygen-checkpoint", "version": 1, "config": huge,
                "tensors": {}, "meta": []}, root / "huge.pt")
    (root / 'q"uote.pt').write_bytes(good.read_bytes())
    (root / "notes.txt").write_text("the user's own file\n")
    (root / "mine").mkdir()
    (root / "mine" / "keep.txt").write_text("keep\n")
    (root / "empty").mkdir()
    (root / "corpus").mkdir()
    (root / "corpus" / "test.jsonl").write_text('{"path": "a.wav", "text": "hi"}\n')
    (root / "corpus" / "a.wav").write_bytes(b"RIFF not really")
    res = run_in_process(["build", str(good), "-o", str(root / "prev"), "--calib", "1",
                          "--vectors", "1", "--window-ms", "200"])
    assert res.code == 0, res.stderr
    return Sandbox(root)


MODELS = ["tiny.pt", "rot.pt", "trunc.pt", "huge.pt", 'q"uote.pt', "missing.pt", "mine",
          "notes.txt", "preset:share-blocks", "preset:nope", ""]
OUTS = ["out", "out", "out", "deep/er/out", "mine", "empty", ".", "..", "notes.txt",
        "tiny.pt", "o" * 300, "prev", "prev", "~"]
NUMBERS = ["1", "1", "2", "0", "-1", "1e9", "x", "nan", "inf", "3.5", "99999999999999999999"]
WINDOWS = ["200", "200", "300", "50", "0", "-5", "nan", "inf", "1e7", "abc", "1e-9"]
TARGETS = ["host", "host", "host", "pdp11", ""]


def cli_case(rng: random.Random) -> tuple[list[str], str | None]:
    """A random command line and the OUT it may write (None when it writes nothing)."""
    cmd = rng.choice(["build", "build", "build", "build", "build", "verify", "pack", "info",
                      "eval", "bogus"])
    model = rng.choice(MODELS)
    if cmd == "build":
        out = rng.choice(OUTS)
        argv = ["build", model, "-o", out]
        for flag, pool in (("--calib", NUMBERS), ("--vectors", NUMBERS),
                           ("--window-ms", WINDOWS), ("--target", TARGETS)):
            if rng.random() < (0.9 if flag in ("--calib", "--vectors", "--window-ms")
                               else 0.3):
                argv += [flag, rng.choice(pool[:3] if rng.random() < 0.6 else pool)]
        if rng.random() < 0.3:
            argv.append("--force")
        if rng.random() < 0.1:
            argv += ["--data", rng.choice(["corpus", "notes.txt", "missing", "empty"])]
        return argv, out
    if cmd == "verify":
        return ["verify", rng.choice(["prev", "mine", "empty", "missing", "notes.txt",
                                      "prev"]), *(["--json"] if rng.random() < 0.5 else [])
                ], None
    if cmd == "pack":
        out = rng.choice(["packed.pt", "tiny.pt", "notes.txt", "mine", "deep/p.pt"])
        return ["pack", model, "-o", out, *(["--fp16"] if rng.random() < 0.5 else []),
                *(["--force"] if rng.random() < 0.3 else [])], out
    if cmd == "info":
        return ["info", model, *(["--json"] if rng.random() < 0.5 else [])], None
    if cmd == "eval":
        return ["eval", model, "--data", rng.choice(["corpus", "empty", "notes.txt",
                                                      "missing"]), "--float-only",
                *(["--window-ms", rng.choice(WINDOWS)] if rng.random() < 0.3 else [])], None
    return [cmd, *rng.sample(["-o", "x", "--force", model], 2)], None


def check_run(run: Run, before: dict[str, str], after: dict[str, str], out: str | None,
              root: Path) -> list[str]:
    """The invariants of one run; returns what was broken (empty when all hold)."""
    from tinygen.build import MARKER

    broken = []
    if run.traceback:
        broken.append(f"traceback: {run.traceback.strip().splitlines()[-1][:200]}")
    if run.code not in (0, 1, 2):
        broken.append(f"exit status {run.code}")
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    if run.code != 0 and len(lines) > 1:
        broken.append(f"{len(lines)} lines on stderr: {run.stderr[:300]!r}")
    if run.code != 0 and lines and not lines[0].startswith("tinygen: error: "):
        broken.append(f"stderr is not one error line: {lines[0][:200]!r}")
    if lines and lines[0].startswith("tinygen: error: ") and run.code != 2:
        broken.append(f"an error line with exit status {run.code}, not 2")
    # nothing outside OUT changes; OUT is complete (build) or untouched (failure)
    inside = None
    if out is not None:
        target = (root / out).resolve()
        if root.resolve() in (target, *target.parents) and target != root.resolve():
            inside = str(target.relative_to(root.resolve()))
    for rel in sorted(set(before) | set(after)):
        in_out = inside is not None and (rel == inside or rel.startswith(inside + "/"))
        if in_out and run.code == 0:
            continue
        if (run.code == 0 and inside is not None and inside.startswith(rel + "/")
                and rel not in before and after.get(rel) == "dir"):
            continue  # a missing parent of OUT, made like mkdir -p
        if before.get(rel) != after.get(rel):
            broken.append(f"{rel} changed ({'created' if rel not in before else 'modified'})")
            break
    if run.code == 0 and run.argv[0] == "build" and not (
            inside is not None and all((root / inside / f).is_file()
                                       for f in (MARKER, "report.json"))):
        broken.append(f"OUT {inside} is incomplete")
    return broken
