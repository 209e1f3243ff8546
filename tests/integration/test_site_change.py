"""Issue 29, item 3: the per-site unsupervised "surface change" layer through the store: the
SIMULATED growth site's acceptance figures, the pipeline hook, the export layer, the raster,
the CLI and its refusals."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geodata import store


@pytest.fixture(scope="module")
def growth(tmp_path_factory):
    from jobs.site_change_eval import growth_site_figures

    work = tmp_path_factory.mktemp("growth")
    return work, growth_site_figures(work)


def test_a_night_one_baseline_covers_the_grown_crack_and_leaves_unchanged_ground(growth):
    """Acceptance: >= 70 % of the grown crack length inside the polygons on every later night,
    < 1 % of the unchanged surface flagged."""
    _work, fig = growth
    assert len(fig["nights"]) == 4
    for night in fig["nights"]:
        assert night["grown_length_covered_pct"] >= 70, night
        assert night["unchanged_flagged_pct"] < 1.0, night
    # more grown crack, more changed ground
    changed = [n["changed_pct_of_compared"] for n in fig["nights"]]
    assert changed == sorted(changed) and changed[0] > 0


def test_the_layer_is_a_raster_and_a_geopackage_layer_a_gis_opens(growth):
    import pyogrio

    from geodata.export import export_site

    work, _fig = growth
    eng = store.connect(store.sqlite_url(work / "store.sqlite"))
    try:
        out = export_site(eng, "SIMULATED growth", work / "site.gpkg")[0]
    finally:
        eng.dispose()
    layers = [name for name, _ in pyogrio.list_layers(out)]
    assert "surface_change_unsupervised" in layers
    frame = pyogrio.read_dataframe(out, layer="surface_change_unsupervised")
    assert len(frame) == 4 and frame.crs.to_epsg() == 32632
    assert (frame["changed_m2"] > 0).all() and (frame.geometry.area > 0).all()
    raster = Path(frame["raster_path"].iloc[-1])
    with rasterio.open(raster) as src:
        assert src.crs.to_epsg() == 32632 and src.dtypes[0] == "float32"
        assert src.tags()["SURFACE_CHANGE_LAYER"] == "surface change (unsupervised)"
        prob = src.read(1)
    assert np.nanmax(prob) <= 1 and np.nanmin(prob) >= 0
    assert (prob >= 0.5).sum() > 0  # the threshold is 0.5 on the layer


def _cli(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "CRACKWATCH_DATA_DIR": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _growth_nights(tmp_path: Path) -> list:
    """The demo's SIMULATED growth nights, ``[(path, acquired_at), ...]``."""
    from jobs.demo import DEMO_DATA, GROWTH_SOURCE_STEM, make_simulated_growth

    src = DEMO_DATA / "uav75" / "growth_source"
    return make_simulated_growth(src / f"{GROWTH_SOURCE_STEM}.jpg",
                                 src / f"{GROWTH_SOURCE_STEM}.png", tmp_path / "g")


def _new_store(tmp_path: Path) -> tuple[str, object]:
    """A fresh SQLite store under ``tmp_path``: ``(url, engine)``."""
    url = store.sqlite_url(tmp_path / "s.sqlite")
    store.upgrade(url)
    return url, store.connect(url)


def test_site_baseline_cli_fits_and_refuses_clearly(tmp_path: Path):
    from jobs.demo import DEMO_DATA, GROWTH_EPSG
    from jobs.inbox import ingest

    nights = _growth_nights(tmp_path)
    url, eng = _new_store(tmp_path)
    store.add_site(eng, "g", profile="slope", crs_epsg=GROWTH_EPSG)
    store.add_site(eng, "photos", profile="structure", crs_epsg=GROWTH_EPSG)
    ids = [ingest(eng, "g", p, acquired_at=w).id for p, w in nights[:2]]
    photo = ingest(eng, "photos", DEMO_DATA / "rockfracture" / "photos").id
    eng.dispose()

    done = _cli("site", "baseline", "g", "--url", url, env_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "threshold" in done.stdout and str(ids[1]) in done.stdout
    assert (tmp_path / "work" / "baselines").is_dir()
    assert list((tmp_path / "work" / "surface_change").glob("*.tif"))
    rows = sqlite3.connect(tmp_path / "s.sqlite").execute(
        "select survey_id, changed_m2 from surface_change").fetchall()
    assert [r[0] for r in rows] == [ids[1]] and rows[0][1] > 0

    bad = _cli("site", "baseline", "nowhere", "--url", url, env_dir=tmp_path)
    assert bad.returncode != 0 and "no site 'nowhere'" in bad.stdout + bad.stderr
    bad = _cli("site", "baseline", "photos", "--url", url, env_dir=tmp_path)
    assert bad.returncode != 0
    assert f"survey {photo} is a photos" in (bad.stdout + bad.stderr).replace("\n", " ")
    bad = _cli("site", "baseline", "g", "--survey", "999", "--url", url, env_dir=tmp_path)
    assert bad.returncode != 0 and "not surveys of site g" in bad.stdout + bad.stderr


def test_a_later_survey_gets_its_layer_when_the_pipeline_processes_it(tmp_path: Path):
    """The pipeline hook: a site with a baseline gives each newly processed survey its layer;
    an altered feature file is said, and the crack results stand."""
    from jobs.demo import GROWTH_EPSG
    from jobs.inbox import ingest
    from jobs.pipeline import PipelineOptions, process_survey
    from jobs.site_baseline import fit_site_baseline

    nights = _growth_nights(tmp_path)
    _url, eng = _new_store(tmp_path)
    try:
        store.add_site(eng, "g", profile="structure", crs_epsg=GROWTH_EPSG)
        first = ingest(eng, "g", nights[0][0], acquired_at=nights[0][1]).id
        fitted = fit_site_baseline(eng, "g", tmp_path / "work", [first])
        assert fitted["layers"] == []
        later = ingest(eng, "g", nights[4][0], acquired_at=nights[4][1]).id
        options = PipelineOptions(work_dir=tmp_path / "work")
        result = process_survey(eng, later, options)
        assert result.status == "succeeded", result
        from geodata.queries import survey_surface_change

        frame = survey_surface_change(eng, later)
        assert len(frame) == 1 and frame["changed_m2"].iloc[0] > 0
        details = json.loads(sqlite3.connect(tmp_path / "s.sqlite").execute(
            "select details from surface_change").fetchone()[0])
        assert details["layer"] == "surface change (unsupervised)"

        # an altered feature file: said with the fix; the survey's cracks still stand
        from jobs.site_baseline import SiteBaselineError, update_surface_change

        features = next((tmp_path / "work" / "baselines").glob("*.safetensors"))
        features.write_bytes(features.read_bytes()[:-8] + b"tampered")
        with pytest.raises(SiteBaselineError, match="missing or altered"):
            update_surface_change(eng, later, tmp_path / "work")
        again = process_survey(eng, later, options)
        assert again.status == "succeeded", again
    finally:
        eng.dispose()


def test_the_layer_round_trips_through_either_store(engine, tmp_path: Path):
    """SQLite and PostGIS keep the same layer: polygons in the site CRS, areas, the raster."""
    from geodata.queries import site_surface_change, survey_surface_change
    from jobs.demo import GROWTH_EPSG
    from jobs.inbox import ingest
    from jobs.site_baseline import fit_site_baseline

    nights = _growth_nights(tmp_path)
    store.add_site(engine, "g", profile="slope", crs_epsg=GROWTH_EPSG)
    ids = [ingest(engine, "g", p, acquired_at=w).id for p, w in (nights[0], nights[4])]
    fitted = fit_site_baseline(engine, "g", tmp_path / "work", [ids[0]])
    frame = survey_surface_change(engine, ids[1])
    assert len(frame) == 1 and frame.crs.to_epsg() == GROWTH_EPSG
    assert frame.geometry.iloc[0].area == pytest.approx(frame["changed_m2"].iloc[0])
    assert frame["changed_m2"].iloc[0] == pytest.approx(fitted["layers"][0]["changed_m2"])
    assert Path(frame["raster_path"].iloc[0]).is_file()
    assert list(site_surface_change(engine, "g")["survey_id"]) == [ids[1]]
    assert survey_surface_change(engine, ids[0]).empty  # the baseline itself has no layer
