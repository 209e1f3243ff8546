"""crackwatch models export: an ONNX file QGIS's Deepness plugin runs, giving our
probabilities, with the metadata it reads."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.export import DEEPNESS_KEYS, deepness_metadata, export_for_deepness, read_metadata
from engine.registry import PROFILE_MODELS, load_model

ROCK_PHOTOS = Path(__file__).resolve().parents[2] / "jobs" / "demo_data" / "rockfracture" / \
    "photos"


def _deepness_preprocess(tile_u8: np.ndarray, meta: dict) -> np.ndarray:
    """What Deepness does to a (N, H, W, 3) uint8 batch before the session: scale to [0, 1],
    standardise with the metadata's mean/std, NHWC -> NCHW (preprocessing_utils)."""
    x = np.float32(tile_u8 * 1.0 / 255.0)
    x = (x - np.array(meta["standardization_mean"])) / np.array(meta["standardization_std"])
    return np.transpose(x, (0, 3, 1, 2)).astype(np.float32)


def _deepness_reads(path: Path) -> dict:
    """The metadata as Deepness's ModelBase parses it (json.loads; class names with keys in
    consecutive order, JSON or a Python literal)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    raw = meta["class_names"]
    try:
        names = json.loads(raw)
    except json.JSONDecodeError:
        names = ast.literal_eval(raw)
    ordered = sorted(names.items(), key=lambda kv: int(kv[0]))
    assert [int(k) for k, _ in ordered] == list(range(len(ordered)))
    out = {k: json.loads(v) for k, v in meta.items()}
    out["_class_list"] = [v for _, v in ordered]
    out["_model_type"] = str(json.loads(meta["model_type"])).capitalize()
    out["_inputs"] = [(i.name, i.shape) for i in sess.get_inputs()]
    out["_outputs"] = [(o.name, o.shape) for o in sess.get_outputs()]
    out["_session"] = sess
    return out


@pytest.mark.parametrize("profile", sorted(PROFILE_MODELS))
def test_an_exported_shipped_model_runs_in_onnxruntime_as_deepness_runs_it(profile, tmp_path):
    model = load_model(PROFILE_MODELS[profile], runtime="torch")
    out = tmp_path / "crack.onnx"
    export_for_deepness(model, out, tile_size=256, overlap_px=32)
    got = _deepness_reads(out)
    assert got["_model_type"] == "Segmentor"
    assert got["_class_list"] == ["background", "crack"]
    assert got["tiles_size"] == got["tile_size"] == 256 and got["tiles_overlap"] == 12
    assert got["seg_thresh"] == 0.5 and got["seg_small_segment"] == 1
    assert got["resolution"] > 0 and isinstance(got["resolution"], float)
    assert got["crackwatch_weights_sha256"] == model.card["weights"]["sha256"]
    assert got["crackwatch_calibration"]["scale"] == model.card["calibration"]["scale"]
    assert set(DEEPNESS_KEYS) <= set(got)
    (iname, ishape), = got["_inputs"]
    (_, oshape), = got["_outputs"]
    assert ishape[1:] == [3, 256, 256] and oshape[1:] == [1, 256, 256]
    assert len(oshape) == 4 and oshape[2] == oshape[3]  # Deepness: 4-D, square output

    # a real rock-face photo, two tiles in one batch: Deepness's preprocessing + the file
    # give the probabilities CrackWatch computes (calibration folded into the graph)
    photo = sorted(ROCK_PHOTOS.iterdir())[0]
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    tiles = np.stack([rgb[:256, :256], rgb[-256:, -256:]])
    prob = got["_session"].run(None, {iname: _deepness_preprocess(tiles, got)})[0]
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / \
        torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.inference_mode():
        want = torch.sigmoid(model(x)).numpy()
    assert prob.shape == (2, 1, 256, 256) and prob.min() >= 0 and prob.max() <= 1
    assert np.abs(prob - want).max() < 1e-4
    assert ((prob >= 0.5) != (want >= 0.5)).mean() < 1e-4
    assert read_metadata(out)["model_type"] == "Segmentor"


def test_metadata_defaults_and_bad_values():
    card = {"name": "m", "site_profile": "slope", "threshold": 0.5,
            "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    meta = deepness_metadata(card, tile_size=512, overlap_px=64)
    assert meta["resolution"] == 0.25 and "assumed" in meta["crackwatch_resolution_source"]
    assert meta["standardization_mean"] == [0.5] * 3 and meta["tiles_overlap"] == 12
    assert deepness_metadata(card, tile_size=512, overlap_px=0,
                             resolution_cm=2.0)["resolution"] == 2.0
    with pytest.raises(ValueError, match="cm per pixel"):
        deepness_metadata(card, tile_size=512, overlap_px=64, resolution_cm=0)
    with pytest.raises(ValueError, match="overlap"):
        deepness_metadata(card, tile_size=512, overlap_px=300)


def test_the_cli_exports_and_refuses_other_formats(tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app

    out = tmp_path / "slope.onnx"
    r = CliRunner().invoke(app, ["models", "export", PROFILE_MODELS["slope"], "--out", str(out),
                                 "--tile-size", "256", "--resolution-cm", "0.5"])
    assert r.exit_code == 0, r.output
    assert "Segmentor" in r.output and "0.5 cm/px (given by the user)" in r.output
    assert read_metadata(out)["resolution"] == 0.5
    r = CliRunner().invoke(app, ["models", "export", PROFILE_MODELS["slope"], "--out",
                                 str(out), "--format", "tflite"])
    assert r.exit_code == 2 and "only export format is onnx" in r.output
    r = CliRunner().invoke(app, ["models", "export", PROFILE_MODELS["slope"], "--out",
                                 str(out), "--tile-size", "100"])
    assert r.exit_code == 2 and "multiple of 32" in r.output
