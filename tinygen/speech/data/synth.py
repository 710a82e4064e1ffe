"""A synthetic speech corpus made with espeak-ng (``tinygen data synth``).

Every utterance is decided up front from the seed (text, voice, variant, speed, pitch,
noise, SNR, level, padding), then rendered by a pure function of that plan:

    espeak-ng (22050 Hz WAV) --sox--> 16 kHz float --numpy--> pad, level, noise --> int16 WAV

so the same seed gives byte-identical files whatever ``--jobs`` is. The corpus is built in
a temporary folder beside ``--out`` and renamed into place when complete::

    OUT/corpus.json                       seed, tools, voice/variant combos per split
    OUT/{train,dev,test}.jsonl            one line per utterance: path, text, voice, ...
    OUT/wav/{split}/{uid}.wav             16 kHz mono 16-bit PCM

Voice+variant combinations are split three ways, so test (and dev) speakers never occur in
training. SNR is the ratio of the mean power of the speech (before padding) to the noise.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen import __version__
from tinygen.speech.data import SPLITS, DataError
from tinygen.speech.data import voices as tts
from tinygen.speech.data.words import phrase

SAMPLE_RATE = 16000
INSTALL_HINT = "install it with: sudo apt-get install espeak-ng sox"
# The English espeak-ng voices that work (the MBROLA ones need extra data files).
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Intelligible variants (espeak-ng silently ignores an unknown one, so we intersect this
# list with `espeak-ng --voices=variant`). Robotic, whispered and croaking ones are left out.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "adam", "Alex", "Andy", "Annie", "aunty",
            "benjamin", "caleb", "david", "ed", "edward", "iven", "john", "linda", "max",
            "Michael", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "zac")
UTTERANCE_SHARE = {"train": 0.8, "dev": 0.1, "test": 0.1}
COMBO_SHARE = {"dev": 0.1, "test": 0.15}  # the rest of the voice+variant combos train
SPEED_WPM = (130, 210)  # espeak-ng -s (default 175)
PITCH = (20, 80)  # espeak-ng -p (default 50)
WORD_GAP = (0, 3)  # espeak-ng -g, units of 10 ms
NOISES = ("white", "pink", "brown", "hum")
SNR_DB = (5.0, 35.0)
PEAK = (0.25, 0.9)  # peak level of the clean speech before noise
PAD_S = (0.05, 0.35)  # silence (with noise) before and after the speech


@dataclass(frozen=True)
class Tools:
    espeak: str
    sox: str


@dataclass(frozen=True)
class Plan:
    """Everything that decides one utterance; render(plan) is a pure function of it."""

    uid: str
    split: str
    text: str
    voice: str
    variant: str
    speed: int
    pitch: int
    gap: int
    noise: str
    snr_db: float
    peak: float
    lead_s: float
    tail_s: float
    seed: int  # noise samples

    @property
    def path(self) -> str:
        return f"wav/{self.split}/{self.uid}.wav"


# ------------------------------------------------------------------------- tools
def find_tools() -> Tools:
    """espeak-ng and sox on PATH, or a DataError that says how to install them."""
    found = {name: shutil.which(name) for name in ("espeak-ng", "sox")}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        raise DataError(f"{' and '.join(missing)} not found on PATH; tinygen data synth "
                        "needs them", INSTALL_HINT)
    return Tools(espeak=str(found["espeak-ng"]), sox=str(found["sox"]))


def _run(cmd: Sequence[str], what: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(list(cmd), input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DataError(f"{what} failed (exit {proc.returncode}): "
                        f"{err[-1] if err else 'no message'}", INSTALL_HINT)
    return proc.stdout


def espeak_version(tools: Tools) -> str:
    out = _run([tools.espeak, "--version"], "espeak-ng --version").decode()
    words = out.split()
    return words[words.index("NG") + 2] if "NG" in words[:-2] else out.strip()[:40]


def installed_variants(tools: Tools) -> list[str]:
    """VARIANTS that this espeak-ng has, in VARIANTS order."""
    out = _run([tools.espeak, "--voices=variant"], "espeak-ng --voices=variant").decode()
    have = {line.split()[4].removeprefix("!v/") for line in out.splitlines()[1:]
            if len(line.split()) >= 5}
    return [v for v in VARIANTS if v in have]


def installed_voices(tools: Tools) -> list[str]:
    """VOICES that this espeak-ng has as its own (non-MBROLA) voices."""
    out = _run([tools.espeak, "--voices=en"], "espeak-ng --voices=en").decode()
    have = {line.split()[1] for line in out.splitlines()[1:]
            if len(line.split()) >= 5 and line.split()[4].startswith("gmw/")}
    return [v for v in VOICES if v in have]


# -------------------------------------------------------------------------- plan
def split_combos(combos: Sequence[tuple[str, str]], seed: int
                 ) -> dict[str, list[tuple[str, str]]]:
    """Voice+variant combos shuffled and dealt into disjoint train/dev/test pools."""
    if len(combos) < 3:
        raise DataError(f"only {len(combos)} voice+variant combination(s) available; "
                        "the splits need at least 3", INSTALL_HINT)
    order = np.random.default_rng([seed, 0]).permutation(len(combos))
    shuffled = [combos[int(i)] for i in order]
    n_test = max(1, round(COMBO_SHARE["test"] * len(combos)))
    n_dev = max(1, round(COMBO_SHARE["dev"] * len(combos)))
    return {"test": sorted(shuffled[:n_test]),
            "dev": sorted(shuffled[n_test:n_test + n_dev]),
            "train": sorted(shuffled[n_test + n_dev:])}


def split_sizes(n: int) -> dict[str, int]:
    if n < len(SPLITS):
        raise DataError(f"--utterances {n} is too few", "give at least 3, one per split")
    dev = max(1, round(UTTERANCE_SHARE["dev"] * n))
    test = max(1, round(UTTERANCE_SHARE["test"] * n))
    return {"train": n - dev - test, "dev": dev, "test": test}


def plan_corpus(n: int, seed: int, pools: dict[str, list[tuple[str, str]]],
                others: dict[str, dict[str, list[str]]] | None = None) -> list[Plan]:
    """Every utterance's plan. ``others`` (split -> engine -> voices) adds the voices of
    other engines: each utterance first draws an engine, uniformly among those with a
    voice in its split, then a voice of it (voice ``engine:name``, no variant). Without
    ``others`` no engine is drawn, so espeak-ng-only corpora stay what they were."""
    rng = np.random.default_rng([seed, 1])
    plans = []
    for split, count in split_sizes(n).items():
        pool = pools[split]
        for i in range(count):
            engines = (["espeak-ng"] if pool else []) + sorted(
                e for e, v in (others or {}).get(split, {}).items() if v)
            engine = engines[int(rng.integers(len(engines)))] if others else "espeak-ng"
            if engine == "espeak-ng":
                voice, variant = pool[int(rng.integers(len(pool)))]
            else:
                names = others[split][engine]  # type: ignore[index]
                voice, variant = f"{engine}:{names[int(rng.integers(len(names)))]}", ""
            plans.append(Plan(
                uid=f"{split}-{i:06d}", split=split, text=phrase(rng), voice=voice,
                variant=variant, speed=int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                gap=int(rng.integers(WORD_GAP[0], WORD_GAP[1] + 1)),
                noise=NOISES[int(rng.integers(len(NOISES)))],
                snr_db=round(float(rng.uniform(*SNR_DB)), 2),
                peak=round(float(rng.uniform(*PEAK)), 3),
                lead_s=round(float(rng.uniform(*PAD_S)), 3),
                tail_s=round(float(rng.uniform(*PAD_S)), 3),
                seed=int(rng.integers(2**31))))
    return plans


# ------------------------------------------------------------------------- audio
def speak(tools: Tools, plan: Plan) -> np.ndarray:
    """espeak-ng (or flite, festival), resampled by sox: (samples,) float32 at 16 kHz,
    the engine's own level."""
    if ":" in plan.voice:
        engine, name = plan.voice.split(":", 1)
        return tts.speak(engine, name, plan.text, plan.speed, plan.pitch, tools.sox)
    wav = _run([tools.espeak, "-v", f"{plan.voice}+{plan.variant}", "-s", str(plan.speed),
                "-p", str(plan.pitch), "-g", str(plan.gap), "--stdout", plan.text],
               f"espeak-ng -v {plan.voice}+{plan.variant}")
    # float output: no dither, so no randomness and no second rounding before the noise
    raw = _run([tools.sox, "-V1", "-t", "wav", "-", "-t", "raw", "-e", "floating-point",
                "-b", "32", "-r", str(SAMPLE_RATE), "-c", "1", "-"], "sox", stdin=wav)
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) noise of unit mean power: white, pink (1/f), brown (1/f^2) or mains hum."""
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        mains = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t
                                                    + rng.uniform(0, 2 * np.pi))
                for k in range(1, 6))
        x = np.asarray(x) + 0.05 * rng.standard_normal(n)
    else:
        x = rng.standard_normal(n)
        if kind in ("pink", "brown"):
            spec = np.fft.rfft(x)
            f = np.arange(len(spec), dtype=np.float64)
            f[0] = 1.0
            spec /= f ** (0.5 if kind == "pink" else 1.0)
            x = np.fft.irfft(spec, n)
    x = x - x.mean()
    return (x / np.sqrt(np.mean(x**2) + 1e-20)).astype(np.float64)


def mix(clean: np.ndarray, plan: Plan) -> np.ndarray:
    """Level the speech, pad it with silence, add noise at plan.snr_db: int16 samples."""
    rng = np.random.default_rng(plan.seed)
    speech = clean.astype(np.float64)
    speech *= plan.peak / max(float(np.abs(speech).max()), 1e-9)
    lead = int(plan.lead_s * SAMPLE_RATE)
    tail = int(plan.tail_s * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    power = float(np.mean(speech**2))
    noise = make_noise(plan.noise, len(padded), rng) * np.sqrt(power / 10 ** (plan.snr_db / 10))
    mixed = padded + noise
    peak = float(np.abs(mixed).max())
    if peak > 0.99:  # scale both together: the SNR stays as planned
        mixed *= 0.99 / peak
    return np.round(mixed * 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit PCM WAV file in memory."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def render(tools: Tools, plan: Plan, root: Path) -> dict[str, Any]:
    """Write one utterance under root; return its manifest entry."""
    samples = mix(speak(tools, plan), plan)
    path = root / plan.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(samples))
    entry = {k: v for k, v in asdict(plan).items() if k not in ("seed", "split")}
    entry["path"] = plan.path
    entry["duration"] = round(len(samples) / SAMPLE_RATE, 4)
    return entry


# ------------------------------------------------------------------------ corpus
def synthesize(out: Path, utterances: int, seed: int = 0, jobs: int = 1,
               force: bool = False, progress: bool = True,
               engines: Sequence[str] = ("espeak-ng",)) -> dict[str, Any]:
    """Build the corpus at ``out`` completely or not at all; return corpus.json's dict."""
    if jobs < 1:
        raise DataError(f"--jobs {jobs} is too few", "give at least 1")
    out = Path(out)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty",
                        "choose another --out, or pass --force to replace it")
    sizes = split_sizes(utterances)
    tools = find_tools()
    voices, variants = installed_voices(tools), installed_variants(tools)
    if not voices:
        raise DataError("espeak-ng has none of the English voices "
                        f"{', '.join(VOICES)}", INSTALL_HINT)
    pools = split_combos(list(itertools.product(voices, variants or ["m1"])), seed)
    others, versions = other_voices(engines, seed)
    if "espeak-ng" not in engines:
        pools = {s: [] for s in SPLITS}
    plans = plan_corpus(utterances, seed, pools, others)

    with staged(out) as tmp:
        entries = _render_all(tools, plans, tmp, jobs, progress)
        for split in SPLITS:
            lines = [json.dumps(entries[p.uid], sort_keys=True) + "\n"
                     for p in plans if p.split == split]
            (tmp / f"{split}.jsonl").write_text("".join(lines))
        meta = {
            "format": "tinygen-synth-corpus",
            "version": 1,
            "seed": seed,
            "utterances": sizes,
            "sample_rate": SAMPLE_RATE,
            "hours": round(sum(e["duration"] for e in entries.values()) / 3600, 4),
            "tools": {"espeak-ng": espeak_version(tools), "tinygen": __version__, **versions},
            "combos": {s: [f"{v}+{var}" for v, var in pools[s]]
                       + [f"{e}:{v}" for e, vs in sorted((others or {}).get(s, {}).items())
                          for v in vs] for s in SPLITS},
        }
        write_json(tmp / "corpus.json", meta)
    return meta


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` when the block completes and
    deleted when it raises: a corpus appears whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def other_voices(engines: Sequence[str], seed: int
                 ) -> tuple[dict[str, dict[str, list[str]]] | None, dict[str, str]]:
    """split -> engine -> voices for the engines besides espeak-ng (None when there are
    none), whole speakers dealt to splits; and the engines' versions."""
    unknown = [e for e in engines if e not in tts.ENGINES]
    if unknown or not engines:
        raise DataError(f"unknown --engines {','.join(unknown) or '(none)'}",
                        f"choose from {', '.join(tts.ENGINES)}")
    extra = [e for e in engines if e != "espeak-ng"]
    if not extra:
        return None, {}
    have = {e: tts.installed_voices(e) for e in extra}
    speakers = sorted({tts.speaker_of(e, v) for e, vs in have.items() for v in vs})
    dealt = split_combos([(s, "") for s in speakers], seed)
    others = {split: {e: [v for v in have[e] if (tts.speaker_of(e, v), "") in dealt[split]]
                      for e in extra} for split in SPLITS}
    return others, {e: tts.engine_version(e) for e in extra}


def _render_all(tools: Tools, plans: list[Plan], root: Path, jobs: int, progress: bool
                ) -> dict[str, dict[str, Any]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    entries: dict[str, dict[str, Any]] = {}
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with (Progress(*columns, console=Console(stderr=True), disable=not progress) as bar,
          ThreadPoolExecutor(jobs) as pool):
        task = bar.add_task("synth", total=len(plans))
        futures = {pool.submit(render, tools, p, root): p for p in plans}
        try:
            for fut in as_completed(futures):
                entries[futures[fut].uid] = fut.result()
                bar.advance(task)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return entries


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.is_dir() and any(out.iterdir()):  # --force: swap, then delete the old corpus
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "corpus")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        return
    if out.is_dir():
        out.rmdir()
    elif out.exists():
        out.unlink()
    os.replace(tmp, out)


# --------------------------------------------------------------------------- CLI
def cmd_synth(args: argparse.Namespace) -> int:
    meta = synthesize(args.out, args.utterances, seed=args.seed, jobs=args.jobs,
                      force=args.force, progress=not args.quiet,
                      engines=[e.strip() for e in args.engines.split(",") if e.strip()])
    sizes = meta["utterances"]
    print(f"wrote {sum(sizes.values())} utterances ({meta['hours'] * 60:.1f} min) to "
          f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0
