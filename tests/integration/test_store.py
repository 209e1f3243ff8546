"""The crack store on both backends: SQLite (tmp_path) and PostgreSQL + PostGIS.

The PostGIS half creates a fresh database ``crackwatch_test_<random>`` per test session on
``CRACKWATCH_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and drops it at the end. When the server or PostGIS is missing these tests skip with the
reason, except in CI (env ``CI`` set, as ``.ci/run`` does), where they fail. The fixtures
live in ``tests/conftest.py`` (``postgis_url``, every PostGIS test's) and
``tests/integration/conftest.py`` (``engine``, shared with the fault-injection tests).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from builders import crack_frame
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from geodata import queries, store
from geodata.errors import CRSError, RecordNotFoundError, StoreError
from geodata.export import export_site
from geodata.store import Alert, Crack, CrackTrack, InferenceRun, TrackObservation
from geodata.store.migrate import include_object_for
from geodata.tracking import track_survey
from geodata.vectorise import vectorise_cracks_and_skeletons

EPSG = 32633
X0, Y0 = 500_000.123456789, 5_100_000.987654321  # awkward floats: round trips must be exact
T0 = datetime(2024, 3, 1, 6, 30, tzinfo=UTC)
# --------------------------------------------------------------------------- helpers


def strip(x0: float, x1: float, y: float = 0.0, width_m: float = 0.004) -> shapely.Geometry:
    """A horizontal crack polygon from x0 to x1 m (relative to X0, Y0) at height y."""
    return shapely.MultiPolygon([shapely.box(X0 + x0, Y0 + y, X0 + x1, Y0 + y + width_m)])


def frame(geoms: list, crs=EPSG, **extra) -> gpd.GeoDataFrame:
    """A crack frame like geodata.vectorise returns (see builders.crack_frame)."""
    return crack_frame(geoms, crs=crs, **extra)


def new_site(eng, name="north-slope", profile="slope"):
    return store.add_site(eng, name, profile=profile, crs_epsg=EPSG, lon=15.0, lat=46.0,
                          timezone="Europe/Vienna", schedule="0 2 * * *",
                          thresholds={"opening_rate_mm_per_day": 0.5})


def new_survey(eng, site, day: int, *, key: str | None = None, **kw):
    return store.ingest_survey(eng, site.id, f"/data/ortho_{day}.tif",
                               acquired_at=T0 + timedelta(days=day),
                               sha256=(key or f"{day:02d}") * (64 // len(key or "00")),
                               pixel_size_m=0.002, **kw)


RUN = {"model_name": "crackwatch-unet-mnv2", "model_version": "1", "tiling": {"tile": 512}}


def snapshot(eng) -> dict:
    """Everything a run writes, as comparable plain data."""
    with Session(eng) as s:
        return {
            "cracks": [(c.id, c.run_id, c.track_id, shapely.to_wkb(c.polygon, include_srid=True))
                       for c in s.scalars(select(Crack).order_by(Crack.id))],
            "runs": [(r.id, r.status) for r in s.scalars(select(InferenceRun)
                                                         .order_by(InferenceRun.id))],
            "tracks": [(t.id, t.status, t.last_survey_id) for t in s.scalars(
                select(CrackTrack).order_by(CrackTrack.id))],
            "observations": s.scalar(select(func.count(TrackObservation.id))),
        }


# --------------------------------------------------------------------------- schema


def test_migrations_match_models_and_are_idempotent(engine):
    assert store.upgrade(engine) == store.head_revision() == store.current_revision(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_object": include_object_for(conn.dialect.name)})
        assert compare_metadata(ctx, store.Base.metadata) == []
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            gist = set(conn.scalars(text(
                "SELECT indexname FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")))
        assert {"ix_crack_polygon_gist", "ix_survey_footprint_gist"} <= gist
    else:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_missing_schema_is_a_clear_error(tmp_path):
    eng = store.connect(store.sqlite_url(tmp_path / "empty.db"))
    with pytest.raises(StoreError, match="crackwatch db upgrade"):
        store.add_site(eng, "x", profile="slope", crs_epsg=EPSG)
    with pytest.raises(StoreError, match="in-memory"):
        store.connect("sqlite://")
    with pytest.raises(StoreError, match="no store at"):
        store.connect(store.sqlite_url(tmp_path / "nope.db"), must_exist=True)


def _site_columns(eng) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(eng).get_columns("site")}


def test_migration_0004_site_model_name_up_and_down(engine):
    """0004 adds site.model_name and takes it away again; no site, survey or run is lost
    (on SQLite a table copy of ``site`` would cascade-delete its surveys)."""
    from geodata.store.migrate import downgrade

    site = new_site(engine)
    survey = new_survey(engine, site, 0)
    store.store_run(engine, survey.id, frame([strip(0, 1)]), None, RUN)
    store.set_site_model(engine, site.id, "some-model")
    before = snapshot(engine)
    try:
        assert downgrade(engine, "0003", allow_data_loss=True) == "0003"
        assert "model_name" not in _site_columns(engine)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM survey")) == 1
        assert store.upgrade(engine) == store.head_revision()  # 0004 and any later ones
        assert "model_name" in _site_columns(engine)
        assert store.get_site(engine, site.id).model_name is None  # dropped with the column
        assert snapshot(engine) == before
    finally:
        store.upgrade(engine)


def test_site_model_name_is_checked_and_nothing_written_on_failure(engine):
    def check(name):
        if name != "known-model":
            raise FileNotFoundError(f"No model named {name!r}. See `crackwatch models list`.")

    site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG,
                          model_name="known-model", check_model=check)
    assert store.get_site(engine, "wall").model_name == "known-model"
    with pytest.raises(FileNotFoundError, match="crackwatch models list"):
        store.add_site(engine, "other", profile="slope", crs_epsg=EPSG, model_name="nope",
                       check_model=check)
    with pytest.raises(RecordNotFoundError):
        store.get_site(engine, "other")
    with pytest.raises(FileNotFoundError, match="nope"):
        store.set_site_model(engine, "wall", "nope", check_model=check)
    assert store.get_site(engine, "wall").model_name == "known-model"
    with pytest.raises(ValueError, match="non-empty"):
        store.set_site_model(engine, "wall", " ")
    assert store.set_site_model(engine, site.id, None).model_name is None
    assert store.get_site(engine, "wall").model_name is None
    with pytest.raises(StoreError, match="exists already"):  # exist_ok: another model differs
        store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG,
                       model_name="known-model", exist_ok=True)


# --------------------------------------------------------------------------- geometry, CRS


def test_geometry_round_trip_is_exact(engine):
    site = new_site(engine)
    rng = np.random.default_rng(3)
    ring = [(X0 + float(x), Y0 + float(y)) for x, y in rng.uniform(0, 3, size=(40, 2))]
    hull = shapely.convex_hull(shapely.MultiPoint(ring))
    holey = shapely.Polygon(hull.exterior.coords,
                            [shapely.box(X0 + 1.1, Y0 + 1.1, X0 + 1.2, Y0 + 1.2).exterior.coords])
    geoms = [shapely.MultiPolygon([holey]), shapely.MultiPolygon([shapely.box(
        X0 + 10, Y0, X0 + 10.000000001, Y0 + 1e-7), shapely.box(X0 + 20, Y0, X0 + 21, Y0 + 1)]),
        strip(0, 1 / 3)]
    skeletons = gpd.GeoSeries([shapely.LineString(ring[:7]),
                               shapely.MultiLineString([ring[:2], ring[5:9]]),
                               shapely.Point(ring[0])], crs=EPSG)
    footprint = shapely.box(X0 - 5, Y0 - 5, X0 + 50, Y0 + 50)
    survey = new_survey(engine, site, 0, footprint=footprint)
    cracks = frame(geoms)
    store.store_run(engine, survey.id, cracks, skeletons, RUN)

    back = queries.survey_cracks(engine, survey.id, with_skeletons=True)
    assert back.crs.to_epsg() == EPSG
    assert len(back) == 3
    for orig, got in zip(geoms, back.geometry, strict=True):
        assert shapely.to_wkb(got) == shapely.to_wkb(orig)  # bit-for-bit coordinates
        assert shapely.get_srid(got) == EPSG
    for orig, got in zip(skeletons, back["skeleton"], strict=True):
        assert shapely.to_wkb(got) == shapely.to_wkb(orig)
    np.testing.assert_array_equal(back["length_m"].to_numpy(), cracks["length_m"].to_numpy())
    np.testing.assert_array_equal(back["max_width_mm"].to_numpy(),
                                  cracks["max_width_mm"].to_numpy())
    assert list(back["crack_index"]) == [1, 2, 3]
    assert list(back["severity"]) == [store.crack_severity(w) for w in cracks["max_width_mm"]]
    sv = store.get_survey(engine, survey.id)
    assert shapely.to_wkb(sv.footprint) == shapely.to_wkb(footprint)
    assert sv.acquired_at == T0 and sv.acquired_at.tzinfo is not None


def test_vectorised_cracks_store_exactly(engine):
    """The real producer: vectorise_cracks_and_skeletons output goes in and out unchanged."""
    from affine import Affine

    prob = np.zeros((60, 80), np.float32)
    prob[10:13, 5:70] = 0.9
    prob[30:50, 40:43] = 0.8
    transform = Affine(0.002, 0, X0, 0, -0.002, Y0)
    gdf, skel = vectorise_cracks_and_skeletons(prob, transform, EPSG)
    site = new_site(engine)
    survey = new_survey(engine, site, 0)
    run = store.store_run(engine, survey.id, gdf, skel, RUN)
    assert run.crack_count == len(gdf) == 2
    back = queries.survey_cracks(engine, survey.id, with_skeletons=True)
    for a, b in zip(gdf.geometry, back.geometry, strict=True):
        assert shapely.to_wkb(a) == shapely.to_wkb(b)
    for a, b in zip(skel, back["skeleton"], strict=True):
        assert shapely.to_wkb(a) == shapely.to_wkb(b)
    np.testing.assert_array_equal(back["mean_width_mm"], gdf["mean_width_mm"])


def test_site_crs_must_be_projected(engine):
    with pytest.raises(CRSError, match="geographic"):
        store.add_site(engine, "a", profile="slope", crs_epsg=4326)
    with pytest.raises(CRSError, match="EPSG code"):
        store.add_site(engine, "b", profile="slope",
                       crs_epsg="+proj=tmerc +lat_0=0 +lon_0=14.2 +k=1 +x_0=0 +y_0=0 "
                                "+ellps=WGS84 +units=m")
    with pytest.raises(CRSError, match="metre"):
        store.add_site(engine, "c", profile="slope", crs_epsg=2277)  # Texas, US survey feet
    with pytest.raises(ValueError, match="profile"):
        store.add_site(engine, "d", profile="bridge", crs_epsg=EPSG)
    with pytest.raises(ValueError, match="WGS 84"):
        store.add_site(engine, "e", profile="slope", crs_epsg=EPSG, lon=X0, lat=Y0)
    site = store.add_site(engine, "ok", profile="structure", crs_epsg="EPSG:2056")
    assert site.crs_epsg == 2056
    with pytest.raises(StoreError, match="exists already"):
        store.add_site(engine, "ok", profile="structure", crs_epsg=2056)
    assert store.add_site(engine, "ok", profile="structure", crs_epsg=2056,
                          exist_ok=True).id == site.id
    assert store.get_site(engine, "ok").id == store.get_site(engine, site.id).id
    with pytest.raises(RecordNotFoundError, match="known sites"):
        store.get_site(engine, "nope")


def test_crack_frame_in_another_crs_is_refused_and_nothing_stored(engine):
    site = new_site(engine)
    survey = new_survey(engine, site, 0)
    wrong = frame([strip(0, 1)]).set_crs(32632, allow_override=True)
    with pytest.raises(CRSError) as exc:
        store.store_run(engine, survey.id, wrong, None, RUN)
    msg = str(exc.value)
    assert "EPSG:32632" in msg and "EPSG:32633" in msg and "to_crs(epsg=32633)" in msg
    no_crs = frame([strip(0, 1)], crs=None)
    with pytest.raises(CRSError, match="has no CRS"):
        store.store_run(engine, survey.id, no_crs, None, RUN)
    skel_wrong = gpd.GeoSeries([shapely.Point(X0, Y0)], crs=32632)
    with pytest.raises(CRSError, match="skeleton"):
        store.store_run(engine, survey.id, frame([strip(0, 1)]), skel_wrong, RUN)
    with pytest.raises(CRSError):
        store.ingest_survey(engine, site.id, "/x.tif", acquired_at=T0, sha256="f" * 64,
                            footprint=gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=4326))
    assert snapshot(engine) == {"cracks": [], "runs": [], "tracks": [], "observations": 0}


def test_bad_crack_rows_are_refused(engine):
    site = new_site(engine)
    survey = new_survey(engine, site, 0)
    bad = frame([strip(0, 1), strip(0, 1, y=2)])
    bad.loc[1, "max_width_mm"] = np.nan
    with pytest.raises(ValueError, match="max_width_mm"):
        store.store_run(engine, survey.id, bad, None, RUN)
    lines = gpd.GeoDataFrame(frame([strip(0, 1)]).drop(columns="geometry"),
                             geometry=[shapely.LineString([(X0, Y0), (X0 + 1, Y0)])], crs=EPSG)
    with pytest.raises(ValueError, match="Polygons"):
        store.store_run(engine, survey.id, lines, None, RUN)
    with pytest.raises(ValueError, match="index"):
        store.store_run(engine, survey.id, frame([strip(0, 1)]),
                        gpd.GeoSeries([shapely.Point(X0, Y0)], index=[5], crs=EPSG), RUN)
    with pytest.raises(ValueError, match="unknown keys"):
        store.store_run(engine, survey.id, frame([strip(0, 1)]), None, {"model": "x"})


def test_photo_cracks_stay_in_image_space(engine):
    site = new_site(engine, profile="structure")
    survey = store.ingest_survey(engine, site.id, "/photos/wall", acquired_at=T0,
                                 sha256="e" * 64, source_type="photos",
                                 footprint=shapely.box(X0, Y0, X0 + 20, Y0 + 15))
    px = frame([shapely.MultiPolygon([shapely.box(10, 20, 300, 24)]),
                shapely.MultiPolygon([shapely.box(5, 5, 9, 200)])], crs=None,
               photo=["DJI_0001.JPG", "DJI_0002.JPG"])
    px.attrs["coordinate_space"] = "image"
    map_crack = frame([strip(0, 1)])
    store.store_run(engine, survey.id, px, None, RUN)
    back = queries.survey_cracks(engine, survey.id, coordinate_space="image")
    assert back.crs is None and back.attrs["coordinate_space"] == "image"
    assert list(back["image_name"]) == ["DJI_0001.JPG", "DJI_0002.JPG"]
    for a, b in zip(px.geometry, back.geometry, strict=True):
        assert shapely.to_wkb(a) == shapely.to_wkb(b) and shapely.get_srid(b) == 0
    assert len(queries.survey_cracks(engine, survey.id)) == 0
    fc = queries.survey_cracks_geojson(engine, survey.id)
    assert fc["features"] == [] and fc["skipped_image_cracks"] == 2
    with pytest.raises(CRSError, match="image"):
        store.store_run(engine, survey.id, map_crack, None, RUN, coordinate_space="image")


# --------------------------------------------------------------------------- ingest, runs


def test_ingest_is_idempotent_by_sha256(engine, tmp_path):
    site = new_site(engine)
    ortho = tmp_path / "ortho.tif"
    ortho.write_bytes(b"not really a tiff, but bytes to hash" * 100)
    a = store.ingest_survey(engine, site.id, ortho, acquired_at=T0, metadata={"simulated": True})
    b = store.ingest_survey(engine, site.name, ortho, acquired_at=T0 + timedelta(days=3))
    assert a.id == b.id and b.acquired_at == T0 and b.meta == {"simulated": True}
    assert a.sha256 == store.source_sha256(ortho) and a.source_type == "orthomosaic"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"a")
    (photos / "b.jpg").write_bytes(b"b")
    (photos / ".hidden").write_bytes(b"x")
    c = store.ingest_survey(engine, site.id, photos, acquired_at=T0)
    assert c.source_type == "photos" and c.id != a.id
    (photos / ".hidden").write_bytes(b"changed")
    assert store.source_sha256(photos) == c.sha256
    (photos / "b.jpg").write_bytes(b"B")
    assert store.source_sha256(photos) != c.sha256
    with pytest.raises(ValueError, match="no timezone"):
        store.ingest_survey(engine, site.id, ortho, acquired_at=datetime(2024, 1, 1))
    with pytest.raises(FileNotFoundError):
        store.ingest_survey(engine, site.id, tmp_path / "missing.tif", acquired_at=T0)
    with pytest.raises(RecordNotFoundError):
        store.ingest_survey(engine, "no-site", ortho, acquired_at=T0)
    with Session(engine) as s:
        assert s.scalar(select(func.count(store.Survey.id))) == 2


def test_failed_run_leaves_the_store_unchanged(engine, monkeypatch):
    import geodata.store.api as api

    site = new_site(engine)
    s0 = new_survey(engine, site, 0)
    s1 = new_survey(engine, site, 5)
    store.store_run(engine, s0.id, frame([strip(0, 1), strip(0, 1, y=3)]), None, RUN)
    store.store_run(engine, s1.id, frame([strip(0, 1.2)]), None, RUN)
    before = snapshot(engine)
    assert len(before["cracks"]) == 3 and before["observations"] == 4

    real = api._insert_cracks

    def insert_then_fail(s, run, rows):
        real(s, run, rows)  # the new cracks are in, the old ones deleted, the run superseded
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api, "_insert_cracks", insert_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.store_run(engine, s0.id, frame([strip(0, 2), strip(5, 6)]), None, RUN)
    assert snapshot(engine) == before

    # inside a caller's session: only the failed call's work is rolled back
    with Session(engine) as session:
        store.add_site(session, "other", profile="structure", crs_epsg=EPSG)
        with pytest.raises(RuntimeError):
            store.store_run(session, s1.id, frame([strip(0, 2)]), None, RUN)
        session.commit()
    assert store.get_site(engine, "other").profile == "structure"
    assert snapshot(engine) == before


def test_rerun_replaces_cracks_atomically(engine):
    site = new_site(engine)
    s0 = new_survey(engine, site, 0)
    s1 = new_survey(engine, site, 10)
    store.store_run(engine, s0.id, frame([strip(0, 1)]), None, RUN)
    first = store.store_run(engine, s1.id, frame([strip(0, 1.5), strip(0, 1, y=4)]), None, RUN)
    track_a = queries.survey_cracks(engine, s0.id)["track_id"].iloc[0]
    again = store.store_run(engine, s1.id, frame([strip(0, 1.4)]), None,
                            {**RUN, "model_version": "2"})
    with Session(engine) as s:
        runs = dict(s.execute(select(InferenceRun.id, InferenceRun.status)
                              .where(InferenceRun.survey_id == s1.id)).all())
    assert runs == {first.id: "superseded", again.id: "succeeded"}
    cracks = queries.survey_cracks(engine, s1.id)
    assert len(cracks) == 1 and set(cracks["run_id"]) == {again.id}
    assert cracks["length_m"].iloc[0] == pytest.approx(1.4)
    assert cracks["track_id"].iloc[0] == track_a  # re-tracked onto the same track
    ts = queries.track_timeseries(engine, int(track_a))
    assert list(ts["event"]) == ["new", "continued"]
    assert ts["delta_length_m"].iloc[1] == pytest.approx(0.4)


def test_record_failed_run(engine):
    site = new_site(engine)
    survey = new_survey(engine, site, 0)
    try:
        raise MemoryError("tile batch too large")
    except MemoryError as exc:
        run = store.record_failed_run(engine, survey.id, RUN, exc)
    assert run.status == "failed" and "MemoryError: tile batch too large" in run.error
    assert "Traceback" in run.error
    assert queries.list_surveys(engine, site.id)["run_id"].isna().all()


# --------------------------------------------------------------------------- tracking


def _sequence(eng):
    """Four surveys: growth, vanish + new, split, merge. Returns (site, surveys)."""
    site = new_site(eng)
    days = [0, 10, 20, 40]
    surveys = [new_survey(eng, site, d) for d in days]
    store.store_run(eng, surveys[0].id, frame([strip(0, 2.0), strip(0, 1, y=5)]), None, RUN)
    store.store_run(eng, surveys[1].id, frame([strip(0, 2.5, width_m=0.006),
                                              strip(0, 1, y=9)]), None, RUN)
    # the long crack splits (gap 1.0-1.1); pieces 1.0 and 1.5 m
    store.store_run(eng, surveys[2].id, frame([strip(0, 1.0, width_m=0.006),
                                              strip(1.1, 2.6, width_m=0.006),
                                              strip(0, 1, y=9)]), None, RUN)
    # ...and joins again, longer
    store.store_run(eng, surveys[3].id, frame([strip(0, 3.0, width_m=0.008),
                                              strip(0, 1, y=9)]), None, RUN)
    return site, surveys


def _tracks(eng, survey_id):
    return list(queries.survey_cracks(eng, survey_id)["track_id"])


def test_tracking_sequence_in_store(engine):
    site, sv = _sequence(engine)
    a, b = _tracks(engine, sv[0].id)
    a1, c = _tracks(engine, sv[1].id)
    assert a1 == a and c not in (a, b)
    small, large, c2 = _tracks(engine, sv[2].id)
    assert large == a and c2 == c and small not in (a, b, c)
    merged, c3 = _tracks(engine, sv[3].id)
    assert merged == a and c3 == c

    with Session(engine) as s:
        tracks = {t.id: t for t in s.scalars(select(CrackTrack))}
    assert tracks[b].status == "vanished" and tracks[b].last_survey_id == sv[0].id
    assert tracks[small].parent_track_id == a
    assert tracks[small].status == "merged" and tracks[small].merged_into_track_id == a
    assert tracks[a].status == "active" and tracks[a].last_seen_at == T0 + timedelta(days=40)

    ts = queries.track_timeseries(engine, int(a))
    assert list(ts["event"]) == ["new", "continued", "continued", "continued"]
    assert ts["delta_length_m"].iloc[1] == pytest.approx(0.5)
    assert ts["length_rate_m_per_day"].iloc[1] == pytest.approx(0.05)
    assert ts["delta_max_width_mm"].iloc[1] == pytest.approx(2.0)
    # merge: baseline is both pieces (1.0 + 1.5 m), not only the continuing one
    assert ts["delta_length_m"].iloc[3] == pytest.approx(3.0 - 2.5)
    assert ts["days_since_previous"].iloc[3] == pytest.approx(20.0)
    assert ts["max_width_rate_mm_per_day"].iloc[3] == pytest.approx(2.0 / 20)

    sums = queries.site_survey_summaries(engine, site.name)
    assert list(sums["crack_count"]) == [2, 2, 3, 2]
    assert list(sums["new_count"]) == [2, 1, 0, 0]
    assert list(sums["vanished_count"]) == [0, 1, 0, 0]
    assert list(sums["split_count"]) == [0, 0, 1, 0]
    assert list(sums["merged_count"]) == [0, 0, 0, 1]
    assert sums["total_length_m"].iloc[2] == pytest.approx(3.5)

    hist = queries.site_defect_history(engine, site.id).set_index("track_id")
    assert hist.loc[a, "trend"] == "growing" and hist.loc[a, "surveys_measured"] == 4
    assert hist.loc[a, "change_length_m"] == pytest.approx(1.0)
    assert hist.loc[c, "trend"] == "stable" and hist.loc[b, "status"] == "vanished"
    assert hist.loc[b, "trend"] == "new"
    assert hist.loc[a, "severity"] == "moderate"  # 8 mm: BRE Digest 251 category 3

    # re-tracking from an old survey keeps old ids and gives the same picture
    before = {i: _tracks(engine, s.id) for i, s in enumerate(sv)}
    summary = track_survey(engine, sv[1].id)
    assert summary["surveys_tracked"] == 3 and summary["vanished_count"] == 1
    after = {i: _tracks(engine, s.id) for i, s in enumerate(sv)}
    assert after[0] == before[0] and after[1][0] == a and after[3][0] == a
    assert len(queries.site_survey_summaries(engine, site.id)) == 4


# --------------------------------------------------------------------------- queries


def test_dashboard_queries(engine):
    site, sv = _sequence(engine)
    quiet = store.add_site(engine, "quiet-wall", profile="structure", crs_epsg=2056,
                           lon=7.4, lat=46.9)
    with Session(engine) as s, s.begin():
        s.add_all([
            Alert(site_id=site.id, level="yellow", rule="slope.opening_rate", message="y",
                  measured_value=0.1, threshold=0.05),
            Alert(site_id=site.id, level="red", rule="slope.opening_rate", message="r",
                  resolved_at=T0),
            Alert(site_id=quiet.id, level="orange", rule="structure.bre251", message="o",
                  acknowledged_at=T0, acknowledged_by="ana"),
        ])
    ov = queries.sites_overview(engine).set_index("name")
    assert ov.loc["north-slope", "alert_level"] == "yellow"  # red is resolved
    assert ov.loc["quiet-wall", "alert_level"] == "orange"  # acknowledged is still open
    assert ov.loc["north-slope", "survey_count"] == 4
    assert ov.loc["north-slope", "latest_crack_count"] == 2
    assert ov.loc["quiet-wall", "survey_count"] == 0
    assert len(queries.site_alerts(engine, site.id, open_only=True)) == 1

    fc = queries.survey_cracks_geojson(engine, sv[2].id)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    lon, lat = np.array(fc["features"][0]["geometry"]["coordinates"][0][0][0])
    assert 14.9 < lon < 15.1 and 46.0 < lat < 46.1  # UTM 33N easting 500 km ~ 15 deg E
    assert {"crack_id", "track_id", "length_m", "max_width_mm", "severity"} <= set(
        fc["features"][0]["properties"])
    wiggly = shapely.MultiPolygon([shapely.Polygon(
        [(X0 + x, Y0 + 0.0005 * (i % 2)) for i, x in enumerate(np.linspace(0, 1, 50))]
        + [(X0 + 1, Y0 + 0.01), (X0, Y0 + 0.01)])])
    s5 = new_survey(engine, site, 50)
    store.store_run(engine, s5.id, frame([wiggly]), None, RUN)
    full = queries.survey_cracks_geojson(engine, s5.id, simplify_m=0)
    simple = queries.survey_cracks_geojson(engine, s5.id)  # one pixel = 2 mm
    n_full = len(full["features"][0]["geometry"]["coordinates"][0][0])
    n_simple = len(simple["features"][0]["geometry"]["coordinates"][0][0])
    assert n_simple < n_full
    surveys = queries.list_surveys(engine, site.name)
    assert list(surveys["crack_count"]) == [2, 2, 3, 2, 1]
    with pytest.raises(RecordNotFoundError):
        queries.track_timeseries(engine, 999_999)


# --------------------------------------------------------------------------- export


def test_export_reads_back_equal(engine, tmp_path):
    site, sv = _sequence(engine)
    stored = queries.site_cracks(engine, site.id)
    gpkg = tmp_path / "site.gpkg"
    assert export_site(engine, site.name, gpkg, "gpkg") == [gpkg]
    assert {name for name, _ in pyogrio.list_layers(gpkg)} == {"cracks", "tracks", "surveys"}
    got = gpd.read_file(gpkg, layer="cracks")
    assert got.crs.to_epsg() == EPSG and len(got) == len(stored) == 9
    for a, b in zip(stored.geometry, got.geometry, strict=True):
        assert shapely.to_wkb(a) == shapely.to_wkb(b)
    for col in ("crack_id", "survey_id", "track_id", "length_m", "max_width_mm", "area_m2",
                "mean_probability", "severity"):
        np.testing.assert_array_equal(got[col].to_numpy(), stored[col].to_numpy(), err_msg=col)
    assert list(pd.to_datetime(got["acquired_at"], utc=True)) == list(stored["acquired_at"])
    tracks = gpd.read_file(gpkg, layer="tracks")
    assert set(tracks["track_id"]) == set(stored["track_id"])
    assert set(tracks["status"]) == {"active", "vanished", "merged"}
    surveys = gpd.read_file(gpkg, layer="surveys")
    assert list(surveys["survey_id"]) == [s.id for s in sv]

    geojson = tmp_path / "site.geojson"
    paths = export_site(engine, site.id, geojson, "geojson")
    assert [p.name for p in paths] == ["site.geojson", "site_tracks.geojson",
                                       "site_surveys.geojson"]
    gj = gpd.read_file(geojson)
    assert gj.crs.to_epsg() == EPSG  # site CRS kept, not silently reprojected
    for a, b in zip(stored.geometry, gj.geometry, strict=True):
        assert shapely.equals_exact(a, b, tolerance=1e-6)
    wgs = export_site(engine, site.id, tmp_path / "wgs.geojson", "geojson", rfc7946=True)[0]
    assert gpd.read_file(wgs).crs.to_epsg() == 4326

    csv = tmp_path / "site.csv"
    export_site(engine, site.id, csv, "csv")
    table = pd.read_csv(csv)
    assert list(table["crack_id"]) == list(stored["crack_id"])
    for a, wkt in zip(stored.geometry, table["WKT"], strict=True):
        assert shapely.equals_exact(a, shapely.from_wkt(wkt), tolerance=1e-6)
    assert (tmp_path / "site_tracks.csv").exists() and (tmp_path / "site_surveys.csv").exists()
    with pytest.raises(ValueError, match="format"):
        export_site(engine, site.id, tmp_path / "x.shp", "shp")


# --------------------------------------------------------------------------- SQLite WAL


def test_sqlite_reader_during_writer(sqlite_engine):
    eng = sqlite_engine
    site = new_site(eng)
    s0 = new_survey(eng, site, 0)
    store.store_run(eng, s0.id, frame([strip(0, 1)]), None, RUN)
    count = select(func.count(Crack.id))

    # a dashboard read transaction stays open while the nightly job commits a run
    with eng.connect() as reader:
        reader.begin()
        assert reader.scalar(count) == 1
        s1 = new_survey(eng, site, 1)
        store.store_run(eng, s1.id, frame([strip(0, 1.1), strip(0, 1, y=3)]), None, RUN)
        assert reader.scalar(count) == 1  # its snapshot
        reader.commit()
        assert reader.scalar(count) == 3

    # a writer holds the write lock with uncommitted rows; a reader in another thread is
    # neither blocked (busy_timeout is 200 ms here) nor sees them
    seen: list = []
    writer = Session(eng.execution_options(crackwatch_write=True))
    try:
        writer.execute(text("DELETE FROM crack"))
        t = threading.Thread(target=lambda: seen.append(
            queries.survey_cracks(eng, s1.id)["crack_id"].tolist()))
        t.start()
        t.join(10)
    finally:
        writer.rollback()
        writer.close()
    assert len(seen) == 1 and len(seen[0]) == 2
    assert len(queries.survey_cracks(eng, s1.id)) == 2


# --------------------------------------------------------------------------- CLI, settings


def test_cli_db_export_bench(tmp_path, monkeypatch):
    from jobs.cli import app

    runner = CliRunner()
    url = store.sqlite_url(tmp_path / "cli.db")
    r = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert r.exit_code == 0, r.output
    assert f"revision {store.head_revision()}" in r.output
    r = runner.invoke(app, ["db", "current", "--url", url])
    assert r.exit_code == 0 and "up to date" in r.output
    eng = store.connect(url)
    site, _ = _sequence(eng)
    eng.dispose()
    out = tmp_path / "out" / "north.gpkg"
    r = runner.invoke(app, ["export", "--site", "north-slope", "--format", "gpkg", "--out",
                            str(out), "--url", url])
    assert r.exit_code == 0, r.output
    assert len(gpd.read_file(out, layer="cracks")) == 9
    r = runner.invoke(app, ["export", "--site", "nowhere", "--out", str(out), "--url", url])
    assert r.exit_code == 2 and "known sites" in r.output
    r = runner.invoke(app, ["export", "--site", "x", "--out", str(out), "--url",
                            store.sqlite_url(tmp_path / "typo.db")])
    assert r.exit_code == 2 and "no store at" in r.output
    assert not (tmp_path / "typo.db").exists()
    r = runner.invoke(app, ["bench", "store", "--n", "60", "--per-survey", "25"])
    assert r.exit_code == 0, r.output
    assert "insert rows/s" in r.output and '"n_cracks": 60' in r.output
    # default URL from CRACKWATCH_DATA_DIR
    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRACKWATCH_DATABASE_URL", raising=False)
    r = runner.invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "data" / "crackwatch.db").exists()


def test_settings_resolve_database_url(tmp_path, monkeypatch):
    from jobs.settings import Settings

    monkeypatch.delenv("CRACKWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path))
    assert Settings().resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/crackwatch.db"
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert Settings().resolved_database_url() == "postgresql+psycopg://u@h/db"
