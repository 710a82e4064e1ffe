"""One-file checkpoints: the config and each unique tensor, loaded with weights_only=True.

Layout of the saved dict (only str, int, float, list, dict and tensors, so that
``torch.load(weights_only=True)`` accepts it and no code is ever unpickled)::

    {"format": "tinygen-checkpoint", "version": 1,
     "config": <ConformerConfig.to_dict()>,
     "tensors": {canonical name: tensor},   # each Parameter/buffer once
     "meta": {...}}                         # free-form: training step, CER, ...

``meta["tensors_sha256"]`` is a SHA-256 of the stored tensors (names, dtypes, shapes,
bytes), written by :func:`save_checkpoint`. Loading checks every zip member's CRC first and
then this hash when it is there (files from before it existed load without it), so a
damaged file is refused instead of compiled.

Sharing is rebuilt from the config: the loader constructs the model (which ties the
shared Parameters) and fills each unique tensor once, by its canonical name, the first
name ``named_parameters()`` gives it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from tinygen.errors import CheckpointError, ConfigError
from tinygen.speech.config import ConformerConfig, load_preset
from tinygen.speech.model import Conformer, build_model

FORMAT = "tinygen-checkpoint"
VERSION = 1
PRESET_PREFIX = "preset:"
PRESET_SEED = 0
HASH_KEY = "tensors_sha256"


def tensors_sha256(tensors: dict[str, Any]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            h.update(f"{name}:{type(t).__name__}\n".encode())
            continue
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_crcs(path: Path) -> None:
    """Every member of the zip archive against its CRC-32 (torch.load checks none)."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first[:120]})",
                              "re-save or re-download it") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: member {bad} fails its CRC "
                              "check", "re-save or re-download it")


def unique_tensors(model: Conformer) -> dict[str, torch.Tensor]:
    """Canonical name -> tensor for every parameter and buffer, each stored once."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():  # remove_duplicate=True: first name wins
        out[name] = p.detach()
    for name, buf in model.named_buffers():
        out[name] = buf.detach()
    return out


def save_checkpoint(model: Conformer, path: str | Path, meta: dict[str, Any] | None = None,
                    storage: torch.dtype | None = None) -> None:
    """Write atomically: a temp file in the same folder, then rename.

    ``storage`` (e.g. torch.float16) stores the floating tensors in that type to make a
    smaller file; :func:`load_checkpoint` widens them back to the model's float32.
    """
    path = Path(path)

    def stored(t: torch.Tensor) -> torch.Tensor:
        t = t.clone().cpu()
        return t.to(storage) if storage is not None and t.is_floating_point() else t

    tensors = {k: stored(v) for k, v in unique_tensors(model).items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.cfg.to_dict(),
        "tensors": tensors,
        "meta": {**dict(meta or {}), HASH_KEY: tensors_sha256(tensors)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(payload, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file beside ``path``, then rename: complete or untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check the outer structure; raise CheckpointError for anything else."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist",
                              "give a .pt file written by tinygen, or preset:NAME")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory", "give a .pt file")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since 1.6
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a torch "
                              "zip archive)", "re-save or re-download it")
    _check_crcs(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = found.group(1) if found else "a non-tensor object"
        raise CheckpointError(f"checkpoint {path} holds {what}, which weights_only "
                              "loading refuses", "tinygen only loads checkpoints written "
                              "by tinygen; it never unpickles code") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first[:120]})",
                              "re-save or re-download it") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinygen checkpoint",
                              "train one with `tinygen train` or save one with "
                              "tinygen.speech.checkpoint.save_checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {data.get('version')}"
                              f", this tinygen reads version {VERSION}",
                              "use the tinygen release that wrote it")
    for key, kind in (("config", dict), ("tensors", dict)):
        if not isinstance(data.get(key), kind):
            raise CheckpointError(f"checkpoint {path} has no valid '{key}' entry",
                                  "the file is damaged; re-save it")
    if not isinstance(data.setdefault("meta", {}), dict):
        raise CheckpointError(f"checkpoint {path}: its 'meta' entry is a "
                              f"{type(data['meta']).__name__}, not a dict",
                              "the file is damaged or was edited")
    want = data["meta"].get(HASH_KEY)
    if want is not None and want != tensors_sha256(data["tensors"]):
        raise CheckpointError(f"checkpoint {path}: its tensors do not match the content hash "
                              "stored with them", "the file is damaged or was edited; "
                              "re-save or re-download it")
    return data


def load_checkpoint(path: str | Path) -> Conformer:
    return model_from_checkpoint(read_checkpoint(path), path)


def model_from_checkpoint(data: dict[str, Any], path: str | Path) -> Conformer:
    """The model of a dict from :func:`read_checkpoint` (``path`` names it in errors)."""
    try:
        cfg = ConformerConfig.from_dict(data["config"])
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path}: {err.line()}") from None
    model = Conformer(cfg)
    expected = unique_tensors(model)
    stored: dict[str, Any] = data["tensors"]
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise CheckpointError(f"checkpoint {path} does not match its config "
                              f"({'; '.join(parts)})", "the file is damaged or was edited")
    with torch.no_grad():
        for name, dst in expected.items():
            src = stored[name]
            if not isinstance(src, torch.Tensor) or src.shape != dst.shape:
                got = tuple(src.shape) if isinstance(src, torch.Tensor) else type(src).__name__
                raise CheckpointError(f"checkpoint {path}: tensor {name} has shape {got}, "
                                      f"config expects {tuple(dst.shape)}",
                                      "the file is damaged or was edited")
            if (src.is_floating_point() != dst.is_floating_point()
                    or (not dst.is_floating_point() and src.dtype != dst.dtype)):
                raise CheckpointError(f"checkpoint {path}: tensor {name} is {src.dtype}, "
                                      f"the model needs {dst.dtype}",
                                      "the file is damaged or was edited")
            dst.copy_(src.to(dst.dtype))
    model.eval()
    return model


def load_model(spec: str | Path) -> Conformer:
    """``preset:NAME`` (random init, fixed seed) or a checkpoint path."""
    text = str(spec)
    if text.startswith(PRESET_PREFIX):
        return build_model(load_preset(text[len(PRESET_PREFIX):]), seed=PRESET_SEED)
    return load_checkpoint(Path(text))


def check_finite(model: Conformer) -> None:
    """Raise CheckpointError naming the first parameter or buffer with NaN or Inf, or a
    batch-norm running variance below zero (it would turn into a NaN bias when folded)."""
    for name, t in unique_tensors(model).items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"weight {name} has {bad} NaN/Inf value(s)",
                                  "retrain or repair the checkpoint; int8 cannot hold them")
        if name.endswith("running_var") and bool((t < 0).any()):
            raise CheckpointError(f"batch-norm variance {name} has {int((t < 0).sum())} "
                                  "negative value(s)", "a variance is never negative; "
                                  "retrain or repair the checkpoint")
