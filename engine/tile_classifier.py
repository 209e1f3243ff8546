"""Crack / no-crack tile classifier: seed 004's transfer table, measured the way the seed does.

The seed paper (``../shared/docs/papers/transfer-learning-slope-surface-cracks.txt``) trains
image classifiers on a concrete crack set and fine-tunes them on a small slope set: LeNet5 on
slope tiles reaches 72.5 % without transfer and 98.1 % with it. Here the same question is asked
of an EfficientNet-Lite0 encoder with a small head (global average pool, dropout, one logit),
on ``TILE`` x ``TILE`` px tiles:

* **slope tiles**: rock-face fracture photos (``rockfracture-*``; the only labelled slope data,
  AGPL-3.0) cut into a grid, plus the reviewed crack-free terrain cells of the brighton_beach
  drone photos (``terrain-negatives-*``);
* **concrete tiles** (the transfer source): DeepCrack and masonry.

A tile is **crack** when at least :data:`CRACK_MIN_FRACTION` of its pixels are labelled crack,
**no crack** when none is, and left out in between (a few stray label pixels at a tile edge are
neither). Training draws balanced batches (half of each class) with flips, 90-degree turns and
a mild colour jitter; the kept weights are those of the best validation balanced accuracy.

Three starts, as the seed's table: random init, ImageNet, ImageNet -> concrete -> slope
(:func:`transfer_table`). Accuracy is reported on the test split with balanced accuracy beside
it, since the slope test tiles are mostly crack-free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from engine.data import IMAGENET_MEAN, IMAGENET_STD, Sample

#: Tile side in pixels (the classifier's input).
TILE = 128
#: A tile with at least this fraction of crack pixels is a crack tile (0.5 %: 82 px of a 128 px
#: tile, a 2 px wide fracture about 40 px long); with none it is crack-free; between, left out.
CRACK_MIN_FRACTION = 0.005
LITE0 = "efficientnet-lite0"

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class TileClassifier(nn.Module):
    """EfficientNet-Lite0 encoder (the segmentation models' encoder, so segmentation and
    classification weights transfer both ways) + global average pool + dropout + one logit.

    Input ``(B, 3, H, W)`` ImageNet-normalised float (H, W multiples of 32); output ``(B,)``
    crack logits (``sigmoid``: probability that the tile shows a crack).
    """

    def __init__(self, dropout: float = 0.2):
        super().__init__()
        from engine.models import build_model
        from engine.train import TrainConfig, model_architecture

        arch = model_architecture(TrainConfig(encoder=LITE0))
        self.encoder = build_model(arch).net.encoder
        channels = self.encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)[-1]
        return self.head(F.adaptive_avg_pool2d(f, 1).flatten(1)).squeeze(1)


def tile_label(mask_tile: np.ndarray) -> int | None:
    """1 (crack), 0 (crack-free) or ``None`` (left out) for a tile's bool crack mask."""
    frac = float(mask_tile.mean())
    if frac >= CRACK_MIN_FRACTION:
        return 1
    return 0 if frac == 0.0 else None


@dataclass
class Tiles:
    """Labelled tiles: ``images`` ``(N, TILE, TILE, 3)`` uint8 RGB, ``labels`` ``(N,)`` int64
    (1 crack), ``source`` the dataset name of each tile."""

    images: np.ndarray
    labels: np.ndarray
    source: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {"crack": int(self.labels.sum()), "no_crack": int((self.labels == 0).sum())}


def cut_tiles(samples: Sequence[Sample], name: str, stride: int | None = None,
              tile: int = TILE) -> Tiles:
    """A grid of ``tile`` px tiles (``stride``, default ``tile``: no overlap) over each sample,
    labelled by :func:`tile_label`; left-out tiles are dropped. Images smaller than a tile are
    skipped."""
    stride = stride or tile
    imgs, labels = [], []
    for s in samples:
        rows, cols = s.mask.shape
        for r in range(0, rows - tile + 1, stride):
            for c in range(0, cols - tile + 1, stride):
                lab = tile_label(s.mask[r:r + tile, c:c + tile])
                if lab is None:
                    continue
                imgs.append(s.image[r:r + tile, c:c + tile])
                labels.append(lab)
    images = np.stack(imgs) if imgs else np.zeros((0, tile, tile, 3), np.uint8)
    return Tiles(images, np.asarray(labels, np.int64), [name] * len(labels))


def join(*parts: Tiles) -> Tiles:
    return Tiles(np.concatenate([p.images for p in parts]),
                 np.concatenate([p.labels for p in parts]),
                 [s for p in parts for s in p.source])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` ImageNet-normalised float32."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - _MEAN) / _STD


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-batch flips and 90-degree turn, per-image brightness/contrast jitter (+-20 %), on
    ``(B, 3, H, W)`` uint8-scaled [0, 1] floats."""
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(3)
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(2)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, (2, 3))
    b = 1 + 0.4 * (torch.rand(len(x), 1, 1, 1, generator=gen) - 0.5)
    c = 1 + 0.4 * (torch.rand(len(x), 1, 1, 1, generator=gen) - 0.5)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * c + m * b).clamp(0, 1)


@torch.no_grad()
def predict(model: TileClassifier, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Crack probability per tile, ``(N,)`` float32, for ``(N, H, W, 3)`` uint8 tiles."""
    model.eval()
    out = [torch.sigmoid(model(to_tensor(images[i:i + batch])))
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def scores(prob: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean of the two class recalls), precision and recall of
    the crack class at ``threshold``, and the tile counts."""
    pred = prob >= threshold
    pos, neg = labels == 1, labels == 0
    tp, tn = int((pred & pos).sum()), int((~pred & neg).sum())
    fp, fn = int((pred & neg).sum()), int((~pred & pos).sum())
    rec = tp / max(1, tp + fn)
    spec = tn / max(1, tn + fp)
    return {"accuracy": (tp + tn) / max(1, len(labels)), "balanced_accuracy": (rec + spec) / 2,
            "precision": tp / max(1, tp + fp), "recall": rec, "specificity": spec,
            "tiles": len(labels), "crack_tiles": int(pos.sum()), "no_crack_tiles": int(neg.sum())}


@dataclass
class TileRun:
    """A trained classifier's record: its start, steps, minutes, validation history, best
    step and the kept weights."""

    start: str
    steps: int
    minutes: float
    history: list[dict]
    best_step: int
    best_state: dict


def train_tiles(model: TileClassifier, train: Tiles, val: Tiles, *, start: str,
                steps: int = 600, batch_size: int = 32, lr: float = 1e-3,
                eval_every: int = 100, seed: int = 0, progress: bool = True) -> TileRun:
    """Train ``model`` on balanced batches of ``train``; validate every ``eval_every`` steps
    (balanced accuracy on ``val``); keep the best weights (loaded back into ``model``).

    Adam, cosine learning rate from ``lr`` to 1 %, BCE loss.

    Raises:
        ValueError: ``train`` lacks one of the two classes.
    """
    pos = np.flatnonzero(train.labels == 1)
    neg = np.flatnonzero(train.labels == 0)
    if not len(pos) or not len(neg):
        raise ValueError(f"Training tiles need both classes; got {train.counts()}.")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    history, best, best_step, best_state = [], -1.0, 0, None
    t0 = time.perf_counter()
    half = batch_size // 2
    for step in tqdm(range(1, steps + 1), desc=f"tiles ({start})", disable=not progress,
                     leave=False):
        model.train()
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])
        x = torch.from_numpy(train.images[idx]).permute(0, 3, 1, 2).float() / 255.0
        x = (_augment(x, gen) - _MEAN) / _STD
        y = torch.from_numpy(train.labels[idx]).float()
        for g in opt.param_groups:
            g["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            s = scores(predict(model, val.images), val.labels)
            history.append({"step": step, "loss": round(float(loss.detach()), 4),
                            "val_accuracy": round(s["accuracy"], 4),
                            "val_balanced_accuracy": round(s["balanced_accuracy"], 4)})
            if s["balanced_accuracy"] > best:
                best, best_step = s["balanced_accuracy"], step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return TileRun(start, steps, round((time.perf_counter() - t0) / 60, 2), history, best_step,
                   best_state)


def new_classifier(start: str, init_state: dict | None = None) -> TileClassifier:
    """A classifier for ``start``: ``"random"``, ``"imagenet"`` (encoder from the ImageNet
    weights of :mod:`engine.pretrained`), or ``"state"`` (``init_state``, a whole classifier's
    state dict, e.g. the concrete stage's)."""
    model = TileClassifier()
    if start == "imagenet":
        from engine.pretrained import imagenet_encoder_state

        state, _ = imagenet_encoder_state(LITE0)
        model.encoder.load_state_dict(state, strict=True)
    elif start == "state":
        model.load_state_dict(init_state)
    elif start != "random":
        raise ValueError(f"start must be random, imagenet or state; got {start!r}.")
    return model


#: Where the shipped tile gate lives (its own folder: it is no segmentation model, so the
#: segmentation registry does not list it).
GATE_DIR = Path(__file__).resolve().parent / "weights" / "tile_gate"
GATE_NAME = "crackwatch-tilecls-lite0-slope"
SEED_TABLE = {"paper": "transfer-learning-slope-surface-cracks (seed 004)",
              "model": "LeNet5", "without_transfer": 0.725, "with_transfer": 0.981}


def slope_tiles(split: str, data_root=None, limit: int | None = None) -> Tiles:
    """Slope tiles of ``split`` (train / val / test): rockfracture tiles and terrain-negative
    tiles (:func:`cut_tiles`, no overlap)."""
    from engine.data import load_dataset

    rock = load_dataset(f"rockfracture-{split}", data_root, limit)[0]
    terrain = load_dataset(f"terrain-negatives-{split}", data_root, limit)[0]
    return join(cut_tiles(rock, f"rockfracture-{split}"),
                cut_tiles(terrain, f"terrain-negatives-{split}"))


def concrete_tiles(data_root=None, limit: int | None = None) -> tuple[Tiles, Tiles]:
    """``(train, val)`` concrete tiles: DeepCrack train and masonry, every 8th image held out
    for validation (the transfer source's own stopping rule)."""
    from engine.data import load_dataset

    train, val = [], []
    for name in ("deepcrack-train", "masonry"):
        samples = load_dataset(name, data_root, limit)[0]
        train.append(cut_tiles([s for i, s in enumerate(samples) if i % 8], name))
        val.append(cut_tiles([s for i, s in enumerate(samples) if not i % 8], name))
    return join(*train), join(*val)


def transfer_table(*, data_root=None, steps: int = 600, concrete_steps: int | None = None,
                   batch_size: int = 32, limit: int | None = None, threads: int | None = None,
                   progress: bool = True) -> tuple[dict, dict[str, TileRun]]:
    """Seed 004's table for the Lite0 tile classifier: train on slope tiles from random init,
    from ImageNet, and from ImageNet -> concrete (``concrete_steps`` on concrete tiles first);
    score each on the slope test tiles.

    Returns ``(report, runs)``: ``report["rows"]`` one dict per start with test accuracy,
    balanced accuracy, precision, recall, minutes and best step; ``runs`` the trained runs by
    start name (``"concrete"`` too).
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    train, val, test = (slope_tiles(s, data_root, limit) for s in ("train", "val", "test"))
    c_train, c_val = concrete_tiles(data_root, limit)
    runs: dict[str, TileRun] = {}
    concrete = new_classifier("imagenet")
    runs["concrete"] = train_tiles(concrete, c_train, c_val, start="imagenet -> concrete",
                                   steps=concrete_steps or steps, batch_size=batch_size,
                                   progress=progress)
    rows = []
    for start, label in (("random", "random init"), ("imagenet", "ImageNet"),
                         ("state", "ImageNet -> concrete -> slope")):
        torch.manual_seed(0)
        model = new_classifier(start, runs["concrete"].best_state if start == "state" else None)
        run = train_tiles(model, train, val, start=label, steps=steps, batch_size=batch_size,
                          progress=progress)
        runs[start] = run
        prob = predict(model, test.images)
        s = scores(prob, test.labels)
        rock = np.array([src.startswith("rockfracture") for src in test.source])
        r = scores(prob[rock], test.labels[rock])
        rows.append({"start": label, **{k: round(v, 4) if isinstance(v, float) else v
                                        for k, v in s.items()},
                     "rock_tiles_only": {k: round(v, 4) if isinstance(v, float) else v
                                         for k, v in r.items()},
                     "best_step": run.best_step, "steps": run.steps, "minutes": run.minutes,
                     "history": run.history})
    report = {
        "task": "crack / no-crack tile classification", "tile_px": TILE,
        "crack_min_fraction": CRACK_MIN_FRACTION, "encoder": LITE0,
        "batch_size": batch_size, "torch_threads": torch.get_num_threads(),
        "tiles": {"slope-train": train.counts(), "slope-val": val.counts(),
                  "slope-test": test.counts(), "concrete-train": c_train.counts(),
                  "concrete-val": c_val.counts()},
        "concrete_stage": {"steps": runs["concrete"].steps, "minutes": runs["concrete"].minutes,
                           "best_step": runs["concrete"].best_step,
                           "history": runs["concrete"].history},
        "seed_table": SEED_TABLE,
        "rows": rows,
    }
    return report, runs


def load_gate(weights_dir=None, device: str = "cpu") -> TileClassifier:
    """The shipped tile gate (:data:`GATE_NAME` in :data:`GATE_DIR`, or ``weights_dir``),
    its weights checked against the card's SHA-256, in ``eval()`` mode.

    Raises:
        ModelNotFoundError: no gate there (train one with ``crackwatch train tiles``).
        WeightsIntegrityError: the weights do not match the card.
    """
    import json

    from engine.checkpoint import load_state, sha256_file
    from engine.errors import ModelNotFoundError, WeightsIntegrityError

    folder = Path(weights_dir) if weights_dir else GATE_DIR
    card_path, weights = folder / f"{GATE_NAME}.json", folder / f"{GATE_NAME}.safetensors"
    if not card_path.is_file() or not weights.is_file():
        raise ModelNotFoundError(f"No tile gate {GATE_NAME} in {folder}: train one with "
                                 f"`crackwatch train tiles` (it writes weights and card).")
    card = json.loads(card_path.read_text())
    if sha256_file(weights) != card["weights"]["sha256"]:
        raise WeightsIntegrityError(f"{weights} does not match the SHA-256 in {card_path}; "
                                    f"restore the file that came with the card.")
    model = TileClassifier()
    model.load_state_dict(load_state(weights))
    model.card = card
    return model.to(device).eval()


@torch.no_grad()
def no_crack_tiles(rgb: np.ndarray, gate: TileClassifier, threshold: float = 0.5,
                   tile: int = TILE, batch: int = 64) -> np.ndarray:
    """Where the gate sees no crack: ``(rows, cols)`` bool, True on every ``tile`` px tile
    whose crack probability is below ``threshold``. Tiles lie on a grid from the top left;
    the last row and column of tiles are aligned to the image's edge (overlapping the one
    before), so every pixel is judged. An image smaller than a tile is never gated (all
    False).

    Args:
        rgb: ``(rows, cols, 3)`` uint8.
    """
    rows, cols = rgb.shape[:2]
    if rows < tile or cols < tile:
        return np.zeros((rows, cols), bool)
    tops = sorted({*range(0, rows - tile + 1, tile), rows - tile})
    lefts = sorted({*range(0, cols - tile + 1, tile), cols - tile})
    corners = [(r, c) for r in tops for c in lefts]
    tiles = np.stack([rgb[r:r + tile, c:c + tile] for r, c in corners])
    prob = predict(gate, tiles, batch)
    crack = np.zeros((rows, cols), bool)
    for (r, c), p in zip(corners, prob, strict=True):
        if p >= threshold:
            crack[r:r + tile, c:c + tile] = True  # a tile that overlaps a crack tile keeps it
    return ~crack


def read_no_crack_mask(path: str | Path, gate: TileClassifier, threshold: float = 0.5,
                       band_rows: int = 8 * TILE) -> np.ndarray:
    """:func:`no_crack_tiles` of a survey raster (its RGB bands, stretched to 8-bit as the
    model sees them), read in row bands of ``band_rows`` (a multiple of the tile) so that a
    large orthomosaic is never held whole; ``(rows, cols)`` bool on the raster's own grid,
    True where the gate sees no crack. Outside the raster's data the tiles are judged as
    read (nodata is excluded elsewhere).

    Raises:
        RasterReadError / RasterRefusedError: as :func:`engine.raster_read.open_survey_raster`.
    """
    from rasterio.windows import Window

    from engine.raster_read import open_survey_raster, select_rgb_bands, stretch_limits, to_uint8

    band_rows = max(TILE, band_rows // TILE * TILE)
    with open_survey_raster(str(path)) as src:
        bands, _ = select_rgb_bands(src.colorinterp, src.count)
        limits = stretch_limits(src, bands)
        crack = np.zeros((src.height, src.width), bool)
        for top in range(0, src.height, band_rows):
            stop = min(src.height, top + band_rows)
            # a last band thinner than a tile is judged as the whole image's edge-aligned
            # last tile row: the tile ending at the last row
            a = max(0, stop - TILE) if stop - top < TILE else top
            rgb = to_uint8(src.read(list(bands), window=Window(0, a, src.width, stop - a)),
                           limits).transpose(1, 2, 0)
            crack[a:stop] |= ~no_crack_tiles(rgb, gate, threshold)
    return ~crack


def no_crack_on_grid(source: Path, shape: tuple[int, int], transform) -> np.ndarray | None:
    """The shipped gate's :func:`read_no_crack_mask` of orthomosaic ``source`` when the
    probability map is on its grid (None when it was reprojected: no gate then).

    Raises:
        ModelNotFoundError / WeightsIntegrityError: as :func:`load_gate`.
    """
    import rasterio

    from engine.raster_read import SURVEY_RASTER_DRIVERS

    with rasterio.open(source, driver=SURVEY_RASTER_DRIVERS.get(Path(source).suffix.lower())
                       ) as src:
        same = (src.height, src.width) == shape and src.transform == transform
    return read_no_crack_mask(source, load_gate()) if same else None
