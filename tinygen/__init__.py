"""tinygen: compile weight-shared, low-rank Conformer encoders to MCU firmware."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def compile(model: Any, example_input: Any, out: Any, **options: Any) -> dict[str, Any]:
    """Compile a PyTorch Conformer into firmware sources in the folder ``out``.

    ``model`` is an ``nn.Module`` (any: your own code, weight sharing by reusing modules or
    assigning one ``nn.Parameter`` to several layers) or a ``torch.export``
    ExportedProgram; ``example_input`` a (1, frames, features) tensor or shape. Options:
    ``calib`` (float arrays shaped like the input; default: speech-like log-mel windows),
    ``calib_count``, ``vectors``, ``target`` ("host", "qemu-m4", ...), ``backend``,
    ``force``, ``name``. Returns report.json's content: sizes, unique and virtual
    parameter counts, sharing groups. Raises ``tinygen.errors.TinygenError`` for a model
    or option it cannot compile, with a one-line message that says what to change.
    """
    from tinygen.importer import compile_model

    return compile_model(model, example_input, out, **options)
