"""``tinygen verify OUT``: run a build's C on its test vectors and compare.

A host build is recompiled from OUT's sources and run here; a qemu-* build's firmware runs
under qemu-system-arm (or qemu-system-xtensa for qemu-xtensa), which also counts the
instructions of each inference and step.

Against the golden reference (``expected_K.bin``) the outputs must be identical; against
the float model (``float_K.bin``) the dequantized outputs give an SNR.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.errors import TinygenError
from tinygen.targets import host, qemu


class VerifyError(TinygenError):
    """A build folder that cannot be verified."""


REBUILD = "OUT is damaged; rebuild it with `tinygen build ... --force`"


def load_report(out: Path) -> dict[str, Any]:
    """report.json of OUT, checked for what verify reads: a damaged one is one line."""
    path = out / "report.json"
    if not path.is_file():
        raise VerifyError(f"{out} is not a tinygen build (no report.json)",
                          "run `tinygen build MODEL -o OUT` first")
    try:
        report = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise VerifyError(f"{path} is not valid UTF-8 JSON", REBUILD) from None
    except OSError as err:
        raise VerifyError(f"cannot read {path}: {err.strerror}", REBUILD) from None
    if not isinstance(report, dict):
        raise VerifyError(f"{path} is not a JSON object", REBUILD)
    for key in ("input", "output"):
        io = report.get(key)
        if not isinstance(io, dict):
            raise VerifyError(f"{path} has no valid '{key}' entry", REBUILD)
        shape = io.get("shape")
        if not (isinstance(shape, list) and shape and all(
                type(d) is int and 0 < d < 1 << 24 for d in shape)):
            raise VerifyError(f"{path}: {key}.shape {str(shape)[:40]} is not a list of "
                              "positive integers", REBUILD)
        scale, zp = io.get("scale"), io.get("zero_point")
        if not (type(scale) in (int, float) and math.isfinite(scale) and scale > 0):
            raise VerifyError(f"{path}: {key}.scale {str(scale)[:40]!r} is not a positive "
                              "number", REBUILD)
        if not (type(zp) is int and -128 <= zp <= 127):
            raise VerifyError(f"{path}: {key}.zero_point {str(zp)[:40]!r} is not an int8 "
                              "value", REBUILD)
    if type(report.get("test_vectors")) is not int:
        raise VerifyError(f"{path} has no valid 'test_vectors' count", REBUILD)
    return report


def _read(path: Path, size: int, steps: int | None = 1) -> bytes:
    """A test vector file of exactly ``steps`` x ``size`` bytes; with ``steps`` None (a
    streaming model's input: a whole stream), any positive multiple of ``size``."""
    if not path.is_file():
        raise VerifyError(f"{path} is missing or not a file", REBUILD)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise VerifyError(f"cannot read {path}: {err.strerror}", REBUILD) from None
    if steps is None:
        if not data or len(data) % size:
            raise VerifyError(f"{path} holds {len(data)} bytes, not a whole number of "
                              f"{size}-byte steps", REBUILD)
    elif len(data) != steps * size:
        raise VerifyError(f"{path} holds {len(data)} bytes, report.json's shape needs "
                          f"{steps * size}", REBUILD)
    return data


def vectors(out: Path, report: dict[str, Any]
            ) -> list[tuple[bytes, bytes, np.ndarray | None]]:
    """(input, expected, float output or None) of every test vector report.json counts.

    A streaming model's vector is a whole stream: its input a whole number of steps, its
    outputs one per step."""
    folder = out / "test_vectors"
    n_in = math.prod(report["input"]["shape"])
    n_out = math.prod(report["output"]["shape"])
    streaming = "streaming" in report
    found = []
    for k in range(report["test_vectors"]):
        inp = _read(folder / f"input_{k}.bin", n_in, None if streaming else 1)
        steps = len(inp) // n_in
        ref = folder / f"float_{k}.bin"
        fl = (np.frombuffer(_read(ref, 4 * n_out, steps), dtype="<f4")
              if ref.exists() else None)
        found.append((inp, _read(folder / f"expected_{k}.bin", n_out, steps), fl))
    if (folder / f"input_{len(found)}.bin").exists():
        raise VerifyError(f"{folder} holds more test vectors than report.json's "
                          f"{len(found)}", REBUILD)
    if not found:
        raise VerifyError(f"{folder} holds no test vectors", REBUILD)
    return found


def snr_db(vecs: list[tuple[bytes, bytes, np.ndarray | None]], outputs: list[bytes],
           scale: float, zp: int) -> float | None:
    """Float model vs dequantized C output over all vectors; None when undefined (no float
    reference, a missing or short output, or a float output that is all zero)."""
    if len(outputs) != len(vecs) or any(fl is None or len(got) != len(fl)
                                        for (_, _, fl), got in zip(vecs, outputs, strict=True)):
        return None
    signal = noise = 0.0
    for (_, _, fl), got in zip(vecs, outputs, strict=True):
        assert fl is not None
        ref = fl.astype(np.float64)
        deq = (np.frombuffer(got, dtype=np.int8).astype(np.float64) - zp) * scale
        signal += float((ref ** 2).sum())
        noise += float(((ref - deq) ** 2).sum())
    if not (signal > 0 and math.isfinite(signal) and math.isfinite(noise)):
        return None
    return round(10 * math.log10(signal / max(noise, 1e-30)), 2)


def verify(out: Path, compiler: str | None = None, sanitize: bool = False) -> dict[str, Any]:
    out = Path(out)
    report = load_report(out)
    target = report.get("target")
    if target != "host" and target not in qemu.BOARDS:
        raise VerifyError(f"verify of target '{str(target)[:40]}' is not available yet",
                          "build with --target host or a qemu-* target")
    vecs = vectors(out, report)
    counts: dict[str, Any] = {}
    if target in qemu.BOARDS:  # run OUT's firmware under QEMU, counting instructions
        if sanitize:
            raise VerifyError("--sanitize applies to host builds only",
                              "verify this build without it")
        ran = qemu.run(out, report)
        outputs = ran.outputs
        counts = {"exit_code": ran.exit_code,
                  "instructions_per_inference": ran.instructions_per_inference,
                  "instructions_per_step": ran.instructions_per_step}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            exe = Path(tmp) / "tinygen_model"
            extra = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g") \
                if sanitize else ()
            host.compile_exe(out, compiler, extra, exe)  # always from OUT's sources
            outputs = host.run(exe, [inp for inp, _, _ in vecs])
    mismatched = [k for k, (_, exp, _) in enumerate(vecs)
                  if k >= len(outputs) or outputs[k] != exp]
    return {
        "target": target,
        "vectors": len(vecs),
        "bit_exact": not mismatched and counts.get("exit_code", 0) == 0,
        "mismatched": mismatched,
        "snr_db": snr_db(vecs, outputs, float(report["output"]["scale"]),
                         report["output"]["zero_point"]),
        "sanitizers": sanitize,
        **counts,
    }
