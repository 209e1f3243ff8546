"""What the two restoration detectors of issue 29 (UP-CrackNet and VAE + Grad-CAM) share: the
crack-free training tiles, augmentation, tiled scoring of whole images and saving a fitted
detector with its card.

Both learn only from crack-free ground (:func:`engine.anomaly_eval.crack_free_tiles` of a
labelled training split: tiles whose masks, dilated by 8 px, hold no crack pixel); never from a
test image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

#: Side of the training tiles, px (both papers use 256; halved for the 2-core CPU budget).
TILE = 128


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(rows, cols, 3)`` uint8 -> ``(1, 3, rows, cols)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255


def batches(tiles: list[np.ndarray], batch_size: int, rng: np.random.Generator):
    """Endless random batches ``(B, 3, TILE, TILE)`` in [0, 1] of ``tiles`` with random flips
    and 90-degree turns (the papers' flipping augmentation)."""
    stack = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
    while True:
        idx = rng.integers(0, len(tiles), batch_size)
        x = stack[torch.from_numpy(idx)].float() / 255
        if rng.random() < 0.5:
            x = x.flip(-1)
        if rng.random() < 0.5:
            x = x.flip(-2)
        k = int(rng.integers(0, 4))
        yield torch.rot90(x, k, (-2, -1)) if k else x


def tiled_map(rgb: np.ndarray, tile_map: Callable[[torch.Tensor], torch.Tensor],
              tile: int = TILE, stride: int | None = None) -> np.ndarray:
    """A per-pixel map of a whole image from a function of fixed-size tiles: ``tile_map``
    takes ``(B, 3, tile, tile)`` in [0, 1] and gives ``(B, tile, tile)``; overlapping tiles
    (``stride``, default half a tile) are averaged. Images smaller than a tile are mirrored up
    to one. Returns ``(rows, cols)`` float32."""
    stride = stride or tile // 2
    rows, cols = rgb.shape[:2]
    x = to_tensor(rgb)
    ph, pw = max(0, tile - rows), max(0, tile - cols)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    h, w = x.shape[-2:]
    rs = sorted({*range(0, h - tile + 1, stride), h - tile})
    cs = sorted({*range(0, w - tile + 1, stride), w - tile})
    acc = torch.zeros(h, w)
    cnt = torch.zeros(h, w)
    coords = [(r, c) for r in rs for c in cs]
    for i in range(0, len(coords), 16):
        chunk = coords[i:i + 16]
        out = tile_map(torch.cat([x[..., r:r + tile, c:c + tile] for r, c in chunk]))
        for (r, c), m in zip(chunk, out, strict=True):
            acc[r:r + tile, c:c + tile] += m
            cnt[r:r + tile, c:c + tile] += 1
    return (acc / cnt)[:rows, :cols].numpy().astype(np.float32)


def crack_free_training_tiles(train_set: str, data_root: Path | None = None,
                              holdout_every: int = 5) -> tuple[list, list]:
    """Crack-free ``TILE`` px tiles of ``train_set``: (fit tiles from all but every
    ``holdout_every``-th image, validation tiles from every ``holdout_every``-th)."""
    from engine.anomaly_eval import crack_free_tiles
    from engine.data import load_dataset

    samples = load_dataset(train_set, data_root)[0]
    fit = crack_free_tiles([s for i, s in enumerate(samples) if i % holdout_every], TILE)
    val = crack_free_tiles(samples[::holdout_every], TILE)
    return fit, val


class Stopwatch:
    """Time budget of a fit: ``expired`` once ``minutes`` have passed."""

    def __init__(self, minutes: float):
        self.t0 = time.perf_counter()
        self.limit = minutes * 60

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def expired(self) -> bool:
        return self.seconds >= self.limit


def save_detector(path: str | Path, tensors: dict[str, torch.Tensor], card: dict) -> Path:
    """Write ``tensors`` as fp16 safetensors and ``card`` beside it (``.json``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in tensors.items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({**card, "weights": path.name},
                                                    indent=2) + "\n")
    return path


def load_detector(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors (float32) and card written by :func:`save_detector`."""
    from safetensors.torch import load_file

    path = Path(path)
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in load_file(str(path)).items()}
    return state, json.loads(path.with_suffix(".json").read_text())


__all__ = ["TILE", "Stopwatch", "batches", "crack_free_training_tiles", "load_detector",
           "save_detector", "tiled_map", "to_tensor"]
