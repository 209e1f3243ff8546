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


def _dark_corner(rows=300, cols=290):
    rgb = np.full((rows, cols, 3), 230, np.uint8)
    rgb[rows - 100:, cols - 100:] = 10  # a crack only to the edge-aligned last tile
    return rgb


def test_an_orthomosaic_read_in_row_bands_is_gated_as_the_whole_image(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from engine.tile_classifier import read_no_crack_mask

    rgb = _dark_corner()
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=290, height=300, count=3,
                       dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000, 5000000, 0.01, 0.01)) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    whole = no_crack_tiles(rgb, DarkTileGate())
    for band_rows in (128, 256, 1024):  # 128: a last band of 44 rows, thinner than a tile
        banded = read_no_crack_mask(path, DarkTileGate(), band_rows=band_rows)
        assert np.array_equal(banded, whole), band_rows
    assert not whole[-1, -1] and whole[0, 0]


def test_the_survey_photos_run_the_gate_when_the_rules_say_so(tmp_path, monkeypatch):
    from PIL import Image

    import engine.tile_classifier as tc
    from engine.survey import InferenceSettings, infer_photos

    rgb = np.full((256, 256, 3), 230, np.uint8)
    rgb[128:, 128:] = 20
    Image.fromarray(rgb).save(tmp_path / "p.jpg", quality=95)
    prob = np.zeros((256, 256), np.float32)
    prob[40:43, 10:110] = 0.9  # in a bright tile
    prob[200:203, 140:250] = 0.9  # in the dark tile
    monkeypatch.setattr(tc, "load_gate", lambda *a, **k: DarkTileGate())
    found = {}
    for gate in (False, True):
        settings = InferenceSettings(edge_band_px=0, tile_gate=gate)
        out = infer_photos(tmp_path / "p.jpg", None, settings, measure=False,
                           predict=lambda path, rgb: prob)
        found[gate] = len(out.photos[0].cracks)
        assert out.crack_rules["tile_gate"] is gate
    assert found == {False: 2, True: 1}


def test_the_gate_runs_on_slope_sites_with_the_model_it_was_measured_with():
    """Slope sites run the gate with the slope model; never on structures, and not on a
    slope site running a concrete model (the demo's SIMULATED growth crack: the gate, which
    knows rock fractures, would drop it)."""
    from engine.profiles import read_profile_models
    from engine.survey import InferenceSettings

    models = read_profile_models()
    on = {(profile, model): InferenceSettings().for_profile(profile, models[model]).tile_gate
          for profile in ("slope", "structure") for model in ("slope", "structure")}
    assert on == {("slope", "slope"): True, ("slope", "structure"): False,
                  ("structure", "slope"): False, ("structure", "structure"): False}
    assert InferenceSettings().for_profile("slope").tile_gate is False  # no model: no gate
    for profile in ("slope", "structure"):  # by hand (crackwatch infer --tile-gate)
        assert InferenceSettings(tile_gate=True).for_profile(profile).tile_gate is True
        assert InferenceSettings(tile_gate=False).for_profile(
            profile, models["slope"]).tile_gate is False
