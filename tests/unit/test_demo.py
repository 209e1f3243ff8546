"""The demo's SIMULATED growth sequence: labelled, georeferenced as assigned, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import rasterio
from PIL import Image

from jobs.demo import DEMO_DATA, make_simulated_growth


def _synthetic(tmp_path):
    img = np.full((96, 128, 3), 170, np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    img[47:50, 10:118] = 40  # a dark horizontal "crack"
    mask[48, 10:118] = 255
    Image.fromarray(img).save(tmp_path / "crack.png")
    Image.fromarray(mask).save(tmp_path / "crack_mask.png")
    return tmp_path / "crack.png", tmp_path / "crack_mask.png"


def test_growth_sequence_reveals_the_crack_and_says_simulated(tmp_path):
    image, mask = _synthetic(tmp_path)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    made = make_simulated_growth(image, mask, tmp_path / "a", fractions=(0.3, 0.6, 1.0),
                                 start=start, gsd_m=0.002, epsg=32632, origin=(650000, 5650000))
    assert [w.day for _, w in made] == [1, 2, 3]
    dark = []
    for path, _ in made:
        assert path.name.startswith("SIMULATED_")
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32632
            assert src.transform.a == 0.002 and src.transform.c == 650000
            tags = src.tags()
            assert tags["CRACKWATCH_SIMULATED"] == "yes"
            assert "ASSIGNED" in tags["CRACKWATCH_DESCRIPTION"]
            band = src.read(1)
        dark.append(int((band[47:50] < 100).sum()))
    assert dark[0] < dark[1] < dark[2]  # the crack grows night by night

    again = make_simulated_growth(image, mask, tmp_path / "b", fractions=(0.3, 0.6, 1.0),
                                  start=start, gsd_m=0.002, epsg=32632,
                                  origin=(650000, 5650000))
    for (p, _), (q, _) in zip(made, again, strict=True):
        assert p.read_bytes() == q.read_bytes()  # deterministic: ingest stays idempotent


def test_demo_sample_files_ship_with_their_licenses():
    for folder in ("uav75", "agung_dji", "webodm", "rockfracture"):
        licenses = list((DEMO_DATA / folder).glob("LICENSE*"))
        assert licenses, folder
    assert len(list((DEMO_DATA / "uav75" / "photos").glob("*.jpg"))) == 3
    photos = sorted(p.stem for p in (DEMO_DATA / "rockfracture" / "photos").glob("*.jpg"))
    assert photos == sorted(p.stem for p in (DEMO_DATA / "rockfracture" / "masks").glob("*.png"))
    assert len(photos) == 4 and "AGPL" in (DEMO_DATA / "rockfracture" / "README.md").read_text()


def test_simulated_inspections_are_marked_deterministic_and_carry_their_truth(tmp_path):
    from jobs.demo import INSPECTION_LENS_CAP, inspection_truth, make_simulated_inspections

    src = DEMO_DATA / "uav75"
    args = (src / "growth_source" / "DSC00555b.jpg", src / "growth_source" / "DSC00555b.png",
            src / "photos" / "DSC00564.jpg")
    made = make_simulated_inspections(*args, tmp_path / "a", fractions=(0.5, 0.7, 0.9))
    assert [w.month for _, w in made] == [3, 3, 4]  # 28 days apart from 2 March
    for k, (folder, _) in enumerate(made):
        names = sorted(p.name for p in folder.iterdir())
        assert folder.name.startswith("SIMULATED_") and all(n.startswith("SIMULATED_")
                                                           for n in names)
        assert ("SIMULATED_lens_cap.jpg" in names) == (k == INSPECTION_LENS_CAP)
    truth = inspection_truth(tmp_path / "a")
    assert "SIMULATED" in truth["description"] and len(truth["inspections"]) == 3
    h = np.array(truth["inspections"][1]["photos"]["SIMULATED_crack_wall.jpg"][
        "source_to_photo"]).reshape(3, 3)
    assert np.linalg.det(h) != 0 and truth["inspections"][1]["fraction"] == 0.7
    again = make_simulated_inspections(*args, tmp_path / "b", fractions=(0.5, 0.7, 0.9))
    for (p, _), (q, _) in zip(made, again, strict=True):
        for f in sorted(p.iterdir()):
            assert f.read_bytes() == (q / f.name).read_bytes()  # ingest stays idempotent
