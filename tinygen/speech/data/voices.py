"""Voices of the Debian TTS engines beside espeak-ng: flite and festival.

``tinygen data synth --engines espeak-ng,flite,festival`` mixes them into a corpus. They
are optional: without them synth uses espeak-ng alone, and asking for one that is not
installed is a one-line error that names the packages.

Several voices of the two engines are recordings of the same person (CMU's "kal" and
"slt" exist as a flite voice and as a festival voice), so voices are grouped by
:data:`SPEAKERS` and whole speakers are dealt to train, dev and test.

Each voice renders through a temporary WAV file (neither engine writes a WAV to a pipe),
then sox shifts the pitch by the plan's jitter and resamples to 16 kHz float, as for
espeak-ng. The speaking rate maps onto the engines' duration stretch.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinygen.speech.data import DataError

ENGINES = ("espeak-ng", "flite", "festival")
# speaker -> {engine: voice}; one person's voices never straddle a split
SPEAKERS: dict[str, dict[str, str]] = {
    "kal": {"flite": "kal16", "festival": "kal_diphone"},
    "slt": {"flite": "slt", "festival": "cmu_us_slt_arctic_hts"},
    "awb": {"flite": "awb"},
    "rms": {"flite": "rms"},
    "ked": {"festival": "ked_diphone"},
}
INSTALL = {"flite": "sudo apt-get install flite",
           "festival": "sudo apt-get install festival festvox-kallpc16k festvox-kdlpc16k "
                       "festvox-us-slt-hts"}
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
DEFAULT_WPM = 175  # espeak-ng's default rate: a plan's speed is relative to it


def _run(cmd: list[str], what: str, engine: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DataError(f"{what} failed (exit {proc.returncode}): "
                        f"{err[-1] if err else 'no message'}", f"install it with: "
                        f"{INSTALL[engine]}")
    return proc.stdout


def installed_voices(engine: str) -> list[str]:
    """The voices of ``engine`` named in SPEAKERS that this machine has, or a DataError."""
    wanted = [v[engine] for v in SPEAKERS.values() if engine in v]
    tool = "flite" if engine == "flite" else "text2wave"
    if shutil.which(tool) is None:
        raise DataError(f"{tool} not found on PATH; `data synth --engines {engine}` needs it",
                        f"install it with: {INSTALL[engine]}")
    if engine == "flite":
        out = _run(["flite", "-lv"], "flite -lv", engine).decode()
        have = set(out.split(":", 1)[-1].split())
    else:
        have = {d.name for d in FESTIVAL_VOICES.glob("*/*") if d.is_dir()}
    found = [v for v in wanted if v in have]
    if not found:
        raise DataError(f"{engine} has none of the voices {', '.join(wanted)}",
                        f"install them with: {INSTALL[engine]}")
    return found


def engine_version(engine: str) -> str:
    """The line of ``--version`` that names the version (flite exits 1 after printing)."""
    cmd = ["flite" if engine == "flite" else "festival", "--version"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    lines = (proc.stdout + proc.stderr).decode(errors="replace").splitlines()
    named = [ln.strip() for ln in lines if "version" in ln.lower() or "System:" in ln]
    return (named or ["unknown"])[-1][:80]


def speaker_of(engine: str, voice: str) -> str:
    return next(s for s, v in SPEAKERS.items() if v.get(engine) == voice)


def speak(engine: str, voice: str, text: str, speed_wpm: int, pitch: int, sox: str
          ) -> np.ndarray:
    """(samples,) float32 at 16 kHz: ``text`` in ``voice`` of ``engine``, its duration
    stretched by 175 / speed_wpm, its pitch moved by (pitch - 50) * 8 cents."""
    stretch = f"{DEFAULT_WPM / speed_wpm:.4f}"
    with tempfile.TemporaryDirectory(prefix="tinygen-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        if engine == "flite":
            _run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                  "-t", text, "-o", str(wav)], f"flite -voice {voice}", engine)
        else:
            _run(["text2wave", "-o", str(wav), "-eval", f"(voice_{voice})", "-eval",
                  f"(Parameter.set 'Duration_Stretch {stretch})"],
                 f"text2wave (voice_{voice})", engine, stdin=text.encode())
        raw = _run([sox, "-V1", str(wav), "-t", "raw", "-e", "floating-point", "-b", "32",
                    "-r", "16000", "-c", "1", "-", "pitch", str((pitch - 50) * 8)],
                   "sox", engine)
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)
