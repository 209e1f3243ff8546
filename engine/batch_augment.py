"""Training crops sampled and augmented a whole batch at a time, on the training device.

On a GPU machine the per-crop torchvision pipeline of :class:`engine.data.CrackSegDataset`
limits the step rate (measured on an H100 with 7 DataLoader workers: 230-250 crops/s, the GPU
74 % busy). :class:`BatchCropSampler` keeps every decoded training image on the device, in one
zero-padded canvas tensor, and makes a batch of crops with one ``affine_grid``/``grid_sample``
for the geometry and a few batched tensor ops for the colour: a handful of kernel launches per
batch instead of ~15 Python-level transforms per crop.

The random parameters follow :func:`engine.data.build_augmentation` and the dataset's zoom:

- zoom ``exp(U(log lo, log hi))`` per crop (``(1, 1)`` for native-scale sets such as UAV75);
- crop centre uniform over the positions that keep the crop inside the image, or that keep
  the image inside the crop where the image is smaller (``RandomCrop(pad_if_needed=True)``);
  padding gets loss weight 0;
- horizontal and vertical flips (p = 0.5 each), a 0 or 90 degree turn, and on 30 % of crops a
  rotation ``U(-12, 12)`` degrees;
- brightness, contrast ``U(0.65, 1.35)``, saturation ``U(0.7, 1.3)``; on 30 % of crops a hue
  shift ``U(-0.03, 0.03)`` turns; grayscale on 10 %; a 5-tap Gaussian blur, sigma
  ``U(0.1, 1.2)``, on 20 %.

Differences from the per-crop pipeline, by design: the free rotation samples real image
content at the crop's corners where the image has it (the per-crop pipeline rotates the cut
crop and gives its corners weight 0); the hue shift is a rotation of the chroma plane in YIQ
space (a linear 3x3 map, not torchvision's HSV round trip); the colour operations run in a fixed
order; a zoom below 1 resamples bilinearly without antialiasing (the zoom is at least 0.75).
Without a zoom or a free rotation the crop is pixel-exact: labels one pixel wide stay one pixel
wide.

Image labels ride in the same grid as the image, resampled nearest-neighbour.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.data import IMAGENET_MEAN, IMAGENET_STD, Sample

#: Label channels of the canvas: crack mask, planking (hard negative) mask, inside-the-image.
_MASK, _PLANK, _VALID = 0, 1, 2


class BatchCropSampler:
    """Weighted random training crops, augmented as a batch on ``device``.

    Args:
        parts: one entry per training set: ``(samples, sampling_weight, zoom_range)``. A set's
            total sampling weight is spread evenly over its images (as in
            :func:`engine.train.train_segmentation`'s ``WeightedRandomSampler``).
        crop_size: side of the square crops, px.
        planking_weight: loss weight on planking pixels that are not crack.
        device: where the canvas lives and the crops are made (``"cuda"``, ``"cpu"``).
        seed: seed of the sampler's own generators (image choice and augmentation).

    Memory: ``N x 6 x H_max x W_max`` bytes for N images (3 image + 3 label channels, uint8),
    e.g. 566 training images of at most 544 x 512 px: 0.95 GB.

    Raises:
        ValueError: no images, a weight <= 0, or a zoom range that is not ``0 < lo <= hi``.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Sequence[Sample], float, tuple[float, float]]],
        crop_size: int = 256,
        planking_weight: float = 3.0,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        samples, weights, zooms = [], [], []
        for part, w, (lo, hi) in parts:
            if not part:
                continue
            if w <= 0:
                raise ValueError(f"sampling weight must be > 0; got {w}")
            if not 0 < lo <= hi:
                raise ValueError(f"zoom range must satisfy 0 < lo <= hi; got {(lo, hi)}")
            samples += list(part)
            weights += [w / len(part)] * len(part)
            zooms += [(lo, hi)] * len(part)
        if not samples:
            raise ValueError("BatchCropSampler needs at least one training image")
        self.device = torch.device(device)
        self.crop_size = crop_size
        self.planking_weight = planking_weight
        h_max = max(s.image.shape[0] for s in samples)
        w_max = max(s.image.shape[1] for s in samples)
        canvas = np.zeros((len(samples), 6, h_max, w_max), np.uint8)
        sizes = np.zeros((len(samples), 2), np.float32)  # (rows, cols)
        for i, s in enumerate(samples):
            h, w = s.mask.shape
            canvas[i, :3, :h, :w] = s.image.transpose(2, 0, 1)
            canvas[i, 3 + _MASK, :h, :w] = s.mask
            if s.planking is not None:
                canvas[i, 3 + _PLANK, :h, :w] = s.planking & ~s.mask
            canvas[i, 3 + _VALID, :h, :w] = 1
            sizes[i] = (h, w)
        self.canvas = torch.from_numpy(canvas).to(self.device)
        self.sizes = torch.from_numpy(sizes).to(self.device)
        self.weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        self.log_zoom = torch.tensor([(math.log(lo), math.log(hi)) for lo, hi in zooms],
                                     dtype=torch.float32, device=self.device)
        self._pick = torch.Generator(device=self.device).manual_seed(seed)
        self._rand = torch.Generator(device=self.device).manual_seed(seed + 1)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self._mean, self._std = mean, std
        self._canvas_wh = torch.tensor([self.canvas.shape[3], self.canvas.shape[2]],
                                       dtype=torch.float32, device=self.device)
        self._taps = torch.arange(-2, 3, dtype=torch.float32, device=self.device)
        self._identity_taps = (self._taps == 0).float()[None]
        self._hue = _hue_matrices(self.device)

    @property
    def generators(self) -> list[torch.Generator]:
        """The sampler's random generators (image choice, augmentation), for a resumed run."""
        return [self._pick, self._rand]

    def __len__(self) -> int:
        return self.canvas.shape[0]

    def _u(self, n: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
        return torch.rand(n, generator=self._rand, device=self.device) * (hi - lo) + lo

    def batches(self, n_batches: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Yield ``n_batches`` dicts like a DataLoader over
        :class:`engine.data.CrackSegDataset`: ``image`` ``(B, 3, S, S)`` float32 normalised,
        ``mask`` and ``weight`` ``(B, 1, S, S)`` float32, on the sampler's device."""
        for _ in range(n_batches):
            idx = torch.multinomial(self.weights, batch_size, replacement=True,
                                    generator=self._pick)
            yield self.make_batch(idx)

    def draw_params(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Random geometry for the crops of images ``idx`` ``(B,)``: ``zoom`` ``(B,)``,
        ``theta`` ``(B,)`` radians, flips ``fx`` and ``fy`` ``(B,)`` in {-1, 1}, and
        ``centre_u`` ``(B, 2)`` in [0, 1] (where the centre lies in its allowed range)."""
        b = idx.numel()
        lz = self.log_zoom[idx]
        zoom = torch.exp(lz[:, 0] + (lz[:, 1] - lz[:, 0]) * self._u(b))
        quarter = (self._u(b) < 0.5).float() * (math.pi / 2)
        free = torch.where(self._u(b) < 0.3, self._u(b, -12.0, 12.0),
                           torch.zeros(b, device=self.device)) * (math.pi / 180)
        return {"zoom": zoom, "theta": quarter + free,
                "fx": torch.where(self._u(b) < 0.5, -1.0, 1.0),
                "fy": torch.where(self._u(b) < 0.5, -1.0, 1.0),
                "centre_u": self._u(b * 2).view(b, 2)}

    @torch.no_grad()
    def make_batch(self, idx: torch.Tensor, params: dict[str, torch.Tensor] | None = None,
                   colour: bool = True) -> dict[str, torch.Tensor]:
        """Crops of the images ``idx`` ``(B,)`` (indices into the sampler's images), with the
        geometry ``params`` (see :meth:`draw_params`; drawn at random when ``None``) and, with
        ``colour``, the random colour augmentation."""
        b, c = idx.numel(), self.crop_size
        hw = self.sizes[idx]                                   # (B, 2) rows, cols
        p = self.draw_params(idx) if params is None else params
        zoom, theta, fx, fy, u_c = (p["zoom"], p["theta"], p["fx"], p["fy"], p["centre_u"])
        # Crop centre in source pixels (x, y). Half the crop's extent in the source is
        # c / 2 / zoom (before the free rotation); the centre ranges over [min(e, W - e),
        # max(e, W - e)], rounded to whole pixels so that a crop without zoom or rotation is
        # pixel-exact.
        e = (c / 2) / zoom
        wh = hw.flip(1)                                        # (B, 2) cols, rows
        lo = torch.minimum(e[:, None], wh - e[:, None])
        hi = torch.maximum(e[:, None], wh - e[:, None])
        centre = torch.round(lo + (hi - lo) * u_c)
        # Source position s = centre + M p of an output pixel at offset p (px) from the crop's
        # centre, M = R(theta) diag(fx, fy) / zoom. In affine_grid's normalised coordinates
        # (align_corners=False): x_in = A x_out + t with A = diag(2 / W, 2 / H) M (c / 2) and
        # t = 2 centre / (W, H) - 1, W x H the canvas.
        cos, sin = torch.cos(theta), torch.sin(theta)
        m = torch.stack([torch.stack([cos * fx, -sin * fy], -1),
                         torch.stack([sin * fx, cos * fy], -1)], -2) / zoom[:, None, None]
        canvas_wh = self._canvas_wh
        a = (2.0 / canvas_wh)[None, :, None] * m * (c / 2)
        t = 2.0 * centre / canvas_wh - 1.0
        grid = F.affine_grid(torch.cat([a, t[:, :, None]], 2), [b, 1, c, c],
                             align_corners=False)
        src = self.canvas[idx]
        image = F.grid_sample(src[:, :3].float(), grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False) / 255.0
        labels = F.grid_sample(src[:, 3:].float(), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)
        if colour:
            image = self._colour(image)
        mask = labels[:, _MASK:_MASK + 1]
        valid = labels[:, _VALID:_VALID + 1]
        weight = valid * (1.0 + (self.planking_weight - 1.0) * labels[:, _PLANK:_PLANK + 1])
        image = (image * valid - self._mean) / self._std
        return {"image": image, "mask": mask * valid, "weight": weight}

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """Batched colour jitter, hue shift, grayscale and blur of ``x`` ``(B, 3, S, S)`` in
        [0, 1] (see the module docstring for the probabilities and ranges)."""
        b = x.shape[0]

        def per(v: torch.Tensor) -> torch.Tensor:
            return v.view(b, 1, 1, 1)

        def gray(v: torch.Tensor) -> torch.Tensor:  # ITU-R BT.601 luma, as torchvision
            return (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3])

        x = (x * per(self._u(b, 0.65, 1.35))).clamp(0, 1)                       # brightness
        mean = gray(x).mean((2, 3), keepdim=True)
        x = ((x - mean) * per(self._u(b, 0.65, 1.35)) + mean).clamp(0, 1)       # contrast
        g = gray(x)
        x = ((x - g) * per(self._u(b, 0.7, 1.3)) + g).clamp(0, 1)               # saturation
        hue = torch.where(self._u(b) < 0.3, self._u(b, -0.03, 0.03),
                          torch.zeros(b, device=x.device)) * (2 * math.pi)
        x = _rotate_hue(x, hue, *self._hue).clamp(0, 1)
        to_gray = per((self._u(b) < 0.1).float())
        x = x * (1 - to_gray) + gray(x).expand_as(x) * to_gray
        # blur on some crops, an identity kernel on the others (no host-side branch)
        blur = self._u(b) < 0.2
        sigma = self._u(b, 0.1, 1.2)
        k = torch.exp(-(self._taps[None] ** 2) / (2 * sigma[:, None] ** 2))
        k = k / k.sum(1, keepdim=True)
        k = torch.where(blur[:, None], k, self._identity_taps).repeat_interleave(3, 0)
        s = x.shape[-1]
        y = F.pad(x.reshape(1, b * 3, s, s), (2, 2, 2, 2), mode="reflect")
        y = F.conv2d(y, k.view(b * 3, 1, 1, 5), groups=b * 3)
        y = F.conv2d(y, k.view(b * 3, 1, 5, 1), groups=b * 3)
        return y.view(b, 3, s, s)


def _hue_matrices(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB -> YIQ (NTSC) and its inverse, ``(3, 3)`` float32 on ``device``."""
    rgb2yiq = torch.tensor([[0.299, 0.587, 0.114],
                            [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]], dtype=torch.float64)
    return (rgb2yiq.float().to(device), torch.linalg.inv(rgb2yiq).float().to(device))


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor, rgb2yiq: torch.Tensor,
                yiq2rgb: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma of RGB ``x`` ``(B, 3, H, W)`` by ``angle`` ``(B,)`` radians in YIQ
    space (luma kept)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([torch.stack([one, zero, zero], -1),
                       torch.stack([zero, cos, -sin], -1),
                       torch.stack([zero, sin, cos], -1)], -2)                  # (B, 3, 3)
    mat = yiq2rgb[None] @ rot @ rgb2yiq[None]
    return torch.einsum("bij,bjhw->bihw", mat, x)
