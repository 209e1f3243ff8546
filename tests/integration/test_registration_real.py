"""Registration on the real Brighton Beach nadir photo set (../shared/data/geo/brighton_beach,
18 overlapping DJI photos, 4000 x 2250 px): consecutive photos register, photos with no
common ground are refused, and a repeat "flight" registers into the previous flight's views.
Minutes on a 2-core CPU: marked slow."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from geodata import store, views
from geodata.photos import (
    ground_sample_distance_m,
    nadir_footprint,
    read_photo_set,
    utm_crs_for,
)
from geodata.registration import DEFAULT_PARAMS, register_pair
from geodata.store import models as m
from geodata.store.engine import session_scope
from tests.conftest import require_real_data

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def brighton():
    folder = require_real_data("geo", "brighton_beach")
    photos, failures = read_photo_set(folder)
    assert len(photos) == 18 and not failures
    crs = utm_crs_for(photos[0].lon_deg, photos[0].lat_deg)
    footprints = [nadir_footprint(p, ground_sample_distance_m(p), crs) for p in photos]
    return folder, photos, footprints, crs


def test_consecutive_pairs_register_and_pairs_without_common_ground_are_refused(brighton):
    folder, photos, footprints, _crs = brighton
    feats = [views.cached_features(p.path, DEFAULT_PARAMS) for p in photos]
    consecutive = [register_pair(feats[i], feats[i + 1]) for i in range(len(photos) - 1)]
    good = [r for r in consecutive if r.accepted and r.rms_px <= 2.0]
    assert len(good) / len(consecutive) >= 0.9, [r.reason for r in consecutive]
    # pairs whose GPS footprints lie more than twice the GPS error apart share no ground
    far = [(i, j) for i, j in itertools.combinations(range(len(photos)), 2)
           if footprints[i].distance(footprints[j]) > 2 * views.DEFAULT_GPS_ERROR_M]
    assert len(far) >= 20
    forced = [(photos[i].path.name, photos[j].path.name, r.reason) for i, j in far
              if (r := register_pair(feats[i], feats[j])).accepted]
    assert forced == []


def test_a_repeat_flight_registers_into_the_previous_flights_views(brighton, tmp_path):
    folder, photos, footprints, crs = brighton
    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    site = store.add_site(engine, "brighton", profile="slope", crs_epsg=crs.to_epsg())
    by_name = {p.path.name: (p, fp) for p, fp in zip(photos, footprints, strict=True)}

    def survey_photos(names):
        out = []
        for n in names:
            meta, fp = by_name[n]
            f = views.cached_features(meta.path, DEFAULT_PARAMS)
            out.append(views.SurveyPhoto(
                n, meta.path, meta.width_px, meta.height_px, features=f, quality=f.quality,
                own_gsd_m=ground_sample_distance_m(meta), own_gsd_source="EXIF/XMP",
                footprint=fp))
        return out

    t0 = datetime(2016, 6, 23, 16, 30, tzinfo=UTC)
    flights = {}
    for k, names in enumerate((["DJI_0018.JPG", "DJI_0020.JPG", "DJI_0022.JPG"],
                               ["DJI_0019.JPG", "DJI_0021.JPG"])):
        sv = store.ingest_survey(engine, site.id, folder, acquired_at=t0 + timedelta(days=k),
                                 source_type="photos", sha256=f"{k + 1}" * 64)
        with session_scope(engine, write=True) as s:
            flights[k] = views.register_survey_photos(s, s.get(m.Survey, sv.id),
                                                      survey_photos(names))
    assert {p.status for p in flights[0].values()} == {"reference"}
    view_of = {name: p.view_id for name, p in flights[0].items()}
    for name, neighbours in (("DJI_0019.JPG", ("DJI_0018.JPG", "DJI_0020.JPG")),
                             ("DJI_0021.JPG", ("DJI_0020.JPG", "DJI_0022.JPG"))):
        p = flights[1][name]
        # between two overlapping views of one flight line: the best neighbour, not refused
        assert p.status == "registered", p.reason
        assert p.view_id in {view_of[n] for n in neighbours}
        assert "view" in p.gsd_source and p.gsd_m == pytest.approx(0.0189, rel=0.1)
    with session_scope(engine) as s:
        for r in s.scalars(select(m.PhotoRegistration).where(
                m.PhotoRegistration.status == "registered")):
            assert r.rms_px <= 2.0 and r.footprint is not None
            assert r.position_error_m == views.DEFAULT_GPS_ERROR_M
    engine.dispose()
