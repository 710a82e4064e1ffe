"""Streaming: stepping with cached state == the chunk-masked full pass (float)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tinygen.errors import ConfigError
from tinygen.speech.config import ConformerConfig, load_preset
from tinygen.speech.features import silence_value
from tinygen.speech.model import build_model, chunk_mask
from tinygen.speech.streaming import (
    StreamStep,
    pad_to_chunks,
    receptive_steps,
    silence_state,
    state_bytes_int8,
    state_specs,
    stream,
    zero_state,
)

# Lengths in log-mel frames: shorter than one frame of output, shorter than one chunk,
# exactly one chunk, ragged, and a long stream of hundreds of chunks.
LENGTHS = (1, 5, 16, 17, 63, 100, 257, 401, 3203)


def _randomize_norms(model: torch.nn.Module, seed: int) -> None:
    """BatchNorm running stats and LayerNorm affine away from identity, so that a wrong
    cache cannot hide behind a near-zero path."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def _model(preset: str, chunk: int = 4, left: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(load_preset(preset), chunk_frames=chunk, left_chunks=left)
    model = build_model(cfg.validate(), seed=seed)
    _randomize_norms(model, seed)
    return model.eval()


@pytest.mark.parametrize("preset", ["mcu-tiny", "share-modules", "share-subcomponents",
                                    "share-lowrank"])
def test_stepping_equals_the_masked_full_pass(preset: str) -> None:
    model = _model(preset)
    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    lengths = LENGTHS if preset == "mcu-tiny" else LENGTHS[:6]
    start = silence_state(model)
    prefix_frames = receptive_steps(cfg) * cfg.chunk_feature_frames  # whole chunks
    prefix = torch.full((1, prefix_frames, cfg.n_mels), silence_value())
    for t in lengths:
        feats = torch.randn(1, t, cfg.n_mels, generator=gen) * 1.5 - 1.0
        padded = pad_to_chunks(feats, cfg)
        with torch.no_grad():  # the full pass over silence prefix ++ utterance ++ tail
            full = model(torch.cat([prefix, padded], dim=1))[:, prefix_frames // 4:]
        stepped = stream(model, feats, start)
        assert stepped.shape == full.shape == (1, padded.shape[1] // 4, cfg.vocab_size)
        diff = (stepped - full).abs().max().item()
        assert diff <= 1e-4, f"{preset}, {t} frames: max |step - full| = {diff}"


def test_a_batch_steps_like_its_members() -> None:
    model = _model("share-blocks", chunk=2, left=3)
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 40, model.cfg.n_mels, generator=gen)
    batch = stream(model, feats)
    for i in range(3):
        assert torch.allclose(batch[i:i + 1], stream(model, feats[i:i + 1]), atol=1e-5)


def test_cache_matters_and_is_bounded() -> None:
    """Frames beyond the left context cannot change the output; frames within it do."""
    model = _model("share-blocks", chunk=2, left=2)
    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    n = cfg.chunk_feature_frames
    # Receptive field of the last chunk, worked out by hand: each virtual layer reaches
    # back L*C encoder frames through attention and K-1 through the conv; the subsampling
    # 7 log-mel frames.
    reach = cfg.virtual_layers * (cfg.left_context_frames + cfg.conv_kernel - 1)
    steps = (4 * reach + 7) // n + 3
    feats = torch.randn(1, steps * n, cfg.n_mels, generator=gen)
    base = stream(model, feats)[:, -cfg.chunk_frames:]  # the last chunk's logits
    far = feats.clone()
    far[:, :n] += 3.0  # the first chunk: outside the reach, the last chunk must not move
    assert torch.equal(stream(model, far)[:, -cfg.chunk_frames:], base)
    near = feats.clone()
    near[:, -2 * n:-n] += 3.0  # the chunk just before the last one
    assert not torch.allclose(stream(model, near)[:, -cfg.chunk_frames:], base)


def test_chunk_mask_by_hand() -> None:
    m = chunk_mask(6, chunk=2, left_chunks=1)
    allowed = ~m
    # frame 4 (chunk 2) sees chunks 1 and 2: frames 2..5
    assert allowed[4].tolist() == [False, False, True, True, True, True]
    # frame 1 (chunk 0) sees its own chunk only, including the later frame 1
    assert allowed[1].tolist() == [True, True, False, False, False, False]


def test_state_size_by_hand() -> None:
    cfg = dataclasses.replace(load_preset("mcu-tiny"), chunk_frames=4, left_chunks=4)
    assert (cfg.chunk_frames, cfg.left_chunks, cfg.chunk_ms) == (4, 4, 160.0)
    # per virtual layer: keys + values 16 x 96 each, conv cache 14 x 96; 6 layers;
    # subsampling: one 40-bin log-mel frame and one 32-channel x 19-bin conv1 frame
    per_layer = 2 * 16 * 96 + 14 * 96
    assert state_bytes_int8(cfg) == 6 * per_layer + 40 + 32 * 19
    assert [s.name for s in state_specs(cfg)][:4] == [
        "feat_cache", "conv1_cache", "layer0.keys", "layer0.values"]


def test_silence_state_is_a_fixed_point_reached_from_anywhere() -> None:
    """After receptive_steps() steps of silence the state no longer depends on the
    start (so a reset can restore one precomputed state), and one more silent step
    leaves it unchanged."""
    model = _model("share-modules", chunk=2, left=3)
    cfg = model.cfg
    step = StreamStep(model).eval()
    silence = torch.full((1, cfg.chunk_feature_frames, cfg.n_mels), silence_value())
    gen = torch.Generator().manual_seed(4)
    state = [torch.randn(t.shape, generator=gen) * 3 for t in zero_state(cfg)]
    with torch.no_grad():
        for _ in range(receptive_steps(cfg)):
            _, *state = step(silence, *state)
        again = step(silence, *state)[1:]
    reference = silence_state(model)
    for a, b, c in zip(state, reference, again, strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(b, c, atol=1e-5)


@pytest.mark.parametrize(("changes", "needle"), [
    ({"chunk_frames": 4, "left_chunks": 0}, "left_chunks = 0"),
    ({"chunk_frames": -1}, "chunk_frames = -1"),
    ({"chunk_frames": 1000, "left_chunks": 2}, "chunk_frames = 1000"),
    ({"left_chunks": 3}, "without chunk_frames"),
])
def test_impossible_streaming_configs_are_refused(changes: dict[str, int], needle: str) -> None:
    data = {**load_preset("mcu-tiny").to_dict(), **changes}
    with pytest.raises(ConfigError, match=needle):
        ConformerConfig.from_dict(data)


def test_non_streaming_model_is_unchanged() -> None:
    """chunk_frames = 0 keeps the full-context model (output length, symmetric conv)."""
    cfg = load_preset("mcu-tiny")
    assert not cfg.streaming and cfg.subsampled_frames(101) == 24
    with pytest.raises(ValueError, match="does not stream"):
        StreamStep(build_model(cfg))


def test_step_macs_by_hand() -> None:
    """One step of share-blocks (no low-rank factors) counted layer by layer by hand."""
    from tinygen.speech.streaming import step_macs

    model = _model("share-blocks", chunk=4, left=2)
    cfg = model.cfg
    c, d, ff, k, v = cfg.chunk_frames, cfg.d_model, cfg.ff_dim, cfg.conv_kernel, cfg.vocab_size
    cs, f1 = cfg.subsample_channels, (cfg.n_mels - 3) // 2 + 1
    f2 = (f1 - 3) // 2 + 1
    keys = cfg.left_context_frames + c
    front = cs * 2 * c * f1 * 9 + cs * c * f2 * cs * 9 + c * cs * f2 * d
    per_layer = (2 * c * 2 * d * ff  # two half-step FFNs
                 + 4 * c * d * d  # q, k, v, o
                 + 2 * c * keys * d  # scores and context over cached + new keys
                 + c * d * 2 * d + c * d * k + c * d * d)  # conv module
    assert step_macs(model) == front + cfg.virtual_layers * per_layer + c * d * v
