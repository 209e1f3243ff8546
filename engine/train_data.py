"""The data side of a training run (:mod:`engine.train`): hold-outs by source photo, the
training sets and their sampling weights, and the batches of an epoch (per-crop DataLoader or
batched on the device), with the sampler state a resumed run restores."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, WeightedRandomSampler

from engine.data import DATASETS, CrackSegDataset, Sample, default_data_root, load_dataset


def _split(samples: list, fraction: float, seed: int,
           group: Callable[[str], str] | None = None) -> tuple[list, list]:
    """Deterministic hold-out of about ``fraction`` of ``samples``: returns (train, holdout).

    With ``group`` (stem -> source photo) whole photos are held out, shuffled with ``seed``
    and taken until at least ``round(len * fraction)`` images are out, so that tiles of one
    photo never sit on both sides (they are near-duplicates: a per-image hold-out then
    measures recall of photos seen in training, not of new ones). Without ``group``, single
    images are held out.
    """
    k = max(1, round(len(samples) * fraction)) if fraction > 0 else 0
    if group is None:
        idx = list(range(len(samples)))
        random.Random(seed).shuffle(idx)
        hold = set(idx[:k])
    else:
        photos: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            photos.setdefault(group(s.stem), []).append(i)
        names = sorted(photos)
        random.Random(seed).shuffle(names)
        hold = set()
        for name in names:
            if len(hold) >= k or len(hold) + len(photos[name]) >= len(samples):
                break  # (never hold out every image)
            hold.update(photos[name])
    return ([s for i, s in enumerate(samples) if i not in hold],
            [s for i, s in enumerate(samples) if i in hold])


def holdout_samples(name: str, training: dict, data_root: Path | None = None) -> list[Sample]:
    """The hold-out a training run validated on, ``"<dataset>-holdout"`` (e.g.
    ``deepcrack-train-holdout``), rebuilt from the card's ``training`` block (its
    ``holdout_fraction``, ``seed`` and ``holdout_by``; cards without ``holdout_by`` held out
    single images).

    Raises:
        ValueError: ``name`` is not a hold-out of a catalogue dataset that gets one.
    """
    base = name.removesuffix("-holdout")
    if base == name or base not in DATASETS or DATASETS[base].has_val_split:
        raise ValueError(f"{name!r} is not a training hold-out; hold-outs are "
                         f"<dataset>-holdout of a set without its own val split, e.g. "
                         f"deepcrack-train-holdout or masonry-holdout.")
    samples = _load(base, Path(data_root) if data_root else default_data_root(), None)
    by = training.get("holdout_by", "image")
    group = DATASETS[base].source_photo if by == "photo" else None
    return _split(samples, training.get("holdout_fraction", 0.1), training.get("seed", 0),
                  group)[1]


def _load(name: str, data_root: Path, limit: int | None) -> list[Sample]:
    return load_dataset(name, data_root, limit)[0]


class EpochBatches:
    """One epoch of training batches per call (dicts of ``image``, ``mask``, ``weight``;
    ``config.samples_per_epoch // config.batch_size`` of them), with the sampler's random
    state (:meth:`state_dict` / :meth:`load_state_dict`) for a resumed run."""

    def __init__(self, make: Callable, generators: list[torch.Generator]):
        self._make, self._generators = make, generators

    def __call__(self):
        return self._make()

    def state_dict(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self._generators]

    def load_state_dict(self, states: list[torch.Tensor]) -> None:
        for g, st in zip(self._generators, states, strict=True):
            g.set_state(st)


def training_batches(config: Any,
                     parts: list[tuple[list[Sample], float, tuple[float, float]]]) -> EpochBatches:
    """An :class:`EpochBatches` giving one epoch of training batches from ``parts``:
    ``(samples, sampling_weight, zoom_range)`` per training set, sampled by weight.

    ``config.augment``: ``"per-crop"``, a DataLoader over :class:`CrackSegDataset` (with
    ``config.workers`` processes), or ``"batched"``, a
    :class:`engine.batch_augment.BatchCropSampler` on ``config.device``.
    """
    steps = config.samples_per_epoch // config.batch_size
    if config.augment == "batched":
        from engine.batch_augment import BatchCropSampler

        crops = BatchCropSampler(parts, config.crop_size, config.planking_weight,
                                 config.device, config.seed)
        return EpochBatches(lambda: crops.batches(steps, config.batch_size),
                            crops.generators)
    datasets, weights = [], []
    for samples, w, zoom in parts:
        datasets.append(CrackSegDataset(samples, config.crop_size, zoom,
                                        config.planking_weight, config.style_augment))
        weights += [w / len(samples)] * len(samples)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = WeightedRandomSampler(weights, config.samples_per_epoch, replacement=True,
                                    generator=generator)
    loader = DataLoader(ConcatDataset(datasets), batch_size=config.batch_size,
                        sampler=sampler, num_workers=config.workers,
                        persistent_workers=config.workers > 0,
                        pin_memory=config.device.startswith("cuda"), drop_last=True)
    return EpochBatches(lambda: loader, [generator])


def _training_data(config: Any, data_root: Path) -> tuple[list, dict[str, list[Sample]]]:
    """``(parts, val_sets)``: per training set ``(samples, sampling_weight, zoom_range)`` (as
    :func:`training_batches` takes them), and the validation sets by name, the hold-outs of
    sets without their own validation split (``"<name>-holdout"``) first."""
    parts, val_sets = [], {}
    for name, w in config.train_sets.items():
        samples = _load(name, data_root, config.max_images_per_set)
        has_val_split = DATASETS[name].has_val_split  # UAV75, rockfracture, negatives
        if not has_val_split and config.holdout_fraction > 0:
            group = DATASETS[name].source_photo if config.holdout_by == "photo" else None
            samples, hold = _split(samples, config.holdout_fraction, config.seed, group)
            if hold:
                val_sets[f"{name}-holdout"] = hold
        parts.append((samples, w, zoom_range_for(config, name)))
    for name in config.val_sets:
        val_sets[name] = _load(name, data_root, config.max_images_per_set)
    return parts, val_sets


def zoom_range_for(config: Any, name: str) -> tuple[float, float]:
    """The zoom range training set ``name`` is augmented with (none for native-scale sets)."""
    return (1.0, 1.0) if name in config.native_scale_sets else config.zoom_range


