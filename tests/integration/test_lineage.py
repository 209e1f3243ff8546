"""Alerts keyed to crack lineage: a rebuild of the tracks (a survey that arrives out of date
order, a re-run) never orphans or duplicates an alert; on SQLite and PostGIS alike.

Before: the rebuild deleted the tracks first seen from the late survey on, the alert's
``track_id`` became NULL with a stale ``details["key"]`` and the next evaluation raised a
second open alert of the same rule for the same crack (PostGIS); on SQLite the re-used track
id made the stale key match whichever new track got that id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import torch
from sqlalchemy import select
from synthetic import DarkModel, write_ortho

from geodata.store import add_site
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.inbox import ingest
from jobs.pipeline import PipelineOptions, process_survey

EPSG = 32633
T0 = datetime(2026, 6, 1, tzinfo=UTC)


class BlindModel(torch.nn.Module):
    """Sees no crack anywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], -20.0)


def _opt(tmp_path):
    return PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32,
                           inbox_settle_s=0)


def _run(engine, site, path, tmp_path, model=None):
    sv = ingest(engine, site, path)
    r = process_survey(engine, sv.id, _opt(tmp_path), model=model or DarkModel())
    assert r.status == "succeeded", r.error
    return sv


def _open_alerts(engine, site_name):
    """(rule, level, track_id, the track's first survey date, crack tracked) per open alert."""
    with session_scope(engine) as s:
        site = s.scalars(select(m.Site).where(m.Site.name == site_name)).one()
        out = []
        for a in s.scalars(select(m.Alert).where(m.Alert.site_id == site.id,
                                                 m.Alert.resolved_at.is_(None))
                           .order_by(m.Alert.rule)):
            track = s.get(m.CrackTrack, a.track_id) if a.track_id is not None else None
            out.append({"id": a.id, "rule": a.rule, "level": a.level, "track_id": a.track_id,
                        "key": a.details.get("key"), "details": a.details,
                        "first_seen_at": track.first_seen_at if track else None})
        return out


def _latest_track(engine, survey_id):
    with session_scope(engine) as s:
        return s.scalars(select(m.Crack.track_id).where(m.Crack.survey_id == survey_id)).one()


def test_a_survey_older_than_the_processed_ones_reattaches_the_alert(engine, tmp_path):
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    later = _run(engine, "wall", write_ortho(tmp_path / "d10.tif", when=T0 + timedelta(10)),
                 tmp_path)
    [before] = _open_alerts(engine, "wall")
    assert before["rule"] == "structure.bre251" and before["level"] == "orange"
    assert before["details"]["anchor"]["survey_id"] == later.id

    # an older survey arrives: the crack's track now starts there (the old track is deleted)
    older = _run(engine, "wall", write_ortho(tmp_path / "d5.tif", when=T0 + timedelta(5),
                                             seed=1), tmp_path)
    [after] = _open_alerts(engine, "wall")
    assert after["id"] == before["id"]  # the same alert, not a second one
    assert after["track_id"] == _latest_track(engine, later.id)
    assert after["key"] == f"track:{after['track_id']}"
    assert after["first_seen_at"] == T0 + timedelta(5)
    [moved] = after["details"]["reattached"]
    assert f"survey {older.id}" in moved["reason"] and moved["to"] == after["key"]

    # re-running a survey re-creates its cracks: the alert follows the crack by position
    r = process_survey(engine, later.id, _opt(tmp_path), model=DarkModel())
    assert r.status == "succeeded" and not r.alerts_raised
    [again] = _open_alerts(engine, "wall")
    assert again["id"] == before["id"] and again["track_id"] == _latest_track(engine, later.id)
    with session_scope(engine) as s:
        assert s.scalar(select(m.Alert.id).where(m.Alert.track_id.is_(None))) is None


def test_an_alert_whose_crack_is_gone_after_a_rebuild_is_resolved_with_the_reason(
        engine, tmp_path):
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    sv = _run(engine, "wall", write_ortho(tmp_path / "d0.tif", when=T0), tmp_path)
    [alert] = _open_alerts(engine, "wall")
    # the survey is re-run by a model that finds nothing: the crack the alert was raised on
    # is no longer in the store
    r = process_survey(engine, sv.id, _opt(tmp_path), model=BlindModel())
    assert r.status == "succeeded" and r.cracks == 0
    assert _open_alerts(engine, "wall") == []
    with session_scope(engine) as s:
        a = s.get(m.Alert, alert["id"])
        assert a.resolved_at is not None and a.details["resolved_reason"] == "lineage_lost"
        assert "no longer in the store" in a.resolve_note and f"survey {sv.id}" in a.resolve_note


def test_out_of_order_surveys_end_where_in_order_surveys_end(engine, tmp_path):
    """The same three surveys, in date order on one site and the oldest last on another:
    the same tracks, the same open alerts (one per crack and rule) on the crack's track."""
    widths = {0: 2, 10: 3, 20: 3}  # crack rows: 4 mm (BRE 2), then 6 mm (BRE 3, +2 mm)
    files = {d: write_ortho(tmp_path / f"d{d}.tif", when=T0 + timedelta(d), seed=d,
                            crack_rows=w) for d, w in widths.items()}
    results = {}
    for site, order in (("in-order", (0, 10, 20)), ("late", (10, 20, 0))):
        add_site(engine, site, profile="structure", crs_epsg=EPSG)
        surveys = {d: _run(engine, site, files[d], tmp_path / site) for d in order}
        with session_scope(engine) as s:
            site_id = surveys[0].site_id
            tracks = s.scalars(select(m.CrackTrack).where(m.CrackTrack.site_id == site_id)).all()
            events = [o.event for o in s.scalars(
                select(m.TrackObservation).join(m.CrackTrack).where(
                    m.CrackTrack.site_id == site_id).order_by(m.TrackObservation.acquired_at))]
            results[site] = {
                "tracks": [(t.first_seen_at, t.last_seen_at, t.status) for t in tracks],
                "events": events,
                "alerts": [(a["rule"], a["level"]) for a in _open_alerts(engine, site)],
                "on_latest_track": {a["track_id"] == _latest_track(engine, surveys[20].id)
                                    for a in _open_alerts(engine, site)},
            }
    assert results["in-order"]["tracks"] == [(T0, T0 + timedelta(20), "active")]
    assert results["in-order"]["alerts"] == [("structure.bre251", "orange"),
                                             ("structure.width_growth", "red")]
    assert results["late"] == results["in-order"]
    assert results["late"]["on_latest_track"] == {True}
