"""``tinygen verify OUT``: run a build's C on its test vectors and compare.

A host build is recompiled from OUT's sources and run here; a qemu-* build's firmware runs
under qemu-system-arm (or qemu-system-xtensa for qemu-xtensa), which also counts the
instructions of each inference and step.

Against the golden reference (``expected_K.bin``) the outputs must be identical; against
the float model (``float_K.bin``) the dequantized outputs give an SNR.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.errors import TinygenError
from tinygen.targets import host, qemu


class VerifyError(TinygenError):
    """A build folder that cannot be verified."""


def load_report(out: Path) -> dict[str, Any]:
    path = out / "report.json"
    if not path.is_file():
        raise VerifyError(f"{out} is not a tinygen build (no report.json)",
                          "run `tinygen build MODEL -o OUT` first")
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise VerifyError(f"{path} is not valid JSON", "rebuild OUT") from None
    return report


def vectors(out: Path) -> list[tuple[bytes, bytes, np.ndarray | None]]:
    folder = out / "test_vectors"
    found = []
    k = 0
    while (folder / f"input_{k}.bin").is_file():
        ref = folder / f"float_{k}.bin"
        fl = np.frombuffer(ref.read_bytes(), dtype="<f4") if ref.is_file() else None
        found.append(((folder / f"input_{k}.bin").read_bytes(),
                      (folder / f"expected_{k}.bin").read_bytes(), fl))
        k += 1
    if not found:
        raise VerifyError(f"{folder} holds no test vectors", "rebuild OUT")
    return found


def verify(out: Path, compiler: str | None = None, sanitize: bool = False) -> dict[str, Any]:
    out = Path(out)
    report = load_report(out)
    target = report.get("target")
    if target != "host" and target not in qemu.BOARDS:
        raise VerifyError(f"verify of target '{target}' is not available yet",
                          "build with --target host or a qemu-* target")
    vecs = vectors(out)
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
    scale = float(report["output"]["scale"])
    zp = int(report["output"]["zero_point"])
    signal = noise = 0.0
    have_float = all(fl is not None for _, _, fl in vecs) and len(outputs) == len(vecs)
    if have_float:
        for (_, _, fl), got in zip(vecs, outputs, strict=True):
            assert fl is not None
            deq = (np.frombuffer(got, dtype=np.int8).astype(np.float64) - zp) * scale
            signal += float((fl.astype(np.float64) ** 2).sum())
            noise += float(((fl - deq) ** 2).sum())
    return {
        "target": target,
        "vectors": len(vecs),
        "bit_exact": not mismatched and counts.get("exit_code", 0) == 0,
        "mismatched": mismatched,
        "snr_db": round(10 * np.log10(signal / max(noise, 1e-30)), 2) if have_float else None,
        "sanitizers": sanitize,
        **counts,
    }
