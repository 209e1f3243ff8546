"""UP-CrackNet: cracks are what a network trained to restore masked crack-free ground cannot
restore (Zhang et al., "UP-CrackNet: Unsupervised pixel-wise road crack detection via
adversarial image restoration", ``../shared/docs/papers/up-cracknet-adversarial-restoration.txt``).

As the paper describes it (Sect. III, IV-B):

* **Multi-scale square masks**: the tile is cut into ``k x k`` squares, ``k`` drawn from
  :data:`MASK_SCALES`; a random half of the squares is removed (ratio 1:1).
* **Generator**: a pix2pix U-Net (Conv-BatchNorm-LeakyReLU encoder; ConvTranspose-BatchNorm-
  Dropout-ReLU and ConvTranspose-BatchNorm-ReLU decoder). **Discriminator**: a PatchGAN of
  Conv-BatchNorm-LeakyReLU on the (corrupted, real or restored) pair.
* **Losses** (Eqs. 2-8): ``100 * (MAE + SSIM + MSGMS + 10 * style) + adversarial``; Adam
  (beta1 0.5, beta2 0.999), learning rates 1e-4 (G) and 4e-4 (D), exponential decay.
* **Test time** (Eq. 1): the squared restoration error, bilateral-filtered
  (``cv2.bilateralFilter``), binarised by Otsu's threshold (``skimage.filters.threshold_otsu``)
  per image.

What CrackWatch changes, and why (recorded in the card):

* 128 px tiles, masks ``k in {64, 32, 16}`` (the paper: 256 px, ``{128, 64, 32}``), a 32-wide
  generator with 6 levels and a time budget instead of 200 epochs: the 2-core CPU budget.
* The style loss's Gram matrices come from the ImageNet EfficientNet-Lite0 encoder CrackWatch
  already ships (:mod:`engine.pretrained`), not VGG: no VGG weights are available offline.
* At test time the image is restored twice per mask scale, from a mask and its complement,
  and each pixel's restoration is taken from the pass where it was hidden (the inpainting
  inference of RIAD, which the paper builds on): a pixel is never restored from itself, so the
  generator cannot pass a crack through. The error is averaged over the three scales.
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
    to_tensor,
)

MASK_SCALES = (64, 32, 16)  #: square sides k, px, at 128 px tiles (paper: 32-128 at 256)
NGF = 32  #: generator width (pix2pix: 64)
LEVELS = 6  #: U-Net levels (128 px -> 2 px)
LR_DECAY = 0.9995  #: exponential learning-rate decay per step
LAMBDA = {"mae": 1.0, "ssim": 1.0, "gms": 1.0, "style": 10.0, "res": 100.0, "adv": 1.0}


def square_mask(shape: tuple[int, int], k: int, gen: torch.Generator) -> torch.Tensor:
    """``(rows, cols)`` float mask: ``k x k`` squares, a random half of them 0 (removed)."""
    rows, cols = shape
    gh, gw = -(-rows // k), -(-cols // k)
    keep = torch.randperm(gh * gw, generator=gen) < (gh * gw) // 2
    grid = keep.view(gh, gw).float()
    return grid.repeat_interleave(k, 0).repeat_interleave(k, 1)[:rows, :cols]


class _Down(nn.Sequential):
    def __init__(self, c_in, c_out, norm=True):
        layers = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


class _Up(nn.Sequential):
    def __init__(self, c_in, c_out, dropout=False):
        layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers.append(nn.ReLU())
        super().__init__(*layers)


class Generator(nn.Module):
    """pix2pix U-Net: ``(B, 3, H, W)`` in [0, 1] -> same shape in [0, 1]; H, W multiples of
    ``2 ** LEVELS``."""

    def __init__(self, ngf: int = NGF, levels: int = LEVELS):
        super().__init__()
        widths = [min(ngf * 2 ** i, ngf * 8) for i in range(levels)]
        self.down = nn.ModuleList([_Down(3, widths[0], norm=False)] +
                                  [_Down(widths[i - 1], widths[i]) for i in range(1, levels)])
        ups = []
        for i in range(levels - 1, 0, -1):
            c_in = widths[i] if i == levels - 1 else widths[i] * 2
            ups.append(_Up(c_in, widths[i - 1], dropout=i >= levels - 3))
        self.up = nn.ModuleList(ups)
        self.out = nn.Sequential(nn.ConvTranspose2d(widths[0] * 2, 3, 4, 2, 1), nn.Sigmoid())

    def forward(self, x):
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        for i, u in enumerate(self.up):
            x = u(x if i == 0 else torch.cat([x, skips[-1 - i]], 1))
        return self.out(torch.cat([x, skips[0]], 1))


class Discriminator(nn.Module):
    """PatchGAN on the concatenated (corrupted, real-or-restored) pair: ``(B, 6, H, W)`` ->
    ``(B, 1, H/8, W/8)`` logits."""

    def __init__(self, ndf: int = NGF):
        super().__init__()
        self.net = nn.Sequential(_Down(6, ndf, norm=False), _Down(ndf, ndf * 2),
                                 _Down(ndf * 2, ndf * 4), nn.Conv2d(ndf * 4, 1, 3, 1, 1))

    def forward(self, x):
        return self.net(x)


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (Gaussian window 11, sigma 1.5; torchmetrics)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1 - structural_similarity_index_measure(a, b, data_range=1.0)


_PREWITT = torch.tensor([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]]) / 3


def msgms_loss(a: torch.Tensor, b: torch.Tensor, scales: int = 4, c: float = 0.0026):
    """Multi-scale gradient magnitude similarity loss (RIAD; paper Eq. 5): mean of
    ``1 - GMS`` on the grey images at full, 1/2, 1/4 and 1/8 size."""
    k = torch.stack([_PREWITT, _PREWITT.t()])[:, None].to(a)
    total = 0.0
    ga, gb = a.mean(1, keepdim=True), b.mean(1, keepdim=True)
    for s in range(scales):
        if s:
            ga, gb = F.avg_pool2d(ga, 2), F.avg_pool2d(gb, 2)
        ma = F.conv2d(ga, k, padding=1).pow(2).sum(1).add(1e-12).sqrt()
        mb = F.conv2d(gb, k, padding=1).pow(2).sum(1).add(1e-12).sqrt()
        gms = (2 * ma * mb + c) / (ma ** 2 + mb ** 2 + c)
        total = total + (1 - gms).mean()
    return total / scales


def _gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.flatten(2)
    return f @ f.transpose(1, 2) / (c * h * w)


class StyleFeatures(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0 stages (strides 2-8) for the style loss."""

    def __init__(self):
        super().__init__()
        from engine.patchcore import IMAGENET_MEAN, IMAGENET_STD, imagenet_backbone

        self.enc = imagenet_backbone()
        for p in self.enc.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None])

    def forward(self, x):
        return self.enc((x - self.mean) / self.std)[1:4]


def style_loss(feats: StyleFeatures, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum over feature stages of the L1 distance of Gram matrices (Johnson et al.)."""
    return sum(F.l1_loss(_gram(fa), _gram(fb)) for fa, fb in
               zip(feats(a), feats(b), strict=True))


class UPCrackNet:
    """A fitted detector: the ``generator`` and its ``card``; the threshold is Otsu's, per
    image (:meth:`detect`)."""

    threshold = staticmethod(lambda error_map: otsu(error_map))

    def __init__(self, generator: Generator, card: dict | None = None):
        self.generator = generator.eval()
        self.card = card or {}

    @classmethod
    def fit(cls, tiles: list[np.ndarray], *, minutes: float = 40.0, batch_size: int = 8,
            seed: int = 0, progress=None, resume: UPCrackNet | None = None) -> UPCrackNet:
        """Adversarial restoration training on crack-free ``tiles`` (``(128, 128, 3)`` uint8)
        for ``minutes``. ``resume``: go on from that detector's generator, its learning-rate
        decay continued from its step count (the discriminator starts afresh).

        Raises:
            ValueError: no tile.
        """
        if not tiles:
            raise ValueError("UP-CrackNet needs crack-free training tiles.")
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        G, D, feats = Generator(), Discriminator(), StyleFeatures().eval()
        done = 0
        if resume is not None:
            G.load_state_dict(resume.generator.state_dict())
            done = int(resume.card.get("steps", 0))
        decay = LR_DECAY ** done
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-4 * decay, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=4e-4 * decay, betas=(0.5, 0.999))
        sched = [torch.optim.lr_scheduler.ExponentialLR(o, LR_DECAY) for o in (opt_g, opt_d)]
        bce = nn.BCEWithLogitsLoss()
        clock, step, log = Stopwatch(minutes), 0, []
        G.train()
        D.train()
        for x in batches(tiles, batch_size, np.random.default_rng(seed)):
            k = MASK_SCALES[int(torch.randint(len(MASK_SCALES), (1,), generator=gen))]
            m = torch.stack([square_mask(x.shape[-2:], k, gen) for _ in range(len(x))])[:, None]
            xc = x * m
            y = G(xc)
            # discriminator
            d_real = D(torch.cat([xc, x], 1))
            d_fake = D(torch.cat([xc, y.detach()], 1))
            loss_d = 0.5 * (bce(d_real, torch.ones_like(d_real)) +
                            bce(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # generator
            d_fake = D(torch.cat([xc, y], 1))
            parts = {"mae": F.l1_loss(y, x), "ssim": ssim_loss(y, x), "gms": msgms_loss(y, x),
                     "style": style_loss(feats, y, x)}
            res = sum(LAMBDA[n] * v for n, v in parts.items())
            adv = bce(d_fake, torch.ones_like(d_fake))
            loss_g = LAMBDA["res"] * res + LAMBDA["adv"] * adv
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            for s in sched:
                s.step()
            step += 1
            if step % 50 == 0:
                log.append({"step": step, "seconds": round(clock.seconds),
                            **{n: round(float(v), 4) for n, v in parts.items()},
                            "adv": round(float(adv), 3), "d": round(float(loss_d), 3)})
                if progress:
                    progress(log[-1])
            if clock.expired:
                break
        card = {"method": "UP-CrackNet (Zhang et al.)", "tile_px": TILE,
                "mask_scales_px": list(MASK_SCALES), "generator_width": NGF,
                "levels": LEVELS, "loss_weights": LAMBDA, "batch_size": batch_size,
                "steps": done + step, "train_seconds": round(clock.seconds) + int(
                    resume.card.get("train_seconds", 0) if resume else 0),
                "sessions": [*(resume.card.get("sessions") or [
                    {"steps": done, "seconds": resume.card.get("train_seconds"),
                     "threads": resume.card.get("threads")}] if resume else []),
                    {"steps": step, "seconds": round(clock.seconds),
                     "threads": torch.get_num_threads()}],
                "threads": torch.get_num_threads(), "training_tiles": len(tiles),
                "log": log[-5:],
                "reduced": "128 px tiles and masks {64,32,16} px (paper 256 px, {128,64,32}); "
                           "generator width 32 (pix2pix 64); style loss on ImageNet "
                           "EfficientNet-Lite0 features (paper VGG); a time budget instead of "
                           "200 epochs"}
        return cls(G, card)

    @torch.inference_mode()
    def restore(self, rgb: np.ndarray, seed: int = 0) -> np.ndarray:
        """The restoration of ``rgb`` ``(rows, cols, 3)`` uint8 per mask scale, each pixel
        restored from its context: ``(len(MASK_SCALES), 3, rows, cols)`` float32 in [0, 1]."""
        rows, cols = rgb.shape[:2]
        x = to_tensor(rgb)
        mult = 2 ** LEVELS
        ph, pw = (-rows) % mult, (-cols) % mult
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if max(ph, pw) < min(rows, cols)
                      else "replicate")
        gen = torch.Generator().manual_seed(seed)
        out = []
        for k in MASK_SCALES:
            m = square_mask(x.shape[-2:], k, gen)[None, None]
            y = self.generator(torch.cat([x * m, x * (1 - m)]))
            out.append(y[0] * (1 - m[0]) + y[1] * m[0])
        return torch.stack(out)[..., :rows, :cols].numpy()

    def error_map(self, rgb: np.ndarray) -> np.ndarray:
        """Squared restoration error summed over colour, averaged over mask scales, then
        bilateral-filtered (paper Eq. 1 before Otsu): ``(rows, cols)`` float32."""
        import cv2

        x = to_tensor(rgb)[0].numpy()
        err = ((self.restore(rgb) - x[None]) ** 2).sum(1).mean(0).astype(np.float32)
        return cv2.bilateralFilter(err, 5, float(err.std() * 2 + 1e-6), 5)

    score_map = error_map

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Crack pixels of ``rgb``: Otsu's threshold of its filtered error map, ``(rows,
        cols)`` bool."""
        m = self.error_map(rgb)
        return m >= otsu(m)

    def save(self, path: str | Path) -> Path:
        return save_detector(path, self.generator.state_dict(), self.card)

    @classmethod
    def load(cls, path: str | Path) -> UPCrackNet:
        state, card = load_detector(path)
        g = Generator()
        g.load_state_dict(state)
        return cls(g, card)


def otsu(error_map: np.ndarray) -> float:
    """Otsu's threshold of a map (``skimage.filters.threshold_otsu``)."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(error_map))


def fit_upcracknet(train_set: str = "deepcrack-train", out: str | Path | None = None,
                   minutes: float = 40.0, data_root: Path | None = None,
                   progress=None, resume: UPCrackNet | None = None) -> UPCrackNet:
    """Fit on the crack-free tiles of ``train_set`` (all but every 5th image, as for the other
    detectors), from scratch or going on from ``resume``; save to ``out`` when given."""
    from engine.restoration_common import crack_free_training_tiles

    t0 = time.perf_counter()
    fit_tiles, _ = crack_free_training_tiles(train_set, data_root)
    det = UPCrackNet.fit(fit_tiles, minutes=minutes, progress=progress, resume=resume)
    det.card.update({"crack_free_training": f"{len(fit_tiles)} crack-free 128 px tiles of "
                                            f"{train_set} (all but every 5th image)",
                     "threshold_rule": "Otsu's threshold of each image's bilateral-filtered "
                                       "error map (paper Eq. 1)",
                     "fit_seconds": round(time.perf_counter() - t0)})
    if out:
        det.save(out)
    return det


__all__ = ["Discriminator", "Generator", "MASK_SCALES", "UPCrackNet", "fit_upcracknet",
           "msgms_loss", "otsu", "square_mask", "ssim_loss", "style_loss"]
