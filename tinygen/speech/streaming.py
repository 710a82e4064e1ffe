"""Streaming: step a chunked Conformer through audio with cached state, never recomputing.

Contract. For a model whose config streams (``chunk_frames`` C > 0, ``left_chunks`` L >= 1):

- one step takes 4·C new log-mel frames and returns the logits of C new encoder frames;
- the state is what the next step needs and nothing more, per *virtual* layer (weights stay
  shared): the keys and values of the last L·C encoder frames, and the last K-1 inputs of
  the causal depthwise conv; for the subsampling, the last log-mel frame and the last
  first-conv frame. Its size does not grow with the stream;
- a stream starts from the *silence state*: the state after the model has listened to
  digital silence for longer than its receptive field. Because the step has a finite
  receptive field, that state is a fixed point that does not depend on where stepping
  started, so it is computed once (:func:`silence_state`) and a reset restores it. The caches
  are therefore always full: no step is special and no attention mask is needed at run time;
- stepping from the silence state through frames ``x`` equals the chunk-masked full pass
  (``Conformer.forward``) over ``silence_prefix ++ x ++ tail``, where the prefix covers the
  receptive field and the tail completes the last chunk, on x's output frames (float, up to
  rounding; tests check ≤ 1e-4).

:class:`StreamStep` is that step as an ``nn.Module`` with the state as explicit inputs and
outputs, the form the compiler captures. Cached keys and values are oldest first; because
attention does not depend on the order of its keys (softmax and the weighted sum are sums
over keys), the runtime may keep them in a ring and write each new chunk in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinygen.audio import FEATURE_RANGE
from tinygen.speech.config import SUBSAMPLE, ConformerConfig
from tinygen.speech.features import silence_value
from tinygen.speech.model import Conformer, ConformerBlock

if TYPE_CHECKING:
    from tinygen.compiler.stream import CompiledStep


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: its name and its shape for batch size 1."""

    name: str
    shape: tuple[int, ...]


def state_specs(cfg: ConformerConfig) -> list[StateSpec]:
    """The state tensors of a streaming model, in StreamStep's argument order."""
    if not cfg.streaming:
        raise ValueError(f"config '{cfg.name}' does not stream (chunk_frames = 0)")
    d, lc = cfg.d_model, cfg.left_context_frames
    f1 = (cfg.n_mels - 3) // 2 + 1  # mel bins after the first conv
    specs = [StateSpec("feat_cache", (1, 1, cfg.n_mels)),
             StateSpec("conv1_cache", (1, cfg.subsample_channels, 1, f1))]
    for layer in range(cfg.virtual_layers):
        specs += [StateSpec(f"layer{layer}.keys", (1, lc, d)),
                  StateSpec(f"layer{layer}.values", (1, lc, d)),
                  StateSpec(f"layer{layer}.conv", (1, cfg.conv_kernel - 1, d))]
    return specs


def state_bytes_int8(cfg: ConformerConfig) -> int:
    """Bytes of the state at one byte per element (the int8 runtime's state region)."""
    total = 0
    for spec in state_specs(cfg):
        n = 1
        for s in spec.shape:
            n *= s
        total += n
    return total


class SubsampleStep(nn.Module):
    """The subsampling of one step: (feats (B, 4C, F), feat_cache, conv1_cache) ->
    (x (B, C, D), feat_cache', conv1_cache')."""

    def __init__(self, model: Conformer) -> None:
        super().__init__()
        self.sub = model.subsample

    def forward(self, feats: torch.Tensor, feat_cache: torch.Tensor,
                conv1_cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # 1 cached + 4C new log-mel frames -> 2C conv1 frames; with the cached conv1
        # frame, 2C + 1 -> C conv2 frames.
        x = torch.cat([feat_cache, feats], dim=1).unsqueeze(1)  # (B, 1, 4C+1, F)
        h1 = torch.cat([conv1_cache, F.relu(self.sub.conv1(x))], dim=2)  # (B, Cs, 2C+1, F1)
        x = self.sub.project(F.relu(self.sub.conv2(h1)))  # (B, C, D)
        return x, feats[:, -1:], h1[:, :, -1:]


class BlockStep(nn.Module):
    """One virtual layer of one step: (x (B, C, D), keys, values, conv) ->
    (x, keys', values', conv'). Virtual layers that reuse a block reuse its BlockStep, so
    the compiler sees repeated calls of one module, as in the full pass."""

    def __init__(self, block: ConformerBlock, chunk: int) -> None:
        super().__init__()
        self.blk = block
        self.c = chunk

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                conv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        blk, c = self.blk, self.c
        x = x + 0.5 * blk.ffn1(x)  # (B, C, D)
        h = blk.attn.norm(x)
        q = blk.attn.q(h)  # (B, C, D)
        k_all = torch.cat([keys, blk.attn.k(h)], dim=1)  # (B, LC+C, D)
        v_all = torch.cat([values, blk.attn.v(h)], dim=1)  # (B, LC+C, D)
        x = x + blk.attn.attend(q, k_all, v_all, None)
        g = torch.cat([conv, blk.conv.gated(x)], dim=1)  # (B, K-1+C, D)
        x = x + blk.conv.finish(g)  # depthwise VALID: K-1+C -> C frames
        x = blk.norm(x + 0.5 * blk.ffn2(x))
        return x, k_all[:, c:], v_all[:, c:], g[:, c:]


class StreamStep(nn.Module):
    """(feats (B, 4C, F), *state) -> (logits (B, C, V), *state)."""

    def __init__(self, model: Conformer) -> None:
        super().__init__()
        if not model.cfg.streaming:
            raise ValueError(f"config '{model.cfg.name}' does not stream (chunk_frames = 0)")
        self.block_order = model.block_order
        # The same modules as the model's, so every shared Parameter stays one object.
        self.subsample = SubsampleStep(model)
        self.blocks = nn.ModuleList(BlockStep(b, model.cfg.chunk_frames) for b in model.blocks)
        self.head = model.head

    def forward(self, feats: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, *new_state = self.subsample(feats, state[0], state[1])
        for i, b in enumerate(self.block_order):  # each virtual layer its own caches
            x, *caches = self.blocks[b](x, *state[2 + 3 * i:5 + 3 * i])
            new_state += caches
        return (self.head(x), *new_state)


def receptive_steps(cfg: ConformerConfig) -> int:
    """Steps after which the state no longer depends on the state stepping started from.

    A bound worked out from the step: the subsampling state covers the last 3 log-mel
    frames; each virtual layer's input at a frame depends on the layer below over at most
    the attention's reach (L·C cached + C - 1 frames of its chunk) followed by the conv's
    (K - 1), and its caches hold L·C and K - 1 frames of that input."""
    c, lc, k = cfg.chunk_frames, cfg.left_context_frames, cfg.conv_kernel
    frames = cfg.virtual_layers * (lc + c - 1 + k - 1) + max(lc, k - 1) + 2
    return -(-frames // c) + 1


def zero_state(cfg: ConformerConfig, batch: int = 1) -> list[torch.Tensor]:
    return [torch.zeros((batch, *s.shape[1:])) for s in state_specs(cfg)]


@torch.no_grad()
def silence_state(model: Conformer, batch: int = 1) -> list[torch.Tensor]:
    """The state a stream starts from: :func:`receptive_steps` steps of silence."""
    cfg = model.cfg
    step = StreamStep(model).eval()
    silence = torch.full((batch, cfg.chunk_feature_frames, cfg.n_mels), silence_value())
    state = zero_state(cfg, batch)
    for _ in range(receptive_steps(cfg)):
        _, *state = step(silence, *state)
    return state


def pad_to_chunks(feats: torch.Tensor, cfg: ConformerConfig) -> torch.Tensor:
    """(B, T, F) -> (B, T_pad, F): silence appended up to a whole number of chunks (≥ 1)."""
    n = cfg.chunk_feature_frames
    t = feats.shape[1]
    steps = max(1, -(-t // n))
    return F.pad(feats, (0, 0, 0, steps * n - t), value=silence_value())


@torch.no_grad()
def stream(model: Conformer, feats: torch.Tensor,
           start: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Step ``model`` through (B, T, F) log-mel frames from ``start`` (default: the silence
    state); (B, T_pad // 4, vocab) logits, T_pad the frames padded to whole chunks."""
    cfg = model.cfg
    step_fn = StreamStep(model).eval()
    feats = pad_to_chunks(feats, cfg)
    n = cfg.chunk_feature_frames
    state = silence_state(model, feats.shape[0]) if start is None else start
    out = []
    for k in range(feats.shape[1] // n):
        logits, *state = step_fn(feats[:, k * n:(k + 1) * n], *state)
        out.append(logits)
    return torch.cat(out, dim=1)


def step_macs(model: Conformer) -> int:
    """Multiply-accumulates of one streaming step (4C log-mel frames in)."""
    from tinygen.speech.summary import count_macs

    cfg = model.cfg
    step = StreamStep(model).eval()
    feats = torch.zeros(1, cfg.chunk_feature_frames, cfg.n_mels)
    state = zero_state(cfg)
    return count_macs(model, lambda: step(feats, *state))


def frames_per_step(cfg: ConformerConfig) -> tuple[int, int]:
    """(log-mel frames in, encoder frames out) of one step."""
    return cfg.chunk_frames * SUBSAMPLE, cfg.chunk_frames


def silence_chunk(cfg: ConformerConfig) -> torch.Tensor:
    """(1, 4C, F): one step of digital silence."""
    return torch.full((1, cfg.chunk_feature_frames, cfg.n_mels), silence_value())


@torch.no_grad()
def recorded_steps(model: Conformer, streams: list[torch.Tensor]) -> list[list[np.ndarray]]:
    """The float inputs ``[feats, *state]`` of every step of each (1, T, F) stream, stepped
    from the silence state: calibration data for a compiled step."""
    cfg = model.cfg
    step = StreamStep(model).eval()
    n = cfg.chunk_feature_frames
    start = silence_state(model)
    steps: list[list[np.ndarray]] = []
    for feats in streams:
        feats = pad_to_chunks(feats, cfg)
        state = list(start)
        for k in range(feats.shape[1] // n):
            x = feats[:, k * n:(k + 1) * n]
            steps.append([x.numpy().copy(), *(s.numpy().copy() for s in state)])
            _, *state = step(x, *state)
    return steps


def compile_streaming(model: Conformer, windows: list[np.ndarray],
                      progress: Callable[[int], None] | None = None) -> CompiledStep:
    """The compiled int8 step of a streaming ``model``, calibrated by stepping through
    ``windows`` ((1, T, F) float features, each one stream) from the silence state.

    ``int8.meta["state_init"]`` holds the int8 silence state (the golden step iterated on
    quantized silence, ``int8.meta["rest_input"]``, to its fixed point), which a reset
    restores; ``float_start`` the float one. ``compiled.start_state(tflite_flavour=True)``
    is the .tflite flavour's."""
    from tinygen.compiler.stream import compile_step

    cfg = model.cfg
    steps = recorded_steps(model, [torch.from_numpy(np.asarray(w, np.float32))
                                   for w in windows])
    example = tuple(torch.from_numpy(a) for a in steps[0])
    compiled = compile_step(StreamStep(model), example, steps, progress,
                            input_range=FEATURE_RANGE)  # the audio front end's output
    rest = compiled.quantize_input(silence_chunk(cfg).numpy())
    fixed, _ = compiled.fixed_state(rest)
    compiled.int8.meta["state_init"] = fixed
    compiled.int8.meta["rest_input"] = rest  # start_state(): any flavour
    compiled.int8.meta["chunk_ms"] = cfg.chunk_ms
    compiled.float_start = [s.numpy() for s in silence_state(model)]
    return compiled


def chunks_of(feats: np.ndarray, cfg: ConformerConfig) -> list[np.ndarray]:
    """(1, T, F) features -> the (1, 4C, F) chunks a stream feeds, silence completing
    the last one."""
    padded = pad_to_chunks(torch.from_numpy(np.asarray(feats, np.float32)), cfg).numpy()
    n = cfg.chunk_feature_frames
    return [padded[:, k * n:(k + 1) * n] for k in range(padded.shape[1] // n)]
