"""Photo views end to end: repeat photo inspections registered into views and tracked per
view through the real pipeline (shipped structure model), on SQLite and PostGIS; bad input
(no view matches, two views match, no GSD, black, blurred, unreadable) recorded, never a
crash or a wrong match; nadir photos placed on the map; migration 0007 up and down."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely
from PIL import Image
from sqlalchemy import select, text

from geodata import queries, store, views
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.demo import DEMO_DATA, _crack_order, _grown, _structure_model
from jobs.inbox import ingest
from jobs.pipeline import PipelineOptions, process_survey

UAV = DEMO_DATA / "uav75"
AGUNG = DEMO_DATA / "agung_dji" / "DJI_20251001132715_0396_D_POOR_SHARPNESS.JPG"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
GSD = 0.00025
QUADS = [((40, 36), (468, 44), (472, 470), (36, 462)),
         ((58, 30), (480, 52), (462, 486), (30, 470)),
         ((30, 50), (455, 28), (486, 455), (50, 488))]


@pytest.fixture(scope="module")
def model():
    from engine.registry import load_model

    return load_model(_structure_model())


def _source(frac: float = 1.0) -> np.ndarray:
    image = np.asarray(Image.open(UAV / "growth_source" / "DSC00555b.jpg").convert("RGB"))
    mask = np.asarray(Image.open(UAV / "growth_source" / "DSC00555b.png").convert("L")) > 127
    return _grown(image, mask, _crack_order(mask), frac) if frac < 1 else image


def _photo(image: np.ndarray, k: int, size: int = 448) -> np.ndarray:
    n = size - 1
    h = cv2.getPerspectiveTransform(np.float32(QUADS[k]),
                                    np.float32([[0, 0], [n, 0], [n, n], [0, n]]))
    return cv2.warpPerspective(image, h, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)


def _folder(path: Path, photos: dict[str, np.ndarray | Path | bytes]) -> Path:
    path.mkdir(parents=True)
    for name, content in photos.items():
        if isinstance(content, Path):
            shutil.copy(content, path / name)
        elif isinstance(content, bytes):
            (path / name).write_bytes(content)
        else:
            Image.fromarray(content).save(path / name, quality=95)
    return path


def _run(engine, site, folder, day, model, tmp_path, **kw):
    sv = ingest(engine, site, folder, acquired_at=T0 + timedelta(days=day), **kw)
    r = process_survey(engine, sv.id, PipelineOptions(work_dir=tmp_path / "work"), model=model)
    assert r.status == "succeeded", r.error
    return sv


def _regs(engine, survey_id) -> dict[str, m.PhotoRegistration]:
    with session_scope(engine) as s:
        return {r.image_name: r for r in s.scalars(select(m.PhotoRegistration).where(
            m.PhotoRegistration.survey_id == survey_id))}


def _open_alerts(engine, site_id):
    with session_scope(engine) as s:
        return [(a.rule, a.track_id) for a in s.scalars(select(m.Alert).where(
            m.Alert.site_id == site_id, m.Alert.resolved_at.is_(None)))]


def test_repeat_inspections_register_into_views_and_track_per_view(engine, tmp_path, model):
    # BRE 251 category 1 ("very slight", up to 1 mm) raised as yellow, to see the rules run
    site = store.add_site(engine, "bridge", profile="structure", crs_epsg=32632, thresholds={
        "structure": {"category_levels": ["green", "yellow", "yellow", "orange", "red",
                                          "red"]}})
    pier = np.asarray(Image.open(UAV / "photos" / "DSC00564.jpg").convert("RGB"))
    first = _folder(tmp_path / "i1", {"wall.jpg": _photo(_source(0.5), 0),
                                      "pier.jpg": _photo(pier, 1)})
    second = _folder(tmp_path / "i2", {"wall.jpg": _photo(_source(0.9), 1),
                                       "pier.jpg": _photo(pier, 2)})
    s1 = _run(engine, site.id, first, 0, model, tmp_path, pixel_size_m=GSD)
    s2 = _run(engine, site.id, second, 28, model, tmp_path)

    r1, r2 = _regs(engine, s1.id), _regs(engine, s2.id)
    assert {r.status for r in r1.values()} == {"reference"}  # the site had no view: two new
    assert "the site has no view yet" in r1["wall.jpg"].reason
    assert r1["wall.jpg"].view_id != r1["pier.jpg"].view_id
    for name in ("wall.jpg", "pier.jpg"):  # each photo back in its own place's view
        assert r2[name].status == "registered", r2[name].reason
        assert r2[name].view_id == r1[name].view_id
        assert r2[name].inliers >= 100 and r2[name].rms_px < 1.0
        # no GSD of its own: the view's scale (from the first inspection) through H
        assert f"view {r1[name].view_id} scale" in r2[name].gsd_source
        assert r2[name].gsd_m == pytest.approx(GSD, rel=0.15)

    hist = queries.site_defect_history(engine, site.id)
    assert len(hist) and hist["view_id"].notna().all()
    wall = views.view_history(engine, r1["wall.jpg"].view_id)
    continued = wall[wall["event"] == "continued"]
    assert len(continued), wall
    # the crack grew from half to nine tenths of its length: its lineage got longer
    lengths = wall.groupby("survey_id")["length_m"].sum()
    assert lengths[s2.id] > 1.3 * lengths[s1.id]
    with session_scope(engine) as s:
        summary = s.get(m.SurveySummary, s2.id)
        assert summary.continued_count >= 2 and summary.crack_count > 0
        severities = {c.severity for c in s.scalars(select(m.Crack).where(
            m.Crack.survey_id == s2.id))}
    assert severities <= {"negligible", "very slight", "slight"}  # BRE 251 from mm widths
    vs = views.site_views(engine, site.id)
    assert list(vs["photos"]) == [2, 2] and (vs["median_rms_px"] < 1.0).all()
    regs = views.survey_registrations(engine, s2.id)
    assert list(regs["status"]) == ["registered", "registered"]

    # structure rules ran on the photo tracks: BRE 251 alerts on tracks of the views
    alerts = _open_alerts(engine, site.id)
    photo_tracks = set(hist["track_id"])
    assert alerts and all(rule == "structure.bre251" and track in photo_tracks
                          for rule, track in alerts), alerts

    # re-running the second inspection gives the same views and keeps the older tracks
    before = set(queries.site_defect_history(engine, site.id)["track_id"])
    firsts = set(hist[hist["first_seen_at"] == hist["first_seen_at"].min()]["track_id"])
    r = process_survey(engine, s2.id, PipelineOptions(work_dir=tmp_path / "work"), model=model)
    assert r.status == "succeeded"
    again = _regs(engine, s2.id)
    assert {k: v.view_id for k, v in again.items()} == {k: v.view_id for k, v in r2.items()}
    after = set(queries.site_defect_history(engine, site.id)["track_id"])
    assert firsts <= after and len(after) == len(before)
    again_alerts = _open_alerts(engine, site.id)  # one open alert per track and rule
    assert len(again_alerts) == len(set(again_alerts)) == len(alerts)


def test_bad_photos_are_recorded_with_a_reason_never_a_crash(tmp_path, model):
    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    site = store.add_site(engine, "wall", profile="structure", crs_epsg=32632)
    first = _folder(tmp_path / "i1", {"wall.jpg": _photo(_source(0.6), 0)})
    s1 = _run(engine, site.id, first, 0, model, tmp_path, pixel_size_m=GSD)
    rng = np.random.default_rng(3)
    pier = np.asarray(Image.open(UAV / "photos" / "DSC00573.jpg").convert("RGB"))
    second = _folder(tmp_path / "i2", {
        "a_wall.jpg": _photo(_source(0.8), 1),
        "b_lens_cap.jpg": np.clip(rng.normal(3, 1.5, (400, 400, 3)), 0, 255).astype(np.uint8),
        "c_blurred_wall.jpg": cv2.GaussianBlur(_photo(_source(0.8), 2), (0, 0), 3.0),
        # the real DJI frame its publisher flags POOR_SHARPNESS (demo data), cropped at full
        # resolution so the model runs on 0.4 MP instead of 12 MP: the blur is unchanged
        "d_agung_poor_sharpness.jpg": np.asarray(Image.open(AGUNG).convert("RGB"))[
            1200:1800, 1700:2300],
        "e_broken.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg",
        "f_other_place.jpg": pier,  # no view matches it, and it has no GSD
    })
    s2 = _run(engine, site.id, second, 28, model, tmp_path)
    regs = _regs(engine, s2.id)
    view = regs["a_wall.jpg"].view_id
    assert regs["a_wall.jpg"].status == "registered" and view == _regs(engine, s1.id)[
        "wall.jpg"].view_id
    assert regs["b_lens_cap.jpg"].status == "refused" and "black" in regs["b_lens_cap.jpg"].reason
    for name in ("c_blurred_wall.jpg", "d_agung_poor_sharpness.jpg"):
        assert regs[name].status == "refused" and "blurred" in regs[name].reason, name
        assert regs[name].view_id is None
    assert regs["e_broken.jpg"].status == "refused" and "unreadable" in regs["e_broken.jpg"].reason
    other = regs["f_other_place.jpg"]
    assert other.status == "reference" and other.view_id not in (None, view)
    assert "matches none of the site's 1 view(s)" in other.reason
    assert other.gsd_m is None and "crackwatch view set-scale" in other.reason
    with session_scope(engine) as s:
        names = set(s.scalars(select(m.Crack.image_name).where(m.Crack.survey_id == s2.id)))
        job = s.scalars(select(m.JobRun).where(m.JobRun.survey_id == s2.id)).all()[-1]
    assert "f_other_place.jpg" not in names  # not measurable: not stored
    assert "a_wall.jpg" in names
    assert job.steps["store_track"]["photos"]["refused"] == 4
    assert any("f_other_place.jpg" in x for x in job.steps["store_track"]["photos"][
        "not_measured"])

    # the user gives the new view a scale: the next run measures that photo with it
    views.set_view_scale(engine, other.view_id, 0.0003)
    r = process_survey(engine, s2.id, PipelineOptions(work_dir=tmp_path / "work"), model=model)
    assert r.status == "succeeded"
    again = _regs(engine, s2.id)["f_other_place.jpg"]
    assert again.gsd_m == pytest.approx(0.0003) and "set by the user" in again.gsd_source
    with pytest.raises(ValueError, match="positive"):
        views.set_view_scale(engine, other.view_id, -1)
    engine.dispose()


def test_two_views_that_both_match_are_refused_as_ambiguous(tmp_path, model):
    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    site = store.add_site(engine, "wall", profile="structure", crs_epsg=32632)
    src = _source(0.7)
    # one inspection photographs the same place twice: two views of one place
    first = _folder(tmp_path / "i1", {"a.jpg": _photo(src, 0), "b.jpg": _photo(src, 1)})
    s1 = _run(engine, site.id, first, 0, model, tmp_path, pixel_size_m=GSD)
    assert len({r.view_id for r in _regs(engine, s1.id).values()}) == 2
    s2 = _run(engine, site.id, _folder(tmp_path / "i2", {"c.jpg": _photo(src, 2)}), 28,
              model, tmp_path, pixel_size_m=GSD)
    reg = _regs(engine, s2.id)["c.jpg"]
    assert reg.status == "refused" and reg.view_id is None
    named = re.search(r"views (\d+) \(\d+ inliers\) and (\d+) \(\d+ inliers\)", reg.reason)
    assert "ambiguous" in reg.reason and named, reg.reason
    assert {int(v) for v in named.groups()} == {r.view_id for r in _regs(engine, s1.id).values()}
    assert sum(c["accepted"] for c in reg.candidates) == 2
    with session_scope(engine) as s:
        tracks = set(s.scalars(select(m.Crack.track_id).where(m.Crack.survey_id == s2.id)))
    assert tracks == {None}  # stored, never forced into a view
    engine.dispose()


def test_nadir_photo_cracks_are_placed_on_the_map_approximately(tmp_path):
    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    site = store.add_site(engine, "slope", profile="slope", crs_epsg=32750)
    folder = _folder(tmp_path / "f", {"DJI_1.jpg": _photo(_source(), 0)})
    sv = store.ingest_survey(engine, site.id, folder, acquired_at=T0, pixel_size_m=0.01)
    fp = shapely.Polygon([(400000, 9080000), (400004.48, 9080000), (400004.48, 9080004.48),
                          (400000, 9080004.48)])  # 448 px x 1 cm, north up
    from geodata.registration import photo_features

    rgb = np.asarray(Image.open(folder / "DJI_1.jpg"))
    photo = views.SurveyPhoto("DJI_1.jpg", folder / "DJI_1.jpg", 448, 448,
                              features=photo_features(rgb), quality=None, own_gsd_m=0.01,
                              own_gsd_source="given", gsd_given=True, footprint=fp)
    import geopandas as gpd

    crack = shapely.MultiPolygon([shapely.box(10, 20, 110, 24)])  # near the top-left
    frame = gpd.GeoDataFrame({"length_m": [1.0], "mean_width_mm": [30.0],
                              "max_width_mm": [40.0], "area_m2": [0.04],
                              "photo": ["DJI_1.jpg"]}, geometry=[crack], crs=None)
    with session_scope(engine, write=True) as s:
        placed = views.register_survey_photos(s, s.get(m.Survey, sv.id), [photo])
        store.store_run(s, sv.id, frame, None, {"model_name": "x"}, coordinate_space="image")
    assert placed["DJI_1.jpg"].status == "reference"
    on_map = views.survey_photo_cracks_on_map(engine, sv.id)
    assert len(on_map) == 1 and on_map.crs.to_epsg() == 32750
    assert on_map["position_error_m"].iloc[0] == views.DEFAULT_GPS_ERROR_M
    g = on_map.geometry.iloc[0]
    assert fp.contains(g)
    # image rows grow downwards, northings upwards: a crack near the top is in the north
    assert g.centroid.y > fp.centroid.y and g.centroid.x < fp.centroid.x
    assert g.bounds[2] - g.bounds[0] == pytest.approx(1.0, abs=0.02)  # 100 px x 1 cm
    assert views.site_views(engine, site.id)["on_map"].tolist() == [True]
    engine.dispose()


def test_migration_0007_up_and_down_removes_photo_tracks_and_keeps_the_rest(engine, tmp_path,
                                                                          model):
    from geodata.store.migrate import downgrade

    site = store.add_site(engine, "bridge", profile="structure", crs_epsg=32632)
    src = np.asarray(Image.open(UAV / "photos" / "DSC00564.jpg").convert("RGB"))
    _run(engine, site.id, _folder(tmp_path / "i1", {"p.jpg": _photo(src, 0)}), 0, model,
         tmp_path, pixel_size_m=GSD)
    s2 = _run(engine, site.id, _folder(tmp_path / "i2", {"p.jpg": _photo(src, 1)}), 28, model,
              tmp_path)
    with session_scope(engine, write=True) as s:
        track = s.scalar(select(m.PhotoViewTrack.track_id))
        s.add(m.Alert(site_id=site.id, track_id=track, survey_id=s2.id, level="yellow",
                      rule="structure.bre251", message="wide", details={}))
    assert track is not None
    from geodata.store.migrate import DataLossError, downgrade_losses

    losses = downgrade_losses(engine, "0004")  # issue 30, item 7: said before, refused
    assert any(loss.startswith("table crack_track:") and "deleted" in loss for loss in losses)
    with pytest.raises(DataLossError, match="crack_track"):
        downgrade(engine, "0004")
    try:
        assert downgrade(engine, "0004", allow_data_loss=True) == "0004"
        with engine.connect() as conn:
            tables = {r[0] for r in conn.execute(text(
                "SELECT table_name FROM information_schema.tables" if engine.dialect.name ==
                "postgresql" else "SELECT name FROM sqlite_master WHERE type = 'table'"))}
            assert not tables & {"photo_view", "photo_registration", "photo_view_track"}
            assert conn.scalar(text("SELECT count(*) FROM crack_track")) == 0
            assert conn.scalar(text("SELECT count(*) FROM crack WHERE track_id IS NOT NULL")) == 0
            assert conn.scalar(text("SELECT count(*) FROM crack")) > 0
            assert conn.scalar(text("SELECT count(*) FROM alert WHERE track_id IS NULL")) == 1
        assert store.upgrade(engine) == store.head_revision()
        with session_scope(engine) as s:
            assert s.scalar(select(m.PhotoView)) is None  # re-run the surveys to rebuild
    finally:
        store.upgrade(engine)


# --------------------------------------------------------------------------- SIMULATED targets


@pytest.fixture(scope="module")
def simulated_site(tmp_path_factory, model):
    """The demo's SIMULATED photo-inspection site, run through the pipeline."""
    from jobs.demo import demo_sites

    tmp = tmp_path_factory.mktemp("sim")
    url = store.sqlite_url(tmp / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    ds = demo_sites(tmp / "demo")[-1]
    assert ds.name.startswith("SIMULATED photo inspections")
    store.add_site(engine, ds.name, profile=ds.profile, crs_epsg=ds.crs_epsg, lon=ds.lon,
                   lat=ds.lat, timezone=ds.timezone)
    for sv in ds.surveys:
        s = ingest(engine, ds.name, sv["path"], acquired_at=sv["acquired_at"],
                   pixel_size_m=sv["pixel_size_m"], metadata=sv["metadata"])
        r = process_survey(engine, s.id, PipelineOptions(work_dir=tmp / "work"), model=model)
        assert r.status == "succeeded", r.error
    yield engine, ds.name, tmp / "demo" / "simulated_inspections"
    engine.dispose()


def test_simulated_inspections_meet_the_registration_and_lineage_targets(simulated_site,
                                                                        model):
    from jobs.demo import photo_inspection_figures

    engine, name, truth = simulated_site
    f = photo_inspection_figures(engine, name, truth, model=model)
    # registration against the known warps: target <= 1 px (measured ~0.04 px)
    assert f["max_registration_rms_px"] <= 1.0, f["registration_rms_px"]
    # the grown crack is one lineage from the first inspection to the last
    assert f["lineages"] == 1 and len(f["near_tracks"]) >= 1, f
    # width growth of the first intervals is within 0.5 px of the reference
    assert all(abs(r["growth_error_px"]) <= 0.5 for r in f["width"][:3]), f["width"]
    # the lens-cap frame of the third inspection was refused, the rest registered
    regs = {}
    with session_scope(engine) as s:
        for r in s.scalars(select(m.PhotoRegistration)):
            regs[r.image_name, r.status] = regs.get((r.image_name, r.status), 0) + 1
    assert regs[("SIMULATED_lens_cap.jpg", "refused")] == 1
    assert regs[("SIMULATED_crack_wall.jpg", "registered")] == 3
    assert regs[("SIMULATED_pier.jpg", "registered")] == 3


def test_simulated_inspections_width_growth_within_half_a_pixel_everywhere(simulated_site,
                                                                          model):
    from jobs.demo import photo_inspection_figures

    engine, name, truth = simulated_site
    f = photo_inspection_figures(engine, name, truth, model=model)
    # an xfail until issue 26's structure model (the earlier model was 1.1 px off on the last
    # inspection: a 3-px spot on the newly revealed 1-2 px crack under re-projection)
    assert f["max_width_growth_error_px"] <= 0.5, f["width"]


def test_view_commands(simulated_site):
    import json

    from typer.testing import CliRunner

    from jobs.cli import app

    engine, name, truth = simulated_site
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    r = runner.invoke(app, ["view", "list", "--site", name, "--url", url])
    assert r.exit_code == 0 and "reference photo SIMULATED_crack_wall.jpg" in r.output, r.output
    r = runner.invoke(app, ["view", "list", "--site-id", "1", "--json", "--url", url])
    rows = json.loads(r.output)
    assert [v["photos"] for v in rows] == [4, 4] and all(v["tracks"] > 0 for v in rows)
    r = runner.invoke(app, ["view", "photos", "--survey", "3", "--json", "--url", url])
    statuses = {p["image_name"]: p["status"] for p in json.loads(r.output)}
    assert statuses == {"SIMULATED_crack_wall.jpg": "registered",
                        "SIMULATED_lens_cap.jpg": "refused",
                        "SIMULATED_pier.jpg": "registered"}
    r = runner.invoke(app, ["view", "photos", "--survey", "3", "--url", url])
    assert r.exit_code == 0 and "SIMULATED_lens_cap.jpg: refused: black frame" in r.output
    r = runner.invoke(app, ["view", "set-scale", "99", "--gsd-m", "0.001", "--url", url])
    assert r.exit_code == 2 and "no photo view with id 99" in r.output
    r = runner.invoke(app, ["view", "set-scale", "1", "--url", url])
    assert r.exit_code == 2 and "--gsd-m" in r.output
    folders = sorted(p for p in truth.iterdir() if p.is_dir())
    pair = ["--pair", "SIMULATED_crack_wall.jpg", "--pair", "SIMULATED_pier.jpg"]
    r = runner.invoke(app, ["view", "register-pairs", str(folders[0]), *pair, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [p["accepted"] for p in out["pairs"]] == [False, False]  # two different places


def test_dashboard_lists_views_and_shows_defect_history_per_view(simulated_site, monkeypatch,
                                                                  tmp_path):
    from tests.integration.test_dashboard import signed_in_app, write_users

    engine, name, _truth = simulated_site
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", engine.url.render_as_string(False))
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(write_users(tmp_path / "users.yaml")))
    at = signed_in_app("vic", timeout=120)  # a viewer sees the defect history
    at.run()
    at.query_params["site"] = name
    at.switch_page("pages/2_Defect_history.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Photo views: cracks over time" in [h.value for h in at.subheader]
    pick = at.selectbox(key="dh_view")  # views by tracks, most first: pick the crack wall's
    wall = next(o for o in pick.options if "SIMULATED_crack_wall" in o)  # "view 1: ..."
    pick.set_value(int(wall.split(":")[0].split()[1]))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c for im in at.get("image") for c in im.captions]
    assert any(c.startswith("before: SIMULATED_crack_wall.jpg of 2026-03-02")
               for c in captions), captions
    assert any(c.startswith("after: SIMULATED_crack_wall.jpg of 2026-05-25") for c in captions)
    at.switch_page("pages/1_Site.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    heads = [h.value for h in at.subheader]
    assert "Views (2)" in heads and "Photo registration" in heads
    # a photo survey without a map shows no map options (issue 28, item 7)
    toggles = [t.label for t in at.toggle]
    assert (toggles == []) == (not at.get("iframe")), toggles
