"""Synthetic inputs for the integration tests: a tiny orthomosaic and an exact model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from builders import write_geotiff
from rasterio.transform import from_origin

EPSG = 32633


def write_ortho(path: Path, *, when: datetime, crack_cols: int = 150, seed: int = 0,
                crack_rows: int = 3) -> Path:
    """A 256x256 RGB GeoTIFF (EPSG:32633, 2 mm pixels) with a dark crack-like line
    ``crack_rows`` pixels wide (default 3: 6 mm)."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(150, 12, (3, 256, 256)), 0, 255).astype(np.uint8)
    img[:, 120:120 + crack_rows, 40:40 + crack_cols] = 40
    return write_geotiff(path, img, crs=f"EPSG:{EPSG}",
                         transform=from_origin(500000, 6000000, 0.002, 0.002),
                         tags={"TIFFTAG_DATETIME": f"{when:%Y:%m:%d %H:%M:%S}"},
                         tiled=True, blockxsize=256, blockysize=256)


class DarkModel(torch.nn.Module):
    """'Crack' = dark pixels: a fixed, exact stand-in for a trained model (ImageNet-normalised
    input, logits out). On :func:`write_ortho` it finds the 3-px (6 mm) line."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -8.0 * (x.mean(1, keepdim=True) + 1.0)


class KillerModel(torch.nn.Module):
    """Kills the process that runs it (SIGKILL) on its first forward pass: a worker lost in
    the middle of a survey (the Ray executor tests)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        return x  # pragma: no cover - never reached


class KillOnceModel(DarkModel):
    """Kills the process that runs it the first time (it leaves ``marker`` behind), then
    works as :class:`DarkModel`: a worker lost once, whose call Ray re-runs."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os
        import signal

        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)
