"""CTC training (``tinygen train --preset P --data DIR --out models/NAME.pt``).

- Loss: CTC over the characters of ``cfg.vocab``, blank = index 0.
- Augmentation: SpecAugment frequency and time masks
  (:func:`tinygen.speech.data.dataset.spec_augment`), and, for a share ``window_prob`` of
  the steps, the deployment window: utterances placed in digital silence with no padding
  mask, as a compiled model runs them
  (:func:`tinygen.speech.data.dataset.deployment_window`). A streaming model trains on
  every step as a stream meets speech: after ``stream_lead_ms`` of silence, whose outputs
  are not scored (:func:`tinygen.speech.data.dataset.stream_window`).
- Distillation (``--teacher CKPT``): the loss becomes ``(1 - w) * CTC + w * T^2 *
  KL(teacher || student)`` over the frame posteriors at temperature T, on the frames CTC
  scores. A 4x-subsampled teacher with the same front end and vocabulary emits one
  posterior per student frame, so a small shared model learns the alignments and the
  confusions of a larger unshared one.
- Optimiser: AdamW (no decay on biases and norms), linear warmup then cosine decay to
  ``MIN_LR_FACTOR`` of the peak, gradient clipping.
- Progress: a rich bar with the smoothed loss and the last dev CER; a log line per eval.
- Checkpoints: every ``save_every`` steps and at the end, ``out`` through
  :func:`tinygen.speech.checkpoint.save_checkpoint` (weights, step and dev scores in its meta) and
  ``out.state`` beside it (optimizer moments and step; plain tensors and numbers, loaded
  with ``torch.load(weights_only=True)``). ``--resume`` loads both and continues at the
  saved step.
- Determinism: the batches of step s, the SpecAugment masks and the dropout draws are pure
  functions of (seed, s, rank), so an interrupted run that resumes from its checkpoint
  takes the same steps as one that never stopped.
- Several processes: under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in
  DistributedDataParallel over gloo (CPU). Every step each rank takes its own ``--batch``
  items of one global batch; rank 0 alone evaluates, writes checkpoints and shows progress.

This module imports torch only inside the functions that train, so the command line
starts fast.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinygen.errors import TinygenError, float_arg, int_arg
from tinygen.speech.config import MAX_WINDOW_MS

if TYPE_CHECKING:
    import numpy as np
    import torch

    from tinygen.speech.config import ConformerConfig
    from tinygen.speech.data.dataset import SpeechDataset
    from tinygen.speech.model import Conformer

STATE_FORMAT = "tinygen-train-state"
STATE_VERSION = 1
MIN_LR_FACTOR = 0.05  # the cosine ends at 5% of the peak learning rate
CACHE_HOURS = 12.0  # keep features in memory for corpora up to this much audio (~58 MB/h)


class TrainError(TinygenError):
    """Training options or files that do not fit together."""


@dataclass(frozen=True)
class TrainOptions:
    data: Path  # synth corpus or LibriSpeech root
    out: Path  # checkpoint; its optimizer state goes to <out>.state
    steps: int = 3000  # total optimizer steps (a resumed run continues up to this)
    batch: int = 16  # utterances per step and process
    lr: float = 2e-3  # peak learning rate
    warmup: int | None = None  # warmup steps; None: min(500, steps // 10)
    weight_decay: float = 1e-2
    clip: float = 5.0  # max gradient norm
    eval_every: int = 250  # dev CER every N steps (and at the end)
    save_every: int | None = None  # checkpoint every N steps; None: eval_every
    dev_limit: int = 200  # dev utterances scored during training
    seed: int = 0
    resume: bool = False
    workers: int = 0  # DataLoader worker processes
    threads: int | None = None  # torch intra-op threads; None: torch's default
    progress: bool = True
    window_prob: float = 0.5  # share of steps trained on unmasked silence windows
    window_ms: float = 4800.0  # longest deployment window those steps draw
    init: Path | None = None  # start from these weights (fine-tuning); fresh optimizer
    teacher: Path | None = None  # distil from this checkpoint's frame posteriors
    distill: float = 0.5  # weight w of the distillation term (with a teacher)
    temperature: float = 2.0  # softmax temperature T of that term
    augment: float = 0.0  # share of training items given waveform augmentation
    noise: tuple[Path, ...] = ()  # background-noise WAVs the augmentation mixes in
    augment_kinds: tuple[str, ...] = ()  # the augmentation's steps kept (empty: all of them)
    noise_tail: float = 0.0  # share of augmented items given sustained background around them
    device: str = "cpu"  # torch device: cpu, cuda, cuda:N
    stream_lead_ms: float = 2560.0  # silence before each utterance of a streaming model

    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else min(500, self.steps // 10)

    def plain(self) -> dict[str, Any]:
        """The options as plain values (paths as strings), safe for weights_only loading."""
        def one(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, (tuple, list)):
                return [one(x) for x in v]
            return v

        return {k: one(v) for k, v in asdict(self).items()}


# -------------------------------------------------------------------- schedule
def lr_factor(step: int, total: int, warmup: int) -> float:
    """Multiplier of the peak rate at ``step``: linear warmup, then cosine."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * t))


def step_seed(seed: int, step: int, rank: int, stream: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1)[0])


class BatchPlan:
    """Which items each rank takes at each step, a pure function of (seed, step).

    An epoch is a seeded permutation, cut into windows of ``bucket`` global batches; each
    window is sorted by duration (less padding) and cut into global batches, whose order
    is shuffled. Rank r takes every world-th item of its step's global batch.
    """

    def __init__(self, durations: list[float], batch: int, world: int, seed: int,
                 bucket: int = 32) -> None:
        import numpy as np

        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch, self.world, self.seed, self.bucket = batch, world, seed, bucket
        self.per_step = batch * world
        self.steps_per_epoch = max(1, len(durations) // self.per_step)
        self._epoch = -1
        self._groups: list[np.ndarray] = []

    def _plan_epoch(self, epoch: int) -> list[np.ndarray]:
        import numpy as np

        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.durations))
        if len(perm) < self.per_step:  # a corpus smaller than one global batch repeats
            perm = np.resize(perm, self.per_step)
        perm = perm[:self.steps_per_epoch * self.per_step]
        groups = []
        window = self.per_step * self.bucket
        for w0 in range(0, len(perm), window):
            win = perm[w0:w0 + window]
            win = win[np.argsort(self.durations[win], kind="stable")]
            groups += [win[i:i + self.per_step] for i in range(0, len(win), self.per_step)]
        return [groups[int(i)] for i in rng.permutation(len(groups))]

    def indices(self, step: int, rank: int) -> list[int]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._groups, self._epoch = self._plan_epoch(epoch), epoch
        return [int(i) for i in self._groups[pos][rank::self.world]]


class _StepBatches:
    """A DataLoader batch_sampler: the rank's items for steps start..stop-1.

    With ``seed`` set, each item is ``(draw, index)``: ``draw`` seeds that item's waveform
    augmentation, a pure function of (seed, step, rank, position), so a resumed run
    augments exactly as one that never stopped."""

    def __init__(self, plan: BatchPlan, start: int, stop: int, rank: int,
                 seed: int | None = None) -> None:
        self.plan, self.start, self.stop, self.rank = plan, start, stop, rank
        self.seed = seed

    def __iter__(self) -> Iterator[list[int] | list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            items = self.plan.indices(step, self.rank)
            if self.seed is None:
                yield items
            else:
                yield [(step_seed(self.seed, step, self.rank, 2 + k), i)
                       for k, i in enumerate(items)]

    def __len__(self) -> int:
        return self.stop - self.start


# -------------------------------------------------------------- distributed
@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """torchrun sets RANK and WORLD_SIZE; a plain run is rank 0 of 1."""
        try:
            return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
        except ValueError:
            raise TrainError("RANK/WORLD_SIZE are not integers",
                             "launch with torchrun, or unset them") from None


# ---------------------------------------------------------------- state files
def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def _atomic_save(obj: Any, path: Path) -> None:
    from tinygen.speech.checkpoint import atomic_torch_save

    atomic_torch_save(obj, path)


def _load_state(path: Path, ckpt_step: int) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise TrainError(f"--resume: optimizer state {path} is missing",
                         "resume needs the .state file written beside the checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any damage: pickle, zip, truncation
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TrainError(f"--resume: optimizer state {path} is unreadable ({first[:100]})",
                         "delete it and the checkpoint to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"--resume: {path} is not a tinygen training state")
    if state.get("step") != ckpt_step:
        raise TrainError(f"--resume: {path} is at step {state.get('step')} but the "
                         f"checkpoint is at step {ckpt_step}",
                         "the run stopped between the two writes; delete both to start over")
    return state


# ------------------------------------------------------------------- training
def fit(cfg: ConformerConfig | None, opts: TrainOptions,
        on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train (or resume) and return the final meta; see the module docstring.

    ``cfg`` may be None with ``opts.resume`` (the checkpoint's config is used).
    ``on_step(step, loss)`` runs after every optimizer step on every rank.
    """
    import torch
    import torch.distributed as dist

    world = World.from_env()
    threads = torch.get_num_threads()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    init = world.size > 1 and not dist.is_initialized()
    if init:
        dist.init_process_group("gloo")
    try:
        return _fit(cfg, opts, world, on_step)
    finally:
        if init:
            dist.destroy_process_group()
        torch.set_num_threads(threads)


def _check(opts: TrainOptions) -> None:
    for name in ("steps", "batch", "eval_every", "dev_limit"):
        if getattr(opts, name) < 1:
            raise TrainError(f"--{name.replace('_', '-')} {getattr(opts, name)} is too small",
                             "give a positive number")
    if opts.save_every is not None and opts.save_every < 1:
        raise TrainError(f"--save-every {opts.save_every} is too small",
                         "give a positive number")
    if not opts.lr > 0:
        raise TrainError(f"--lr {opts.lr} must be positive")
    if opts.workers < 0:
        raise TrainError(f"--workers {opts.workers} must be >= 0")
    if opts.threads is not None and opts.threads < 1:
        raise TrainError(f"--threads {opts.threads} must be >= 1")
    if not 0.0 <= opts.window_prob <= 1.0:
        raise TrainError(f"--window-prob {opts.window_prob} must be between 0 and 1")
    if not opts.window_ms > 0:
        raise TrainError(f"--window-ms {opts.window_ms} must be positive")
    if not 0.0 <= opts.distill <= 1.0:
        raise TrainError(f"--distill {opts.distill} must be between 0 and 1")
    if not opts.temperature > 0:
        raise TrainError(f"--temperature {opts.temperature} must be positive")
    if not 0.0 <= opts.augment <= 1.0:
        raise TrainError(f"--augment {opts.augment} must be between 0 and 1")
    if opts.noise and opts.augment <= 0:
        raise TrainError("--noise is mixed in by the waveform augmentation",
                         "give --augment P too, e.g. --augment 0.5")
    if opts.augment_kinds:
        from tinygen.speech.data.augment import KINDS

        unknown = [k for k in opts.augment_kinds if k not in KINDS]
        if unknown:
            raise TrainError(f"--augment-kinds: unknown kind {unknown[0]!r}",
                             "choose from " + ", ".join(KINDS))
        if opts.augment <= 0:
            raise TrainError("--augment-kinds selects what the waveform augmentation applies",
                             "give --augment P too, e.g. --augment 0.5")
        if "noise" in opts.augment_kinds and not opts.noise:
            raise TrainError("--augment-kinds noise needs recordings to mix in",
                             "give --noise WAV...")
    if not 0.0 <= opts.noise_tail <= 1.0:
        raise TrainError(f"--noise-tail {opts.noise_tail} must be between 0 and 1")
    if opts.noise_tail > 0 and opts.augment <= 0:
        raise TrainError("--noise-tail applies to the items --augment picks",
                         "give --augment P too, e.g. --augment 0.5")
    for path in opts.noise:
        if not Path(path).is_file():
            raise TrainError(f"noise file {path} does not exist")
    if not opts.stream_lead_ms >= 0:
        raise TrainError(f"--stream-lead-ms {opts.stream_lead_ms} must be >= 0")
    if opts.device != "cpu":
        import torch

        try:
            dev = torch.device(opts.device)
        except RuntimeError:
            raise TrainError(f"--device {opts.device} is not a torch device",
                             "give cpu, cuda or cuda:N") from None
        if dev.type != "cuda":
            raise TrainError(f"--device {opts.device}: tinygen trains on cpu or cuda")
        if not torch.cuda.is_available():
            raise TrainError(f"--device {opts.device}: this torch sees no CUDA GPU",
                             "train on --device cpu")
        if world_size_env() > 1:
            raise TrainError(f"--device {opts.device} with several processes",
                             "run one process on the GPU (torchrun uses gloo on CPUs)")
    if opts.init is not None and opts.resume:
        raise TrainError("--init and --resume do not go together",
                         "--resume continues OUT; --init starts a new run from other weights")


def world_size_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def stream_lead(cfg: ConformerConfig, ms: float) -> int:
    """Whole chunks of silence in front of each utterance of a streaming model (at least
    ``ms``), so the chunk-masked pass starts from (close to) the silence state."""
    chunk_ms = cfg.chunk_feature_frames * 1000 * cfg.hop_length / cfg.sample_rate
    return math.ceil(ms / chunk_ms - 1e-9)


def _split_of(opts: TrainOptions, store: Any, split: str, vocab: str) -> list[Any]:
    from tinygen.speech.data.dataset import has_split, load_split

    if store is not None:
        return list(store.split(split))
    if split != "train" and not has_split(opts.data, split):
        return []
    return load_split(opts.data, split, vocab)


def _store(opts: TrainOptions, cfg: ConformerConfig) -> Any:
    """The feature file ``--data`` names, or None for a corpus folder."""
    from tinygen.audio.frontend import FrontendConfig
    from tinygen.speech.data.features import read_store

    if not Path(opts.data).is_file():
        return None
    store = read_store(opts.data)
    want = asdict(FrontendConfig.of(cfg))
    if store.frontend != want:
        differ = sorted(k for k in want if store.frontend.get(k) != want[k])
        raise TrainError(f"{opts.data} was made with another front end than {cfg.name} "
                         f"({', '.join(differ)})",
                         "make the feature file with `tinygen data features --preset ...` "
                         "for this model")
    if opts.augment > 0:
        raise TrainError("--augment needs the audio; a feature file holds only features",
                         "give the corpus folder as --data, or drop --augment")
    return store


def _start(cfg: ConformerConfig | None, opts: TrainOptions
           ) -> tuple[Conformer, int, dict[str, Any], dict[str, Any] | None]:
    """(model, start step, meta of the checkpoint, optimizer state or None)."""
    from tinygen.speech.checkpoint import load_checkpoint, model_from_checkpoint, read_checkpoint
    from tinygen.speech.model import build_model

    if not opts.resume:
        if opts.out.exists():
            raise TrainError(f"{opts.out} already exists",
                             "pass --resume to continue it, or choose another --out")
        if opts.init is not None:
            model = load_checkpoint(opts.init)
            if cfg is not None and cfg != model.cfg:
                # Another config with the same parameters (e.g. the streaming variant of a
                # full-context model: chunk masks and a causal conv, same weights).
                target = build_model(cfg, seed=opts.seed)
                try:
                    target.load_state_dict(model.state_dict(), strict=True)
                except RuntimeError:
                    raise TrainError(f"--preset {cfg.name} has other parameters than "
                                     f"{opts.init} ({model.cfg.name})",
                                     "drop --preset to fine-tune the checkpoint as it is, "
                                     "or pick a preset with the same shapes") from None
                model = target
            return model, 0, {"init": str(opts.init)}, None
        if cfg is None:
            raise TrainError("no model config", "give --preset NAME or --init CHECKPOINT")
        return build_model(cfg, seed=opts.seed), 0, {}, None
    if not opts.out.exists():
        raise TrainError(f"--resume: {opts.out} does not exist",
                         "drop --resume to start a new run")
    data = read_checkpoint(opts.out)
    meta = data.get("meta", {})
    model = model_from_checkpoint(data, opts.out)
    if cfg is not None and cfg != model.cfg:
        raise TrainError(f"--preset {cfg.name} differs from the config in {opts.out} "
                         f"({model.cfg.name})", "drop --preset to continue the checkpoint")
    step = meta.get("step")
    if not isinstance(step, int):
        raise TrainError(f"--resume: {opts.out} has no training step in its meta",
                         "it was not written by tinygen train")
    if step >= opts.steps:
        raise TrainError(f"{opts.out} is already at step {step} (--steps {opts.steps})",
                         "raise --steps to train further")
    return model, step, meta, _load_state(state_path(opts.out), step)


# Fields of the config that make two models' inputs and output frames the same.
_FRAME_FIELDS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "vocab")


def _teacher(path: Path | None, cfg: ConformerConfig) -> Conformer | None:
    """The teacher in eval mode, frozen; None without --teacher."""
    from tinygen.speech.checkpoint import load_checkpoint
    from tinygen.speech.config import SUBSAMPLE_PAD

    if path is None:
        return None
    teacher = load_checkpoint(path)
    differ = [f for f in _FRAME_FIELDS if getattr(teacher.cfg, f) != getattr(cfg, f)]
    if differ:
        raise TrainError(f"--teacher {path} ({teacher.cfg.name}) has another "
                         f"{', '.join(differ)} than {cfg.name}",
                         "distil from a model with the same front end and vocabulary")
    if teacher.cfg.streaming and not cfg.streaming:
        raise TrainError(f"--teacher {path} streams and {cfg.name} does not",
                         "distil a full-context student from a full-context teacher")
    if cfg.streaming and not teacher.cfg.streaming:
        # A full-context teacher keeps its attention and conv but takes the streaming
        # student's frame alignment (three silence frames in front): both then emit T // 4
        # frames, frame j over log-mel frames 4j-3 .. 4j+3.
        teacher.subsample.pad = SUBSAMPLE_PAD
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, lens: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the frame posteriors, the mean over the first
    ``lens[b]`` frames of each item; logits are (B, T', vocab)."""
    import torch

    t = temperature
    p_teacher = (teacher / t).log_softmax(-1)
    kl = (p_teacher.exp() * (p_teacher - (student / t).log_softmax(-1))).sum(-1)  # (B, T')
    valid = torch.arange(student.shape[1], device=student.device)[None, :] < lens[:, None]
    return kl[valid].mean() * t * t


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


def _fit(cfg: ConformerConfig | None, opts: TrainOptions, world: World,
         on_step: Callable[[int, float], None] | None) -> dict[str, Any]:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader

    from tinygen.speech.calib import window_frames
    from tinygen.speech.checkpoint import save_checkpoint
    from tinygen.speech.data.dataset import SkipLog, SpeechDataset, collate, stream_window
    from tinygen.speech.data.dataset import deployment_window as window
    from tinygen.speech.data.dataset import spec_augment as augment
    from tinygen.speech.summary import unique_params

    _check(opts)
    model, start, meta, state = _start(cfg, opts)
    cfg = model.cfg
    device = torch.device(opts.device)
    teacher = _teacher(opts.teacher, cfg)
    store = _store(opts, cfg)
    codes = None if store is None else store.codes
    train_utts = _split_of(opts, store, "train", cfg.vocab)
    if not train_utts:
        raise TrainError(f"{opts.data} has no training utterances",
                         "give a corpus whose train split is not empty")
    dev_utts = _split_of(opts, store, "dev", cfg.vocab)[:opts.dev_limit]
    hours = sum(u.duration or 0.0 for u in train_utts) / 3600
    train_ds = SpeechDataset(train_utts, cfg, cache=hours <= CACHE_HOURS,
                             augment=_wave_augment(opts, cfg.sample_rate),
                             augment_prob=opts.augment, features=codes)
    dev_ds = SpeechDataset(dev_utts, cfg, cache=True, features=codes)
    lead = stream_lead(cfg, opts.stream_lead_ms) if cfg.streaming else 0
    drop = lead * cfg.chunk_frames  # encoder frames of the silence lead, not scored

    model.to(device)
    if teacher is not None:
        teacher.to(device)
    model.train()
    net: torch.nn.Module = model
    if world.size > 1:
        net = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(_param_groups(model, opts.weight_decay), lr=opts.lr,
                                  betas=(0.9, 0.98), eps=1e-8)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    plan = BatchPlan(train_ds.durations(), opts.batch, world.size, opts.seed)
    loader = DataLoader(train_ds, batch_sampler=_StepBatches(
                            plan, start, opts.steps, world.rank,
                            seed=opts.seed if opts.augment > 0 else None),
                        collate_fn=collate, num_workers=opts.workers)
    save_every = opts.save_every or opts.eval_every
    window_max = window_frames(cfg, opts.window_ms)
    warmup = opts.warmup_steps()
    skips = SkipLog()
    report = _Report(opts, world, start, meta)
    report.intro(cfg.name, unique_params(model), len(train_ds), hours, len(dev_ds))
    loss_avg = meta.get("loss")
    with report:
        for step, batch in zip(range(start, opts.steps), loader, strict=True):
            skips.add(batch.skipped)
            torch.manual_seed(step_seed(opts.seed, step, world.rank, 0))  # dropout
            gen = torch.Generator().manual_seed(step_seed(opts.seed, step, world.rank, 1))
            lr = opts.lr * lr_factor(step, opts.steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if len(batch) == 0:  # every item was unusable: join the gradient all-reduce
                loss = net(torch.zeros(1, 16, cfg.n_mels, device=device)).sum() * 0.0
            else:
                feats = augment(batch.feats, batch.feat_lens, gen)
                mask: torch.Tensor | None = batch.feat_lens
                if cfg.streaming:  # as a stream from the silence state meets speech
                    feats = stream_window(feats, batch.feat_lens, gen, lead,
                                          cfg.chunk_feature_frames,
                                          max_tail=cfg.chunk_feature_frames)
                    mask = None
                elif float(torch.rand(1, generator=gen)) < opts.window_prob:
                    feats = window(feats, batch.feat_lens, gen,  # no mask, like a device
                                   frames=window_max)
                    mask = None
                feats = feats.to(device)
                if mask is not None:
                    mask = mask.to(device)
                logits = net(feats, mask)[:, drop:]  # (B, T', vocab)
                out_lens = (torch.full((len(batch),), logits.shape[1], dtype=torch.long)
                            if mask is None else model.output_lengths(mask.cpu()))
                log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T', B, vocab)
                loss = F.ctc_loss(log_probs, batch.labels.to(device), out_lens.to(device),
                                  batch.label_lens.to(device), blank=0, reduction="mean",
                                  zero_infinity=True)
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(feats, mask)[:, drop:]
                    loss = ((1 - opts.distill) * loss + opts.distill
                            * distill_loss(logits, target, out_lens.to(device),
                                           opts.temperature))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            if torch.isfinite(norm):
                optimizer.step()
            value = loss.detach().clone()
            if world.size > 1:
                dist.all_reduce(value)
                value /= world.size
            loss_avg = (float(value) if loss_avg is None
                        else 0.95 * loss_avg + 0.05 * float(value))
            done = step + 1
            if world.main:
                dev = None
                if dev_ds and (done % opts.eval_every == 0 or done == opts.steps):
                    dev = dev_scores(model, dev_ds, lead=lead)
                    model.train()
                report.step(done, loss_avg, lr, dev)
                if done % save_every == 0 or done == opts.steps:
                    meta = report.meta(cfg.name, done, loss_avg, skips.count)
                    opts.out.parent.mkdir(parents=True, exist_ok=True)
                    _atomic_save({"format": STATE_FORMAT, "version": STATE_VERSION,
                                  "step": done, "optimizer": optimizer.state_dict()},
                                 state_path(opts.out))
                    save_checkpoint(model, opts.out, meta)
            if on_step is not None:
                on_step(done, float(value))
    if skips.count:
        report.line(skips.summary())
    return report.meta(cfg.name, opts.steps, loss_avg, skips.count)


def _wave_augment(opts: TrainOptions, sample_rate: int
                  ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
    """The waveform augmentation of ``--augment`` (speed, VTLP, reverb, telephone band,
    background noise; :func:`tinygen.speech.data.augment.random_augment`), then, for a
    share ``--noise-tail`` of those items, sustained background around the speech up to
    the ``--window-ms`` window (:func:`~tinygen.speech.data.augment.noise_tail`), or None.
    The tail draws after the chain, so without it the chain draws as before."""
    if opts.augment <= 0:
        return None
    from tinygen.speech.data.augment import KINDS, load_noise, noise_tail, random_augment

    noises = []
    for path in opts.noise:
        try:
            noises.append(load_noise(path, sample_rate))
        except (RuntimeError, OSError, ValueError) as err:
            raise TrainError(f"cannot read noise file {path}: {str(err).splitlines()[0]}",
                             "give a WAV or FLAC recording") from None
    kinds = opts.augment_kinds or KINDS
    tail, most = opts.noise_tail, int(opts.window_ms * sample_rate / 1000)

    def run(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = random_augment(wave, rng, sample_rate, noises, kinds)
        if tail > 0 and rng.random() < tail:
            y = noise_tail(y, rng, sample_rate, noises, max_samples=most)
        return y
    return run


def dev_scores(model: Conformer, dev: SpeechDataset, batch: int = 32, lead: int = 0
               ) -> dict[str, float]:
    """Greedy-decoded CER and WER of the model (in eval mode) on a dataset. A streaming
    model reads each utterance after ``lead`` chunks of silence, as a stream from the
    silence state does (:func:`stream_lead`), and decodes its whole chunks."""
    import torch

    from tinygen.speech.data.dataset import Example, collate
    from tinygen.speech.evaluate import Tally, greedy_decode
    from tinygen.speech.features import silence_value

    model.eval()
    cfg = model.cfg
    device = next(model.parameters()).device
    items = [x for x in (dev[i] for i in range(len(dev))) if isinstance(x, Example)]
    items.sort(key=lambda x: x.feats.shape[0])
    tally = Tally()
    with torch.no_grad():
        for b0 in range(0, len(items), batch):
            chunk = collate(items[b0:b0 + batch])
            if cfg.streaming:
                n = cfg.chunk_feature_frames
                t = -(-chunk.feats.shape[1] // n) * n
                x = torch.full((len(chunk), (lead * n) + t, cfg.n_mels), silence_value())
                for i, length in enumerate(chunk.feat_lens.tolist()):
                    x[i, lead * n:lead * n + length] = chunk.feats[i, :length]
                logits = model(x.to(device))[:, lead * cfg.chunk_frames:]
                lens = -(-chunk.feat_lens // n) * cfg.chunk_frames
            else:
                logits = model(chunk.feats.to(device), chunk.feat_lens.to(device))
                lens = model.output_lengths(chunk.feat_lens)
            logits = logits.cpu()
            for b, text in enumerate(chunk.texts):
                tally.add(text, greedy_decode(logits[b, :int(lens[b])].numpy(),
                                              cfg.vocab))
    return {"cer": tally.cer, "wer": tally.wer}


# ------------------------------------------------------------------- progress
class _Report:
    """Rank 0's progress bar, log lines and checkpoint meta; silent on other ranks."""

    def __init__(self, opts: TrainOptions, world: World, start: int,
                 meta: dict[str, Any]) -> None:
        self.opts, self.world, self.start = opts, world, start
        init = opts.init if opts.init is not None else meta.get("init")
        self.init = None if init is None else str(init)  # kept across --resume
        self.dev: dict[str, float] | None = (
            {"cer": meta["dev_cer"], "wer": meta["dev_wer"]}
            if isinstance(meta.get("dev_cer"), float) and isinstance(meta.get("dev_wer"), float)
            else None)
        self.bar: Any = None
        self.task: Any = None
        self.console: Any = None
        if world.main:
            from rich.console import Console

            self.console = Console(stderr=True)

    def __enter__(self) -> _Report:
        if not (self.world.main and self.opts.progress):
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"),
                            TextColumn("dev CER {task.fields[cer]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=self.console)
        self.task = self.bar.add_task("train", total=self.opts.steps, completed=self.start,
                                      loss="-", cer=self._cer())
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _cer(self) -> str:
        return f"{100 * self.dev['cer']:.1f}%" if self.dev else "-"

    def line(self, text: str) -> None:
        if self.world.main and self.opts.progress:
            (self.bar.console if self.bar is not None else self.console).print(text)

    def intro(self, name: str, params: int, n_train: int, hours: float, n_dev: int) -> None:
        what = (f"resuming at step {self.start}" if self.start
                else f"fine-tuning {self.init}" if self.init else "training")
        self.line(f"{what}: {name} ({params:,} unique params) on {n_train} utterances "
                  f"({hours * 60:.1f} min), dev {n_dev}; {self.world.size} process(es) x "
                  f"batch {self.opts.batch}; {self.opts.steps} steps")

    def step(self, done: int, loss: float, lr: float, dev: dict[str, float] | None) -> None:
        if dev is not None:
            self.dev = dev
            self.line(f"step {done}/{self.opts.steps}  loss {loss:.3f}  dev CER "
                      f"{100 * dev['cer']:.1f}%  WER {100 * dev['wer']:.1f}%  lr {lr:.2e}")
        if self.bar is not None:
            self.bar.update(self.task, completed=done, loss=f"{loss:.3f}", cer=self._cer())

    def meta(self, name: str, step: int, loss: float | None, skipped: int) -> dict[str, Any]:
        return {
            "step": step,
            "loss": loss,
            "dev_cer": self.dev["cer"] if self.dev else None,
            "dev_wer": self.dev["wer"] if self.dev else None,
            "preset": name,
            "world_size": self.world.size,
            "skipped_audio": skipped,
            "init": self.init,
            "options": self.opts.plain(),
        }


# ------------------------------------------------------------------------ CLI
def streaming_variant(cfg: ConformerConfig | None, opts: TrainOptions,
                      chunk: int | None, left: int | None) -> ConformerConfig:
    """The preset's (or --init checkpoint's) config made to stream with chunk C, left L."""
    import dataclasses

    from tinygen.speech.checkpoint import load_checkpoint

    if cfg is None:
        if opts.init is None:
            raise TrainError("--chunk-frames/--left-chunks need a model to change",
                             "give --preset NAME or --init CHECKPOINT")
        cfg = load_checkpoint(opts.init).cfg
    return dataclasses.replace(
        cfg, name=cfg.name if cfg.streaming else f"{cfg.name}-stream",
        chunk_frames=cfg.chunk_frames if chunk is None else chunk,
        left_chunks=cfg.left_chunks if left is None else left).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from tinygen.speech.config import load_preset
    from tinygen.speech.data.dataset import warnings_as_lines

    opts = TrainOptions(data=args.data, out=args.out, steps=args.steps, batch=args.batch,
                        lr=args.lr, warmup=args.warmup, eval_every=args.eval_every,
                        save_every=args.save_every, dev_limit=args.dev_limit,
                        seed=args.seed, resume=args.resume, workers=args.workers,
                        threads=args.threads, progress=not args.quiet,
                        window_prob=args.window_prob, window_ms=args.window_ms,
                        init=args.init, teacher=args.teacher, distill=args.distill,
                        temperature=args.temperature, augment=args.augment,
                        noise=tuple(args.noise), augment_kinds=tuple(args.augment_kinds),
                        noise_tail=args.noise_tail,
                        device=args.device,
                        stream_lead_ms=args.stream_lead_ms)
    cfg = load_preset(args.preset) if args.preset else None
    if args.chunk_frames is not None or args.left_chunks is not None:
        cfg = streaming_variant(cfg, opts, args.chunk_frames, args.left_chunks)
    with warnings_as_lines():
        meta = fit(cfg, opts)
    if World.from_env().main:
        cer = meta["dev_cer"]
        print(f"saved {args.out} (step {meta['step']}, loss {meta['loss']:.3f}, dev CER "
              f"{'-' if cer is None else f'{100 * cer:.1f}%'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tinygen train`` to the top-level subcommands."""
    p = sub.add_parser(
        "train", help="train a preset with CTC on a speech corpus",
        description="Train a model preset with character CTC and SpecAugment. Runs under "
                    "torchrun for several processes (DistributedDataParallel, gloo); "
                    "--batch is per process.")
    p.add_argument("--preset", metavar="P", help="model preset (see `tinygen presets`); "
                   "optional with --resume")
    p.add_argument("--chunk-frames", type=int, default=None, metavar="C",
                   help="make the model stream: chunks of C encoder frames (40 ms each), "
                        "with --left-chunks of attention context (docs/streaming.md)")
    p.add_argument("--left-chunks", type=int, default=None, metavar="L",
                   help="chunks of left context a streaming model attends to")
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="a corpus from `tinygen data synth`/`import`/`merge`, a LibriSpeech "
                        "root, or a feature file from `tinygen data features`")
    p.add_argument("--out", type=Path, required=True, metavar="PATH",
                   help="checkpoint to write, e.g. models/NAME.pt (+ PATH.state)")
    d = TrainOptions(data=Path(), out=Path())
    p.add_argument("--steps", type=int, default=d.steps, metavar="N",
                   help=f"total optimizer steps (default {d.steps})")
    p.add_argument("--batch", type=int, default=d.batch, metavar="B",
                   help=f"utterances per step and process (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, metavar="LR",
                   help=f"peak learning rate (default {d.lr})")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="warmup steps (default min(500, steps/10))")
    p.add_argument("--eval-every", type=int, default=d.eval_every, metavar="N",
                   help=f"dev CER every N steps (default {d.eval_every})")
    p.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="checkpoint every N steps (default: --eval-every)")
    p.add_argument("--dev-limit", type=int, default=d.dev_limit, metavar="N",
                   help=f"dev utterances scored while training (default {d.dev_limit})")
    p.add_argument("--resume", action="store_true",
                   help="continue PATH from its saved step")
    p.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=d.seed, metavar="S",
                   help="initial weights, batch order, augmentation (default 0)")
    p.add_argument("--workers", type=int, default=d.workers, metavar="N",
                   help="DataLoader worker processes (default 0)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads per process (default: torch's; small models on a "
                        "busy machine often run fastest with 1)")
    p.add_argument("--window-prob", type=float, default=d.window_prob, metavar="P",
                   help="full-context models: share of steps on unmasked silence windows, "
                        f"as a compiled model runs (default {d.window_prob}; a streaming "
                        "model trains every step after --stream-lead-ms of silence)")
    p.add_argument("--window-ms", type=float_arg(1.0, MAX_WINDOW_MS), default=d.window_ms,
                   metavar="MS",
                   help="longest window those steps draw: the longest window you will "
                        f"build for (default {d.window_ms:g})")
    p.add_argument("--init", type=Path, default=None, metavar="CKPT",
                   help="start from the weights of CKPT (fine-tuning, e.g. a shipped model "
                        "on your own data) with a fresh optimizer and schedule")
    p.add_argument("--teacher", type=Path, default=None, metavar="CKPT",
                   help="distil from CKPT's frame posteriors (same front end and vocabulary, "
                        "e.g. models/baseline-tiny.pt)")
    p.add_argument("--distill", type=float, default=d.distill, metavar="W",
                   help=f"weight of the distillation term (default {d.distill})")
    p.add_argument("--temperature", type=float, default=d.temperature, metavar="T",
                   help=f"softmax temperature of the distillation term (default "
                        f"{d.temperature:g})")
    p.add_argument("--augment", type=float_arg(0.0, 1.0), default=d.augment, metavar="P",
                   help="share of training items given waveform augmentation: speed, VTLP, "
                        "reverb, telephone band, --noise (default 0; docs/training.md)")
    p.add_argument("--noise", type=Path, nargs="+", default=[], metavar="WAV",
                   help="background-noise recordings that --augment mixes in at 5-25 dB SNR")
    p.add_argument("--augment-kinds", type=lambda v: [k for k in v.split(",") if k],
                   default=[], metavar="K[,K...]",
                   help="keep only these steps of the augmentation: speed, vtlp, reverb, "
                        "telephone, noise (default: all; to measure what each one does)")
    p.add_argument("--noise-tail", type=float_arg(0.0, 1.0), default=d.noise_tail, metavar="P",
                   help="share of the --augment items given 0.5-3 s of sustained background "
                        "(their own room tone or --noise) around the speech, up to --window-ms, "
                        "so noise the gate lets through reads as nothing (default 0)")
    p.add_argument("--stream-lead-ms", type=float, default=d.stream_lead_ms, metavar="MS",
                   help="streaming models: silence in front of each utterance, so training "
                        "starts where a stream starts, from the silence state (default "
                        f"{d.stream_lead_ms:g}; docs/streaming.md)")
    p.add_argument("--device", default=d.device, metavar="DEV",
                   help="torch device to train on: cpu (default), cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=cmd_train)
