"""The crack / no-crack tile gate (:mod:`engine.tile_classifier`) as a pipeline rule."""

import numpy as np
import pytest
import torch
from torch import nn

from engine.crack_rules import CrackRules, kept_cracks
from engine.tile_classifier import no_crack_tiles


class DarkTileGate(nn.Module):
    """'Crack' wherever a tile's mean (normalised) value is below 0: a dark tile."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -10.0 * x.mean(dim=(1, 2, 3))


def test_every_pixel_is_judged_and_a_crack_tile_keeps_its_pixels():
    rgb = np.full((300, 290, 3), 230, np.uint8)
    rgb[172:300, 200:290] = 0  # dark in the last (edge-aligned) tile row and column
    gate = DarkTileGate()
    off = no_crack_tiles(rgb, gate)
    assert off.shape == (300, 290)
    assert not off[172:300, 162:290].any()  # the edge-aligned tile that holds the dark patch
    assert off[:128, :128].all()
    assert no_crack_tiles(np.zeros((100, 500, 3), np.uint8), gate).sum() == 0  # too small


def test_the_gate_drops_candidates_in_no_crack_tiles():
    rgb = np.full((256, 256, 3), 230, np.uint8)
    rgb[128:, 128:] = 20  # a dark tile (the gate's "crack")
    prob = np.zeros((256, 256), np.float32)
    prob[40:43, 10:110] = 0.9  # a candidate in a bright tile: dropped
    prob[200:203, 140:250] = 0.9  # a candidate in the dark tile: kept
    gate = DarkTileGate()
    _, n_without = kept_cracks(prob, rgb, CrackRules(edge_band_px=0))
    labels, n = kept_cracks(prob, rgb, CrackRules(edge_band_px=0, tile_gate=True),
                            no_crack=no_crack_tiles(rgb, gate))
    assert (n_without, n) == (2, 1)
    assert labels[201, 200] > 0 and labels[41, 50] == 0


def test_a_missing_gate_is_a_clear_error(tmp_path):
    from engine.errors import ModelNotFoundError
    from engine.tile_classifier import load_gate

    with pytest.raises(ModelNotFoundError, match="crackwatch train tiles"):
        load_gate(tmp_path)
