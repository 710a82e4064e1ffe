"""CTC training: the loss falls, checkpoints load, resume continues, torchrun, eval JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinygen.speech.checkpoint import load_checkpoint, read_checkpoint
from tinygen.speech.config import ConformerConfig
from tinygen.speech.data.synth import synthesize
from tinygen.speech.evaluate import Tally, Window, edit_distance, greedy_decode, score
from tinygen.speech.summary import unique_params, virtual_params
from tinygen.speech.train import (
    BatchPlan,
    TrainError,
    TrainOptions,
    distill_loss,
    fit,
    lr_factor,
    state_path,
)

# A Conformer small enough to train a few steps in well under a second.
TINY = ConformerConfig(name="test-tiny", d_model=32, n_heads=2, ff_dim=64, conv_kernel=7,
                       subsample_channels=8, block_order=(0, 0), share_macaron=True
                       ).validate()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "corpus"
    synthesize(out, 20, seed=5, jobs=2, progress=False)  # 16 train, 2 dev, 2 test
    return out


def options(corpus: Path, out: Path, **kw: object) -> TrainOptions:
    base = TrainOptions(data=corpus, out=out, steps=6, batch=4, lr=3e-3, warmup=2,
                        eval_every=3, threads=1, progress=False)
    return replace(base, **kw)  # type: ignore[arg-type]


def run_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def test_loss_goes_down_and_checkpoint_loads(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    losses: list[float] = []
    meta = fit(TINY, options(corpus, out, steps=40, batch=5, lr=5e-3, warmup=4,
                             eval_every=20, dev_limit=2),
               on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    model = load_checkpoint(out)
    assert model.cfg == TINY
    assert meta["step"] == read_checkpoint(out)["meta"]["step"] == 40
    assert 0.0 <= read_checkpoint(out)["meta"]["dev_cer"] <= 1.5
    state = torch.load(state_path(out), weights_only=True)
    assert state["step"] == 40 and state["optimizer"]["state"]


def test_interrupted_run_resumes_at_its_step(corpus: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    fit(TINY, options(corpus, whole))

    cut = tmp_path / "cut.pt"

    def interrupt(step: int, loss: float) -> None:
        if step == 4:  # after the checkpoint of step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(TINY, options(corpus, cut), on_step=interrupt)
    assert read_checkpoint(cut)["meta"]["step"] == 3
    steps: list[int] = []
    fit(None, options(corpus, cut, resume=True), on_step=lambda s, _: steps.append(s))
    assert steps == [4, 5, 6]
    assert read_checkpoint(cut)["meta"]["step"] == 6
    # batches, masks and dropout depend only on (seed, step): same weights as no stop
    a, b = load_checkpoint(whole).state_dict(), load_checkpoint(cut).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_resume_and_overwrite_mistakes(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    with pytest.raises(TrainError, match="does not exist"):
        fit(TINY, options(corpus, out, resume=True))
    fit(TINY, options(corpus, out, steps=2))
    with pytest.raises(TrainError, match="already exists"):
        fit(TINY, options(corpus, out))
    with pytest.raises(TrainError, match="already at step 2"):
        fit(None, options(corpus, out, steps=2, resume=True))
    with pytest.raises(TrainError, match="differs from the config"):
        fit(replace(TINY, d_model=16), options(corpus, out, steps=4, resume=True))
    state_path(out).unlink()
    with pytest.raises(TrainError, match=r"optimizer state .* is missing"):
        fit(None, options(corpus, out, steps=4, resume=True))


def test_init_fine_tunes_from_a_checkpoint(corpus: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    fit(TINY, options(corpus, base, steps=3))
    tuned = tmp_path / "tuned.pt"
    steps: list[int] = []
    fit(None, options(corpus, tuned, steps=2, init=base), on_step=lambda s, _: steps.append(s))
    assert steps == [1, 2]  # a new run: step 0, its own schedule, a fresh optimizer
    meta = read_checkpoint(tuned)["meta"]
    assert meta["init"] == str(base) and meta["step"] == 2
    assert load_checkpoint(tuned).cfg == TINY
    # resuming the fine-tuned run keeps where its weights came from
    fit(None, options(corpus, tuned, steps=3, resume=True))
    assert read_checkpoint(tuned)["meta"]["init"] == str(base)
    with pytest.raises(TrainError, match="has other parameters than"):
        fit(replace(TINY, d_model=16), options(corpus, tmp_path / "x.pt", init=base))
    # the streaming variant of the same network starts from the same weights
    streaming = replace(TINY, chunk_frames=2, left_chunks=2)
    fit(streaming, options(corpus, tmp_path / "s.pt", steps=1, init=base))
    assert load_checkpoint(tmp_path / "s.pt").cfg == streaming
    with pytest.raises(TrainError, match="do not go together"):
        fit(None, options(corpus, tuned, steps=4, resume=True, init=base))
    assert not (tmp_path / "x.pt").exists()


def test_distill_loss_is_the_temperature_scaled_kl_on_valid_frames() -> None:
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 5, 4, generator=gen)
    lens = torch.tensor([5, 3])
    assert float(distill_loss(teacher, teacher, lens, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 5, 4, generator=gen)
    p, q = (teacher / 2).softmax(-1), (student / 2).softmax(-1)
    kl = [float((p[b, t] * (p[b, t] / q[b, t]).log()).sum())
          for b in range(2) for t in range(int(lens[b]))]
    assert float(distill_loss(student, teacher, lens, 2.0)) == pytest.approx(
        4 * sum(kl) / len(kl), rel=1e-5)
    garbage = student.clone()
    garbage[1, 3:] = 1e4  # frames past an item's length do not count
    assert float(distill_loss(garbage, teacher, lens, 2.0)) == pytest.approx(
        float(distill_loss(student, teacher, lens, 2.0)), rel=1e-6)


def test_teacher_distils_into_a_smaller_student(corpus: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.pt"
    fit(replace(TINY, block_order=(0, 1), share_macaron=False), options(corpus, teacher))
    student = tmp_path / "student.pt"
    losses: list[float] = []
    fit(TINY, options(corpus, student, steps=30, batch=5, lr=5e-3, eval_every=30,
                      teacher=teacher, distill=1.0),  # the loss is the KL alone
        on_step=lambda _, loss: losses.append(loss))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    meta = read_checkpoint(student)["meta"]
    assert meta["options"]["teacher"] == str(teacher) and meta["options"]["distill"] == 1.0
    other = tmp_path / "other.pt"
    fit(replace(TINY, n_mels=32), options(corpus, other, steps=1))
    with pytest.raises(TrainError, match="has another n_mels than test-tiny"):
        fit(TINY, options(corpus, tmp_path / "x.pt", teacher=other))
    with pytest.raises(TrainError, match=r"--distill 1\.5 must be between 0 and 1"):
        fit(TINY, options(corpus, tmp_path / "x.pt", teacher=teacher, distill=1.5))
    assert not (tmp_path / "x.pt").exists()
    # a streaming student learns from the full-context teacher on its own frame grid
    streaming = replace(TINY, chunk_frames=2, left_chunks=2)
    fit(streaming, options(corpus, tmp_path / "s.pt", steps=2, teacher=teacher))
    with pytest.raises(TrainError, match="streams and test-tiny does not"):
        fit(TINY, options(corpus, tmp_path / "x.pt", teacher=tmp_path / "s.pt"))


def test_schedule_and_batch_plan() -> None:
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10) < 0.1
    plan = BatchPlan([float(i % 7) for i in range(20)], batch=3, world=2, seed=0)
    assert plan.steps_per_epoch == 3
    for step in range(6):  # ranks split each global batch; one epoch covers 18 items
        r0, r1 = plan.indices(step, 0), plan.indices(step, 1)
        assert len(r0) == len(r1) == 3 and not set(r0) & set(r1)
    epoch = [i for s in range(3) for r in (0, 1) for i in plan.indices(s, r)]
    assert len(set(epoch)) == 18
    again = BatchPlan([float(i % 7) for i in range(20)], batch=3, world=2, seed=0)
    assert again.indices(4, 1) == plan.indices(4, 1)


def test_torchrun_two_processes(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", "-m", "tinygen", "train", "--preset", "share-lowrank", "--data", str(corpus),
         "--out", str(out), "--steps", "3", "--batch", "2", "--eval-every", "3"],
        capture_output=True, text=True, env=run_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("saved ") == 1  # rank 0 alone reports and writes
    meta = read_checkpoint(out)["meta"]
    assert meta["world_size"] == 2 and meta["step"] == 3
    assert load_checkpoint(out).cfg.name == "share-lowrank"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt", "ddp.pt.state"]


def test_metrics() -> None:
    vocab = "_ ab"
    assert greedy_decode(np.eye(4)[[2, 2, 0, 2, 1, 3, 3, 0]], vocab) == "aa b"
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["x"]) == 1
    tally = Tally()
    tally.add("ab ab", "ab b")
    assert (tally.char_errors, tally.chars, tally.word_errors, tally.words) == (1, 5, 1, 2)

    def perfect(feats: np.ndarray) -> np.ndarray:  # a backend that spells "ab"
        return np.eye(4)[[2, 0, 3]]

    pairs = [(np.zeros((10, 40), np.float32), "ab")] * 3
    assert score(perfect, pairs, vocab).cer == 0.0
    assert score(perfect, [(pairs[0][0], "ba")], vocab).cer == 1.0


def test_window_rows_decode_the_whole_window() -> None:
    # A CTC model may spell the end of an utterance on the silence after it; a device
    # decodes every output frame of its window, and so does eval.
    from tinygen.speech.features import silence_value

    vocab = "_ ab"
    seen: list[np.ndarray] = []

    def late(window: np.ndarray) -> np.ndarray:  # "a" on frame 1, "b" on the last frame
        seen.append(window)
        return np.eye(4)[[0, 2, 0, 0, 0, 0, 0, 3]][None]

    backend = Window(frames=30).wrap(late)
    feats = np.ones((12, 40), np.float32)
    assert greedy_decode(backend(feats), vocab) == "ab"
    (window,) = seen
    assert window.shape == (1, 30, 40)
    assert (window[0, :12] == 1).all() and (window[0, 12:] == np.float32(silence_value())).all()
    backend(np.ones((50, 40), np.float32))  # longer than the window: cut to it
    assert seen[-1].shape == (1, 30, 40) and (seen[-1] == 1).all()


def test_eval_json_counts_a_corrupt_file(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    fit(TINY, options(corpus, tmp_path / "m.pt", steps=2))
    first = json.loads((data / "test.jsonl").read_text().splitlines()[0])
    (data / first["path"]).write_bytes(b"RIFF garbage")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run([sys.executable, "-m", "tinygen", "eval", str(tmp_path / "m.pt"),
                           "--data", str(data), "--calib", "2", "--json"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(run_env(), TMPDIR=str(scratch)))
    assert proc.returncode == 0, proc.stderr
    assert not any(scratch.iterdir())  # the host build it ran is cleaned up
    report = json.loads(proc.stdout)
    assert (report["split"], report["utterances"], report["skipped"]) == ("test", 1, 1)
    model = load_checkpoint(tmp_path / "m.pt")
    assert report["unique_params"] == unique_params(model)
    assert report["virtual_params"] == virtual_params(model)
    assert report["flash_bytes"] > 0 and report["arena_bytes"] > 0
    rows = {r["backend"]: r for r in report["rows"]}
    assert list(rows) == ["float", "float-window", "int8-reference", "host-c"]
    row = rows["float"]
    assert row["utterances"] == 1
    assert row["cer"] == pytest.approx(row["char_errors"] / row["chars"], abs=1e-6)
    # The C is bit-exact with the golden reference, so it makes exactly the same errors.
    assert rows["host-c"]["char_errors"] == rows["int8-reference"]["char_errors"]
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("tinygen: warning:")]
    assert len(warnings) == 1 and first["path"].split("/")[-1] in warnings[0]


def test_host_c_gives_the_golden_outputs_on_every_utterance(corpus: Path,
                                                           tmp_path: Path) -> None:
    """The eval's host-c backend (the C build run per utterance) against the int8 golden
    reference: the same logits, byte for byte, hence the same transcript, on each of the
    corpus's 20 utterances (not just the same error count)."""
    from tinygen.speech.data.dataset import Example, SpeechDataset, load_split
    from tinygen.speech.evaluate import compiled_backends

    fit(TINY, options(corpus, tmp_path / "m.pt", steps=6))
    model = load_checkpoint(tmp_path / "m.pt")
    utts = [u for split in ("train", "dev", "test")
            for u in load_split(corpus, split, model.cfg.vocab)]
    data = SpeechDataset(utts, model.cfg)
    examples = [(item.feats.numpy(), item.text) for item in (data[i] for i in range(len(data)))
                if isinstance(item, Example)]
    assert len(examples) == 20
    work = tmp_path / "work"
    work.mkdir()
    backends, _, _ = compiled_backends(model, examples, corpus, 0.0, 4, work)
    for feats, _ in examples:
        gold, c = backends["int8-reference"](feats), backends["host-c"](feats)
        np.testing.assert_array_equal(c, gold)


def test_deployment_window_places_speech_in_silence() -> None:
    import torch

    from tinygen.speech.data.dataset import deployment_window
    from tinygen.speech.features import silence_value

    feats = torch.randn(3, 50, 40, generator=torch.Generator().manual_seed(4))
    lengths = torch.tensor([50, 30, 10])
    out = deployment_window(feats, lengths, torch.Generator().manual_seed(0))
    assert out.shape[0] == 3 and 50 <= out.shape[1] <= 480 and out.shape[2] == 40
    # the window length spreads up to the longest deployment window
    sizes = {deployment_window(feats, lengths, torch.Generator().manual_seed(s),
                               frames=300).shape[1] for s in range(40)}
    assert max(sizes) <= 300 and max(sizes) > 200 and min(sizes) < 150
    for i, n in enumerate(lengths.tolist()):
        row = out[i]
        speech = (row != silence_value()).any(dim=1).nonzero().flatten()
        start = int(speech[0])
        assert torch.equal(row[start:start + n], feats[i, :n])  # the utterance, intact
        assert bool((row[:start] == silence_value()).all())
        assert bool((row[start + n:] == silence_value()).all())


def test_eval_streams_a_streaming_model_chunk_by_chunk(corpus: Path, tmp_path: Path) -> None:
    streaming = replace(TINY, chunk_frames=2, left_chunks=2)
    fit(streaming, options(corpus, tmp_path / "s.pt", steps=2))
    proc = subprocess.run([sys.executable, "-m", "tinygen", "eval", str(tmp_path / "s.pt"),
                           "--data", str(corpus), "--calib", "2", "--streaming", "--json"],
                          capture_output=True, text=True, timeout=600, env=run_env())
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["backend"]: r for r in report["rows"]}
    assert list(rows) == ["float", "float-stream", "int8-stream", "host-c-stream"]
    assert report["window_frames"] is None and report["streaming"]["chunk_frames"] == 2
    # the C step is bit-exact with the golden step over whole utterances
    assert rows["host-c-stream"]["char_errors"] == rows["int8-stream"]["char_errors"]
    assert rows["host-c-stream"]["chars"] == rows["float"]["chars"] > 0
    fit(TINY, options(corpus, tmp_path / "f.pt", steps=1))
    full = subprocess.run([sys.executable, "-m", "tinygen", "eval", str(tmp_path / "f.pt"),
                           "--data", str(corpus), "--streaming"],
                          capture_output=True, text=True, timeout=120, env=run_env())
    assert full.returncode == 2 and "does not stream" in full.stderr
