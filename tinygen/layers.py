"""Which tinygen package may import which: the one place the direction is stated.

There are two products here, and data flows one way through each:

    errors, fsutil, resources, cdecl                (leaves: import nothing of tinygen)
    audio                                           (front end, CTC decoding: leaves only)
    compiler.ir  <-  reference  <-  compiler  <-  tflite  <-  targets (and audio)
    speech (model, data, training, evaluation): may use all of the above
    cli, build, verify, report                      (the commands: may use everything)

The compiler never imports the speech model or its training code: it takes any
``torch.nn.Module``. The golden reference sees only the IR, never the compiler stages
built on it. ``tests/test_layers.py`` reads every module's imports (including imports
inside functions) and fails on an edge this table does not allow.
"""

from __future__ import annotations

LEAVES = ("tinygen.errors", "tinygen.fsutil", "tinygen.resources", "tinygen.cdecl")

# Importing package (the longest matching prefix wins) -> prefixes it may import.
# "tinygen" alone is the package root, which holds only ``__version__``.
ALLOWED: dict[str, tuple[str, ...]] = {
    "tinygen.errors": (),
    "tinygen.fsutil": ("tinygen.errors",),
    "tinygen.resources": (),
    "tinygen.cdecl": (),
    # the audio front end and CTC decoding: one definition shared by training, the
    # compiler and the targets, so it sits below all of them
    "tinygen.audio": (*LEAVES, "tinygen.audio"),
    "tinygen.compiler.ir": ("tinygen.errors",),
    "tinygen.reference": ("tinygen.errors", "tinygen.compiler.ir", "tinygen.reference"),
    "tinygen.compiler": (*LEAVES, "tinygen.reference", "tinygen.compiler"),
    "tinygen.tflite": (*LEAVES, "tinygen.reference", "tinygen.compiler", "tinygen.tflite"),
    "tinygen.targets": (*LEAVES, "tinygen.audio", "tinygen.reference", "tinygen.compiler",
                        "tinygen.tflite", "tinygen.targets"),
    "tinygen.speech": (*LEAVES, "tinygen.audio", "tinygen.reference", "tinygen.compiler",
                       "tinygen.tflite", "tinygen.targets", "tinygen.speech", "tinygen.build"),
}


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def rule_for(module: str) -> tuple[str, ...] | None:
    """The prefixes ``module`` may import, or None for a command module (no limit)."""
    best = max((p for p in ALLOWED if _matches(module, p)), key=len, default=None)
    return None if best is None else ALLOWED[best]


def allowed(importer: str, imported: str) -> bool:
    """May module ``importer`` import module ``imported``?"""
    if not _matches(imported, "tinygen") or imported == "tinygen":
        return True
    rule = rule_for(importer)
    return rule is None or any(_matches(imported, p) for p in rule)
