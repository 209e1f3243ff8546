"""VAE + Grad-CAM: a variational autoencoder of crack-free surface whose attention maps are the
crack masks (the seed paper "Unsupervised defect detection with VAE and Grad-CAM",
``../shared/docs/papers/vae-gradcam-unsupervised-defect-detection.txt``).

As the paper describes it (Sect. 3, 4.1):

* **Network**: 5 convolutional blocks in the encoder (Conv 4x4 stride 2, BatchNorm,
  LeakyReLU), latent dimension 32 (mean and log-variance heads), a mirrored decoder.
* **Loss**: the VAE's ELBO (L2 reconstruction + KL divergence) plus the size constraint on the
  Grad-CAM attention map with the log-barrier extension, ``t = 20`` (Eqs. 5-6), so that on
  crack-free images the attention covers the whole image and concentrates on defects
  elsewhere.
* **Attention**: Grad-CAM of the latent mean ``z_mu`` (summed) at an encoder block's output,
  ``a = sigmoid(sum_k alpha_k A_k)``, ``alpha_k`` the spatially averaged gradient (Eq. 4).
* **Threshold rules**: an image (here a 128 px tile) is defective when its reconstruction
  error exceeds mean + 1 standard deviation of the errors of crack-free validation tiles (the
  paper's rule, Sect. 4.2); the paper thresholds the attention map without giving the value,
  so CrackWatch takes the :data:`PIXEL_QUANTILE` quantile of the attention of crack-free
  validation tiles.

Reduced for the 2-core CPU (said in the card): 128 px tiles instead of the paper's image size,
a learning rate of 1e-3 instead of 1e-5 and a time budget instead of 300 epochs. The Grad-CAM
layer is the third encoder block (stride 8): at 128 px the fifth block's 4 x 4 grid cannot
outline a crack a few pixels wide; the paper does not name its layer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.restoration_common import (
    TILE,
    Stopwatch,
    batches,
    load_detector,
    save_detector,
    tiled_map,
)

LATENT = 32  #: latent dimension (paper Sect. 4.1)
CHANNELS = (32, 64, 128, 128, 256)  #: the five encoder blocks' widths
CAM_BLOCK = 2  #: index of the encoder block whose output Grad-CAM explains (stride 8)
BARRIER_T = 20.0  #: log-barrier t (paper Sect. 4.1)
BARRIER_WEIGHT = 1.0  #: lambda of Eq. 6 (not given in the paper)
KL_WEIGHT = 1.0
PIXEL_QUANTILE = 0.99  #: quantile of crack-free validation attention -> pixel threshold


def log_barrier(z: torch.Tensor, t: float = BARRIER_T) -> torch.Tensor:
    """The log-barrier extension psi_t(z) of Kervadec et al. (paper Eq. 5) for a constraint
    ``z <= 0``."""
    inside = z <= -1 / t ** 2
    safe = torch.where(inside, z, torch.full_like(z, -1.0))
    return torch.where(inside, -torch.log(-safe) / t,
                       t * z - np.log(1 / t ** 2) / t + 1 / t)


class VAE(nn.Module):
    """Input ``(B, 3, 128, 128)`` in [0, 1]; :meth:`forward` gives (reconstruction, mu,
    logvar, the Grad-CAM block's activations)."""

    def __init__(self, tile: int = TILE):
        super().__init__()
        blocks, c_in = [], 3
        for c in CHANNELS:
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 4, 2, 1), nn.BatchNorm2d(c),
                                        nn.LeakyReLU(0.2)))
            c_in = c
        self.enc = nn.ModuleList(blocks)
        self.grid = tile // 2 ** len(CHANNELS)
        flat = CHANNELS[-1] * self.grid ** 2
        self.mu = nn.Linear(flat, LATENT)
        self.logvar = nn.Linear(flat, LATENT)
        self.fc = nn.Linear(LATENT, flat)
        dec = []
        widths = list(CHANNELS[::-1]) + [3]
        for i in range(len(CHANNELS)):
            last = i == len(CHANNELS) - 1
            dec.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1))
            if not last:
                dec += [nn.BatchNorm2d(widths[i + 1]), nn.LeakyReLU(0.2)]
        self.dec = nn.Sequential(*dec, nn.Sigmoid())

    def encode(self, x: torch.Tensor):
        cam = None
        for i, b in enumerate(self.enc):
            x = b(x)
            if i == CAM_BLOCK:
                cam = x
        x = x.flatten(1)
        return self.mu(x), self.logvar(x), cam

    def forward(self, x: torch.Tensor):
        mu, logvar, cam = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        r = self.dec(self.fc(z).view(-1, CHANNELS[-1], self.grid, self.grid))
        return r, mu, logvar, cam


def attention(mu: torch.Tensor, cam: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """Grad-CAM of ``mu.sum()`` at ``cam`` ``(B, K, h, w)``: ``(B, h, w)`` in (0, 1)."""
    g = torch.autograd.grad(mu.sum(), cam, create_graph=create_graph)[0]
    alpha = g.mean((2, 3), keepdim=True)
    return torch.sigmoid((alpha * cam).sum(1))


class VAEGradCAM:
    """A fitted detector: ``model``, ``pixel_threshold`` (attention), ``image_threshold``
    (reconstruction error) and its ``card``."""

    def __init__(self, model: VAE, pixel_threshold: float | None = None,
                 image_threshold: float | None = None, card: dict | None = None):
        self.model = model.eval()
        self.pixel_threshold = pixel_threshold
        self.image_threshold = image_threshold
        self.card = card or {}

    @property
    def threshold(self) -> float | None:
        return self.pixel_threshold

    @classmethod
    def fit(cls, tiles: list[np.ndarray], *, minutes: float = 30.0, batch_size: int = 32,
            lr: float = 1e-3, seed: int = 0, progress=None) -> VAEGradCAM:
        """Train on crack-free ``tiles`` (``(128, 128, 3)`` uint8) for ``minutes``.

        Raises:
            ValueError: no tile.
        """
        if not tiles:
            raise ValueError("VAE + Grad-CAM needs crack-free training tiles.")
        torch.manual_seed(seed)
        model = VAE()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        clock, step, log = Stopwatch(minutes), 0, []
        model.train()
        for x in batches(tiles, batch_size, np.random.default_rng(seed)):
            r, mu, logvar, cam = model(x)
            rec = F.mse_loss(r, x, reduction="none").sum((1, 2, 3)).mean()
            kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
            a = attention(mu, cam, create_graph=True)
            barrier = log_barrier(1 - a.mean((1, 2))).sum()
            loss = rec + KL_WEIGHT * kl + BARRIER_WEIGHT * barrier
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                log.append({"step": step, "seconds": round(clock.seconds), "rec": float(rec),
                            "kl": float(kl), "coverage": float(a.mean())})
                if progress:
                    progress(log[-1])
            if clock.expired:
                break
        card = {"method": "VAE + Grad-CAM (seed paper)", "tile_px": TILE, "latent": LATENT,
                "encoder_blocks": list(CHANNELS), "cam_block": CAM_BLOCK,
                "barrier_t": BARRIER_T, "barrier_weight": BARRIER_WEIGHT, "lr": lr,
                "batch_size": batch_size, "steps": step, "train_seconds": round(clock.seconds),
                "threads": torch.get_num_threads(), "training_tiles": len(tiles),
                "log": log[-5:],
                "reduced": "128 px tiles, lr 1e-3, a time budget instead of 300 epochs"}
        return cls(model, card=card)

    def _tile_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention ``(B, 128, 128)`` and reconstruction error ``(B,)`` of tiles."""
        with torch.enable_grad():
            x = x.detach()
            r, mu, _, cam = self.model(x)
            a = attention(mu, cam)
        err = ((r.detach() - x) ** 2).mean((1, 2, 3))
        a = F.interpolate(a[:, None].detach(), size=x.shape[-2:], mode="bilinear",
                          align_corners=False)[:, 0]
        return a, err

    def score_map(self, rgb: np.ndarray) -> np.ndarray:
        """Attention per pixel of ``rgb`` ``(rows, cols, 3)`` uint8 -> ``(rows, cols)``
        float32 in (0, 1), 128 px tiles at half-tile stride averaged."""
        return tiled_map(rgb, lambda x: self._tile_outputs(x)[0])

    def calibrate(self, tiles: list[np.ndarray]) -> tuple[float, float]:
        """Thresholds from crack-free validation ``tiles``: image = mean + std of their
        reconstruction errors (paper Sect. 4.2), pixel = :data:`PIXEL_QUANTILE` quantile of
        their attention."""
        atts, errs = [], []
        for i in range(0, len(tiles), 32):
            x = torch.from_numpy(np.stack(tiles[i:i + 32])).permute(0, 3, 1, 2).float() / 255
            a, e = self._tile_outputs(x)
            atts.append(a.flatten()[::7].numpy())
            errs.append(e.numpy())
        errs = np.concatenate(errs)
        self.image_threshold = float(errs.mean() + errs.std())
        self.pixel_threshold = float(np.quantile(np.concatenate(atts), PIXEL_QUANTILE))
        self.card.update({
            "image_threshold": self.image_threshold, "pixel_threshold": self.pixel_threshold,
            "threshold_rule": f"pixels: {PIXEL_QUANTILE} quantile of the attention of "
                              f"{len(tiles)} crack-free validation tiles; tiles: mean + std "
                              f"of their reconstruction errors (paper)"})
        return self.image_threshold, self.pixel_threshold

    def save(self, path: str | Path) -> Path:
        return save_detector(path, self.model.state_dict(),
                             {**self.card, "pixel_threshold": self.pixel_threshold,
                              "image_threshold": self.image_threshold})

    @classmethod
    def load(cls, path: str | Path) -> VAEGradCAM:
        state, card = load_detector(path)
        model = VAE()
        model.load_state_dict(state)
        return cls(model, card.get("pixel_threshold"), card.get("image_threshold"), card)


def fit_vae_gradcam(train_set: str = "deepcrack-train", out: str | Path | None = None,
                    minutes: float = 30.0, data_root: Path | None = None,
                    progress=None) -> VAEGradCAM:
    """Fit and calibrate on the crack-free tiles of ``train_set`` (every 5th image held out for
    the thresholds); save to ``out`` when given."""
    from engine.restoration_common import crack_free_training_tiles

    t0 = time.perf_counter()
    fit_tiles, val_tiles = crack_free_training_tiles(train_set, data_root)
    det = VAEGradCAM.fit(fit_tiles, minutes=minutes, progress=progress)
    det.calibrate(val_tiles)
    det.card.update({"crack_free_training": f"{len(fit_tiles)} crack-free 128 px tiles of "
                                            f"{train_set} (all but every 5th image)",
                     "crack_free_validation": f"{len(val_tiles)} tiles of {train_set} "
                                              "(every 5th image)",
                     "fit_and_calibrate_seconds": round(time.perf_counter() - t0)})
    if out:
        det.save(out)
    return det


__all__ = ["LATENT", "VAE", "VAEGradCAM", "attention", "fit_vae_gradcam", "log_barrier"]
