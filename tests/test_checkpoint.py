"""Checkpoints: one file, weights_only loading, sharing kept, bad files refused cleanly."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.errors import CheckpointError
from tinygen.speech.checkpoint import (
    check_finite,
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from tinygen.speech.summary import unique_params


def tied_groups(model: torch.nn.Module) -> list[list[str]]:
    """Names grouped by the Parameter object they point at (only groups with >1 name)."""
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return sorted(names for names in by_id.values() if len(names) > 1)


@pytest.mark.parametrize("preset", ["mcu-tiny", "share-lowrank", "share-modules"])
def test_round_trip_keeps_values_and_identity(tmp_path: Path, preset: str) -> None:
    model = load_model(f"preset:{preset}")
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():  # make the values differ from a fresh init
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, meta={"step": 7})
    loaded = load_checkpoint(path)
    assert loaded.cfg == model.cfg
    assert unique_params(loaded) == unique_params(model)
    assert tied_groups(loaded) == tied_groups(model) != []
    for (na, pa), (nb, pb) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                  strict=True):
        assert na == nb and torch.equal(pa, pb)
    x = torch.randn(1, 60, model.cfg.n_mels, generator=gen)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    meta = read_checkpoint(path)["meta"]
    assert meta.pop("tensors_sha256") == hashlib.sha256(_hash_input(path)).hexdigest()
    assert meta == {"step": 7}


def _hash_input(path: Path) -> bytes:
    """The documented hash input, rebuilt here from the raw file: for each tensor in name
    order, "name:dtype:shape" and a newline, then its bytes."""
    tensors = torch.load(path, weights_only=True)["tensors"]
    parts = []
    for name in sorted(tensors):
        t = tensors[name]
        parts.append(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        parts.append(t.contiguous().numpy().tobytes())
    return b"".join(parts)


def test_file_stores_each_shared_tensor_once(tmp_path: Path) -> None:
    model = load_model("preset:mcu-tiny")
    save_checkpoint(model, tmp_path / "m.pt")
    tensors = torch.load(tmp_path / "m.pt", weights_only=True)["tensors"]
    params = {k: v for k, v in tensors.items() if k in dict(model.named_parameters())}
    assert sum(v.numel() for v in params.values()) == unique_params(model)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_corrupt_and_truncated(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(load_model("preset:share-blocks"), good)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a checkpoint" * 100)
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(tmp_path / name)


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


def test_not_ours(tmp_path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a tinygen checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module object
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "module.pt")
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": Evil()}, fh)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_edited_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    data = torch.load(path, weights_only=True)
    data["tensors"].pop(next(iter(data["tensors"])))
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not match the content hash"):
        load_checkpoint(path)
    data["meta"].pop("tensors_sha256")  # a file from before the hash: shapes still checked
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_checkpoint(path)
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["config"]["n_heads"] = 5
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="does not divide"):
        load_checkpoint(path)
    save_checkpoint(load_model("preset:share-blocks"), path)
    data = torch.load(path, weights_only=True)
    key = "head.weight"
    data["tensors"][key] = torch.zeros(3, 3)
    data["meta"].pop("tensors_sha256")
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"head\.weight has shape"):
        load_checkpoint(path)
    data["version"] = 99
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_nan_weights_are_named() -> None:
    model = load_model("preset:share-blocks")
    check_finite(model)
    with torch.no_grad():
        model.blocks[1].attn.o.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.o\.weight has 1 NaN"):
        check_finite(model)


def test_save_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    before = path.read_bytes()

    class Boom(torch.nn.Module):
        cfg = load_model("preset:share-blocks").cfg

        def named_parameters(self, *a, **k):  # type: ignore[no-untyped-def,override]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(Boom(), path)  # type: ignore[arg-type]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def flip_tensor_bytes(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the largest tensor's data, in place."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28],
                                         "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    for i in range(start, start + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_bit_rot_is_refused_by_load_build_and_pack(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    flip_tensor_bytes(path)
    assert torch.load(path, weights_only=True)["format"] == "tinygen-checkpoint"  # loads!
    with pytest.raises(CheckpointError, match="fails its CRC check"):
        load_checkpoint(path)
    res = run_tinygen("build", str(path), "-o", str(tmp_path / "out"), "--calib", "1",
                      "--vectors", "1")
    assert_one_line_error(res, "CRC")
    res = run_tinygen("pack", str(path), "-o", str(tmp_path / "ship.pt"))
    assert_one_line_error(res, "CRC")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_a_rewritten_tensor_fails_the_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    data = torch.load(path, weights_only=True)
    data["tensors"]["head.weight"][0, 0] += 1.0  # same shape; the zip CRCs are fresh
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.complex64])
def test_non_float_weights_are_refused(tmp_path: Path, dtype: torch.dtype) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    data = torch.load(path, weights_only=True)
    data["tensors"]["head.weight"] = torch.ones_like(data["tensors"]["head.weight"],
                                                     dtype=dtype)
    data["meta"].pop("tensors_sha256")
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=rf"head\.weight is {dtype}"):
        load_checkpoint(path)


def test_pack_refuses_meta_that_is_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(load_model("preset:share-blocks"), path)
    data = torch.load(path, weights_only=True)
    data["meta"] = [1, 2]
    torch.save(data, path)
    res = run_tinygen("pack", str(path), "-o", str(tmp_path / "ship.pt"))
    assert_one_line_error(res, "'meta' entry is a list")
    assert not (tmp_path / "ship.pt").exists()
