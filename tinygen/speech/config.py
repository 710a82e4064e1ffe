"""Model configuration: one frozen dataclass that round-trips through JSON.

Weight sharing is described at the four levels of Hernandez et al. (2023):

1. ``block_order``: U unique blocks fill V virtual layers (``(0, 0, 1, 1)``).
2. ``ffn_groups`` / ``attn_groups`` / ``conv_groups``: unique block -> module instance.
   ``(0, 0, 0, 0)`` shares one FFN across all four blocks; ``()`` means one per block.
3. ``share_macaron`` (the two half-step FFNs of a block are one module) and
   ``attn_proj_sharing`` (``"qk"``, ``"kv"`` or ``"qkv"``: attention projections that are
   one Linear).
4. ``lowrank``: chosen Linear roles become ``up @ down`` with a rank per unique block, and
   optionally one factor shared by every instance of the role.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinygen.errors import ConfigError, PresetError
from tinygen.resources import presets_dir

# Linear layers inside a block that may be factored (level 4).
LINEAR_ROLES: tuple[str, ...] = (
    "ffn.w1",
    "ffn.w2",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "conv.pw1",
    "conv.pw2",
)
ATTN_PROJ_SHARING = ("none", "qk", "kv", "qkv")
SHARED_FACTOR = ("none", "down", "up")
# Time subsampling of the front convolutions, and the silence frames a streaming model
# pads in front of the stream so that every 4 new log-mel frames complete one encoder frame.
SUBSAMPLE = 4
SUBSAMPLE_PAD = 3
MAX_CHUNK_FRAMES = 64
MAX_LEFT_CHUNKS = 64
# Characters of the CTC vocabulary; index 0 is the CTC blank.
DEFAULT_VOCAB = "_ 'abcdefghijklmnopqrstuvwxyz"
# Inclusive bounds of every dimension, checked before anything is allocated. They are far
# beyond any model that fits a microcontroller (paper-5m: d_model 256, ff_dim 1024) and
# keep a hostile 4 KB config from asking for gigabytes.
LIMITS: dict[str, tuple[int, int]] = {
    "sample_rate": (1000, 192_000),
    "n_fft": (16, 8192),
    "win_length": (16, 8192),
    "hop_length": (1, 8192),
    "n_mels": (7, 256),
    "subsample_channels": (1, 512),
    "d_model": (1, 2048),
    "n_heads": (1, 64),
    "ff_dim": (1, 8192),
    "conv_kernel": (1, 255),
    "virtual_layers": (1, 64),
    "vocab_size": (2, 1024),
    "name_chars": (1, 64),
}
MAX_WINDOW_MS = 60_000.0  # the longest input window a model is compiled or trained for
MAX_INPUTS = 100_000  # calibration inputs, test vectors or held-out inputs asked for
MAX_PARAMS = 50_000_000  # unique float parameters, before sharing: 200 MB of float32


@dataclass(frozen=True)
class LowRank:
    """Level 4: a Linear W (d_out, d_in) becomes ``up (d_out, r) @ down (r, d_in)``."""

    targets: tuple[str, ...] = ()  # roles from LINEAR_ROLES that are factored
    ranks: tuple[int, ...] = ()  # rank per unique block; one value applies to all blocks
    shared_factor: str = "none"  # "down" | "up": that factor is one tensor for all instances

    def rank_for(self, block: int) -> int:
        return self.ranks[0] if len(self.ranks) == 1 else self.ranks[block]


@dataclass(frozen=True)
class ConformerConfig:
    """A Conformer encoder with a CTC head, and how its weights are shared."""

    name: str = "custom"
    # --- log-mel front end (16 kHz audio, 25 ms window, 10 ms hop)
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    # --- 4x convolutional subsampling: two 3x3 stride-2 Conv2d + ReLU, then a Linear
    subsample_channels: int = 32
    # --- encoder
    d_model: int = 96
    n_heads: int = 4
    ff_dim: int = 384  # hidden width of each macaron FFN
    conv_kernel: int = 15  # depthwise kernel over time (odd)
    dropout: float = 0.1  # training only; export runs in eval mode
    vocab: str = DEFAULT_VOCAB  # CTC output symbols, blank first
    # --- sharing, levels 1-3 (see module docstring)
    block_order: tuple[int, ...] = (0, 1, 2, 3)
    ffn_groups: tuple[int, ...] = ()
    attn_groups: tuple[int, ...] = ()
    conv_groups: tuple[int, ...] = ()
    share_macaron: bool = False
    attn_proj_sharing: str = "none"
    # --- sharing, level 4
    lowrank: LowRank = field(default_factory=LowRank)
    # --- streaming (0 = full context over a fixed window). A chunk is chunk_frames encoder
    # frames (4 * chunk_frames log-mel frames, 40 ms each at a 10 ms hop); each chunk attends
    # to itself and to left_chunks cached chunks, the depthwise conv is causal, and the
    # subsampling is left-padded with silence, so the model can be stepped chunk by chunk
    # with cached state (docs/streaming.md).
    chunk_frames: int = 0
    left_chunks: int = 0

    # ----------------------------------------------------------------- derived
    @property
    def virtual_layers(self) -> int:
        return len(self.block_order)

    @property
    def unique_blocks(self) -> int:
        return max(self.block_order) + 1 if self.block_order else 0

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def module_groups(self, kind: str) -> tuple[int, ...]:
        """Unique block -> instance index of module ``kind`` ("ffn", "attn", "conv")."""
        groups: tuple[int, ...] = getattr(self, f"{kind}_groups")
        return groups if groups else tuple(range(self.unique_blocks))

    def subsampled_mels(self) -> int:
        return ((self.n_mels - 1) // 2 - 1) // 2

    def subsampled_frames(self, frames: int) -> int:
        if self.streaming:  # left-padded with SUBSAMPLE_PAD silence frames
            return frames // SUBSAMPLE
        return ((frames - 1) // 2 - 1) // 2

    @property
    def streaming(self) -> bool:
        return self.chunk_frames > 0

    @property
    def chunk_feature_frames(self) -> int:
        """Log-mel frames one streaming step consumes."""
        return self.chunk_frames * SUBSAMPLE

    @property
    def chunk_ms(self) -> float:
        """Algorithmic latency of a streaming step: one chunk of audio."""
        return 1000.0 * self.chunk_feature_frames * self.hop_length / self.sample_rate

    @property
    def left_context_frames(self) -> int:
        """Encoder frames of attention context each streaming step keeps (per layer)."""
        return self.chunk_frames * self.left_chunks

    # ------------------------------------------------------------- validation
    def validate(self) -> ConformerConfig:
        """Raise ConfigError naming the first impossible setting; return self."""

        def need(ok: bool, what: str, fix: str) -> None:
            if not ok:
                raise ConfigError(f"config '{self.name}': {what}", fix)

        need(len(self.block_order) > 0, "zero layers (block_order is empty)",
             "give block_order at least one entry")
        for key, (lo, hi) in LIMITS.items():
            value = len(self.name) if key == "name_chars" else getattr(self, key)
            need(lo <= value <= hi, f"{key} = {value}" if key != "name_chars" else
                 f"name is {value} characters long", f"use {lo}..{hi}")
        need(max(self.block_order) < LIMITS["virtual_layers"][1],
             f"block_order names unique block {max(self.block_order)}",
             f"use at most {LIMITS['virtual_layers'][1]} unique blocks")
        need(min(self.block_order) >= 0, f"block_order {list(self.block_order)} has a "
             "negative index", "use unique-block indices 0..U-1")
        used = set(self.block_order)
        need(used == set(range(self.unique_blocks)),
             f"block_order {list(self.block_order)} skips unique block(s) "
             f"{sorted(set(range(self.unique_blocks)) - used)}",
             "number unique blocks 0..U-1 with no gaps")
        need(self.d_model % self.n_heads == 0,
             f"n_heads = {self.n_heads} does not divide d_model = {self.d_model}",
             "choose n_heads that divides d_model")
        need(self.conv_kernel % 2 == 1, f"conv_kernel = {self.conv_kernel} is even",
             "use an odd depthwise kernel so output length equals input length")
        need(self.n_mels >= 7, f"n_mels = {self.n_mels} leaves no frequency bins after "
             "4x subsampling", "use n_mels >= 7")
        need(self.win_length <= self.n_fft, f"win_length {self.win_length} > n_fft "
             f"{self.n_fft}", "make n_fft >= win_length")
        need(0.0 <= self.dropout < 1.0, f"dropout = {self.dropout}", "use 0 <= dropout < 1")
        need(len(self.vocab) >= 2 and len(set(self.vocab)) == len(self.vocab),
             "vocab must hold a blank and at least one symbol, without repeats",
             "use e.g. \"_ abc...\" with the blank first")
        for kind in ("ffn", "attn", "conv"):
            groups: tuple[int, ...] = getattr(self, f"{kind}_groups")
            if not groups:
                continue
            need(len(groups) == self.unique_blocks,
                 f"{kind}_groups has {len(groups)} entries for {self.unique_blocks} unique "
                 "blocks", "give one instance index per unique block")
            need(set(groups) == set(range(max(groups) + 1)) and min(groups) >= 0,
                 f"{kind}_groups {list(groups)} skips an instance index",
                 "number instances 0..N-1 with no gaps")
        need(self.attn_proj_sharing in ATTN_PROJ_SHARING,
             f"attn_proj_sharing = {self.attn_proj_sharing!r}",
             f"choose one of {', '.join(ATTN_PROJ_SHARING)}")
        self._validate_lowrank(need)
        need(self.n_mels <= self.n_fft // 2 + 1, f"n_mels = {self.n_mels} exceeds the "
             f"{self.n_fft // 2 + 1} frequency bins of n_fft = {self.n_fft}",
             "use fewer mel bands or a larger n_fft")
        need(self.hop_length <= self.win_length, f"hop_length {self.hop_length} > "
             f"win_length {self.win_length}", "make hop_length <= win_length")
        params = self.params_bound()
        need(params <= MAX_PARAMS, f"{params:,} parameters before sharing",
             f"tinygen compiles models of up to {MAX_PARAMS:,}; shrink d_model, ff_dim or "
             "the number of unique blocks")
        self._validate_streaming(need)
        return self

    def params_bound(self) -> int:
        """An upper bound of the model's unique parameters (every module unshared)."""
        d, c = self.d_model, self.subsample_channels
        block = 4 * d * self.ff_dim + 8 * d * d + d * self.conv_kernel + 16 * d
        front = 9 * c + 9 * c * c + c * self.subsampled_mels() * d
        return self.unique_blocks * block + front + d * self.vocab_size + 2 * self.ff_dim

    def _validate_streaming(self, need: Any) -> None:
        need(0 <= self.chunk_frames <= MAX_CHUNK_FRAMES,
             f"chunk_frames = {self.chunk_frames}",
             f"use 0 (full context) or 1..{MAX_CHUNK_FRAMES} encoder frames (40 ms each)")
        need(0 <= self.left_chunks <= MAX_LEFT_CHUNKS, f"left_chunks = {self.left_chunks}",
             f"use 1..{MAX_LEFT_CHUNKS} cached chunks of left context")
        if self.chunk_frames == 0:
            need(self.left_chunks == 0, f"left_chunks = {self.left_chunks} without "
                 "chunk_frames", "set chunk_frames > 0 to stream, or left_chunks = 0")
            return
        need(self.left_chunks >= 1, "a streaming model with left_chunks = 0 attends to "
             "its own chunk only and forgets everything before it",
             "give left_chunks >= 1 (e.g. 4 chunks of left context)")

    def _validate_lowrank(self, need: Any) -> None:
        lr = self.lowrank
        need(lr.shared_factor in SHARED_FACTOR, f"lowrank.shared_factor = "
             f"{lr.shared_factor!r}", f"choose one of {', '.join(SHARED_FACTOR)}")
        for role in lr.targets:
            need(role in LINEAR_ROLES, f"lowrank target {role!r} is not a Linear role",
                 f"choose from {', '.join(LINEAR_ROLES)}")
        if not lr.targets:
            return
        need(len(lr.ranks) in (1, self.unique_blocks),
             f"lowrank.ranks has {len(lr.ranks)} entries for {self.unique_blocks} unique "
             "blocks", "give one rank, or one per unique block")
        # Roles that are one Linear (attention projection sharing) factor together.
        for group in self.attn_proj_groups():
            inside = {r in lr.targets for r in group}
            need(len(inside) == 1, f"lowrank targets split the shared projections "
                 f"{'/'.join(group)}", "factor all of them or none")
        for role in lr.targets:
            d_in, d_out = self.linear_shape(role)
            kind = role.split(".")[0]
            groups = self.module_groups(kind)
            for block in range(self.unique_blocks):
                r = lr.rank_for(block)
                need(0 < r <= min(d_in, d_out),
                     f"rank {r} for {role} in block {block} is outside 1..min(d_in, d_out)"
                     f" = 1..{min(d_in, d_out)}", "lower the rank")
                # Blocks that share one module instance must agree on its rank.
                first = groups.index(groups[block])
                need(lr.rank_for(first) == r, f"blocks {first} and {block} share one "
                     f"{kind} module but ask ranks {lr.rank_for(first)} and {r}",
                     "give blocks that share a module the same rank")
            if lr.shared_factor != "none":
                ranks = {lr.rank_for(b) for b in range(self.unique_blocks)}
                need(len(ranks) == 1, f"the shared {lr.shared_factor} factor of {role} "
                     f"needs one rank, got {sorted(ranks)}", "use one rank for all blocks")

    def attn_proj_groups(self) -> list[tuple[str, ...]]:
        """Attention projections that are one Linear, e.g. [("attn.q", "attn.k")]."""
        return {
            "none": [],
            "qk": [("attn.q", "attn.k")],
            "kv": [("attn.k", "attn.v")],
            "qkv": [("attn.q", "attn.k", "attn.v")],
        }[self.attn_proj_sharing]

    def linear_shape(self, role: str) -> tuple[int, int]:
        """(d_in, d_out) of a block Linear role."""
        d, ff = self.d_model, self.ff_dim
        return {
            "ffn.w1": (d, ff),
            "ffn.w2": (ff, d),
            "attn.q": (d, d),
            "attn.k": (d, d),
            "attn.v": (d, d),
            "attn.o": (d, d),
            "conv.pw1": (d, 2 * d),
            "conv.pw2": (d, d),
        }[role]

    # ------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformerConfig:
        if not isinstance(data, dict):
            raise ConfigError("model config is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}",
                              f"known fields: {', '.join(sorted(known))}")
        kwargs: dict[str, Any] = {}
        try:
            for f in dataclasses.fields(cls):
                if f.name not in data:
                    continue
                value = data[f.name]
                if f.name == "lowrank":
                    lr = dict(value)
                    bad = sorted(set(lr) - {g.name for g in dataclasses.fields(LowRank)})
                    if bad:
                        raise ConfigError(f"unknown lowrank field(s): {', '.join(bad)}")
                    targets = lr.get("targets", ())
                    if not isinstance(targets, list | tuple) or not all(
                            isinstance(t, str) for t in targets):
                        raise ConfigError("lowrank.targets must be a list of role names")
                    value = LowRank(
                        targets=tuple(targets),
                        ranks=_int_tuple("lowrank.ranks", lr.get("ranks", ())),
                        shared_factor=str(lr.get("shared_factor", "none")),
                    )
                elif f.name.endswith(("_order", "_groups")):
                    value = _int_tuple(f.name, value)
                kwargs[f.name] = value
        except (TypeError, ValueError) as err:
            raise ConfigError(f"malformed model config: {err}") from None
        cfg = cls(**kwargs)
        _check_types(cfg)
        return cfg.validate()

    @classmethod
    def from_json(cls, text: str) -> ConformerConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"model config is not valid JSON: {err}") from None
        return cls.from_dict(data)


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """A JSON list of integers; a string such as "0123" or a huge list is refused."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"config field {name} must be a list of integers, got "
                          f"{type(value).__name__} {str(value)[:20]!r}")
    if len(value) > LIMITS["virtual_layers"][1]:
        raise ConfigError(f"config field {name} has {len(value):,} entries",
                          f"use at most {LIMITS['virtual_layers'][1]}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"config field {name} must be a list of integers, got "
                          f"{str(list(value))[:40]}")
    return tuple(value)


def _check_types(cfg: ConformerConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}.get(
            str(f.type))
        if expected is None:
            continue
        if isinstance(value, bool) and expected is not bool:
            raise ConfigError(f"config field {f.name} must be {f.type}, got {value!r}")
        if not isinstance(value, expected):
            raise ConfigError(f"config field {f.name} must be {f.type}, got {value!r}")


# ----------------------------------------------------------------------- presets
def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.json"))


def load_preset(name: str) -> ConformerConfig:
    path = presets_dir() / f"{name}.json"
    if not path.is_file():
        raise PresetError(f"unknown preset '{name}'",
                          f"choose one of: {', '.join(preset_names())}")
    return load_config_file(path)


def load_config_file(path: Path) -> ConformerConfig:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    return ConformerConfig.from_json(text)
