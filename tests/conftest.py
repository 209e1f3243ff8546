"""Shared fixtures: synthetic image/mask folders and the path of the real data."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import default_data_root

DATA_ROOT = default_data_root()


def write_pair(folder: Path, stem: str, size=(64, 48), crack_row: int = 20,
               mask_size=None, planking: bool = False) -> None:
    """A grey image with a dark horizontal crack at ``crack_row`` and its 0/255 mask.

    ``size`` is (cols, rows) as PIL uses it.
    """
    cols, rows = size
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    img = np.full((rows, cols, 3), 160, np.uint8)
    img[crack_row:crack_row + 2] = 30
    Image.fromarray(img).save(folder / "images" / f"{stem}.jpg")
    mcols, mrows = mask_size or size
    mask = np.zeros((mrows, mcols), np.uint8)
    mask[crack_row:crack_row + 2] = 255
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")
    if planking:
        (folder / "planking").mkdir(exist_ok=True)
        pl = np.zeros((rows, cols), np.uint8)
        pl[:, 5:8] = 255
        Image.fromarray(pl).save(folder / "planking" / f"{stem}.png")


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for i in range(3):
        write_pair(root, f"img{i}", crack_row=10 + 5 * i, planking=True)
    return root


def require_real_data(*parts: str) -> Path:
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"real data {p} missing: the shared data folder must sit beside the checkout "
                    f"(../shared/data)")
    return p


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for local test servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
