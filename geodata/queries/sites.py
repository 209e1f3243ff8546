"""Sites and their surveys: the sites map, a site's surveys with runs and states."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.lookup import _site
from geodata.store.models import ALERT_LEVELS, Alert, InferenceRun, Site, Survey, SurveySummary

__all__ = [
    "list_surveys",
    "sites_overview",
]


_LEVEL_RANK = {level: i for i, level in enumerate(ALERT_LEVELS)}

def sites_overview(bind: Engine | Session) -> pd.DataFrame:
    """All sites with their current alert level, for the sites map.

    Returns:
        One row per site (ordered by name): ``site_id``, ``name``, ``profile``,
        ``crs_epsg``, ``lon``, ``lat`` (WGS 84 degrees), ``timezone``, ``survey_count``,
        ``latest_survey_at`` (UTC), ``latest_crack_count``, ``alert_level`` (the highest
        level among the site's unresolved alerts, watch alerts not counted; ``"green"`` when
        none), ``open_alerts``, ``latest_alert_at``, ``model_name`` (the site's own model;
        ``None``: the model of its profile), ``watch_alerts`` (open unconfirmed slope
        exceedances, shown as *watch*), ``watch_level`` (the highest of their levels, or
        ``None``), ``warnings`` (why the latest processed survey's cracks are not to be
        trusted as they stand; empty list when none: :mod:`geodata.queries.trust`).
    """
    with session_scope(bind) as s:
        sites = s.execute(select(Site.id, Site.name, Site.profile, Site.crs_epsg, Site.lon,
                                 Site.lat, Site.timezone, Site.model_name)
                          .order_by(Site.name)).all()
        counts = dict(s.execute(select(Survey.site_id, func.count(Survey.id))
                                .group_by(Survey.site_id)).all())
        latest = dict(s.execute(select(Survey.site_id, func.max(Survey.acquired_at))
                                .group_by(Survey.site_id)).all())
        summaries = s.execute(select(SurveySummary.site_id, SurveySummary.acquired_at,
                                     SurveySummary.crack_count)
                              .order_by(SurveySummary.acquired_at)).all()
        alerts = s.execute(select(Alert.site_id, Alert.level, Alert.raised_at, Alert.watch)
                           .where(Alert.resolved_at.is_(None))).all()
    latest_count = {site_id: n for site_id, _, n in summaries}  # ordered: last one wins
    warned = _latest_warnings(bind)
    rows = []
    for sid, name, profile, epsg, lon, lat, tz, model_name in sites:
        open_ = [(lvl, t) for a_sid, lvl, t, watch in alerts if a_sid == sid and not watch]
        watched = [lvl for a_sid, lvl, _t, watch in alerts if a_sid == sid and watch]
        level = max((lvl for lvl, _ in open_), key=_LEVEL_RANK.__getitem__, default="green")
        rows.append({
            "site_id": sid, "name": name, "profile": profile, "crs_epsg": epsg, "lon": lon,
            "lat": lat, "timezone": tz, "survey_count": int(counts.get(sid, 0)),
            "latest_survey_at": latest.get(sid), "latest_crack_count": latest_count.get(sid),
            "alert_level": level, "open_alerts": len(open_),
            "latest_alert_at": max((t for _, t in open_), default=None),
            "model_name": model_name, "watch_alerts": len(watched),
            "watch_level": max(watched, key=_LEVEL_RANK.__getitem__, default=None),
            "warnings": warned.get(sid, []),
        })
    cols = ["site_id", "name", "profile", "crs_epsg", "lon", "lat", "timezone", "survey_count",
            "latest_survey_at", "latest_crack_count", "alert_level", "open_alerts",
            "latest_alert_at", "model_name", "watch_alerts", "watch_level", "warnings"]
    return pd.DataFrame(rows, columns=cols)


def _latest_warnings(bind: Engine | Session) -> dict[int, list[str]]:
    """Per site, the trust warnings of its latest processed survey (none: absent)."""
    from geodata.queries.trust import survey_trust_warnings

    warnings = survey_trust_warnings(bind)
    if not warnings:
        return {}
    with session_scope(bind) as s:
        done = s.execute(select(Survey.site_id, Survey.id)
                         .join(InferenceRun, InferenceRun.survey_id == Survey.id)
                         .where(InferenceRun.status == "succeeded")
                         .order_by(Survey.acquired_at, Survey.id)).all()
    latest = {site_id: survey_id for site_id, survey_id in done}  # ordered: last one wins
    return {site_id: warnings[sv] for site_id, sv in latest.items() if sv in warnings}


def _site_id(bind: Engine | Session, site: int | str) -> int:
    with session_scope(bind) as s:
        return _site(s, site).id


def list_surveys(bind: Engine | Session, site: int | str, *,
                 with_state: bool = True) -> gpd.GeoDataFrame:
    """A site's surveys in acquisition order, with their current run and summary.

    Returns:
        GeoDataFrame (footprint geometry, site CRS): ``survey_id``, ``acquired_at`` (UTC),
        ``source_type``, ``source_path``, ``sha256``, ``pixel_size_m``,
        ``registration_error_m``, ``simulated`` (bool, from the metadata), ``run_id``,
        ``model_name``, ``crack_count``, ``observable_fraction`` (share of the ground not
        vegetation; None without the mask), ``total_length_m``, ``new_count``,
        ``vanished_count``, ``warnings`` (list of sentences: why its cracks are not to be
        trusted as they stand, :func:`geodata.queries.trust.survey_trust_warnings`; empty
        when none); with ``with_state`` also ``state`` (``done``, ``pending``,
        ``waiting``, ``parked``, ``skipped``: :func:`geodata.survey_state.survey_states`),
        ``failures``, ``last_error`` and ``action`` (what to do about a parked, waiting or
        skipped survey, e.g. ``crackwatch survey retry ID``).
    """
    frame = _list_surveys(bind, site)
    if len(frame):
        from geodata.queries.trust import survey_trust_warnings

        site_id = int(_site_id(bind, site))
        warnings = survey_trust_warnings(bind, site_id)
        frame["warnings"] = [warnings.get(int(i), []) for i in frame["survey_id"]]
    else:
        frame["warnings"] = pd.Series([], dtype=object)
    if with_state:
        from geodata.survey_state import survey_states

        states = {st.survey_id: st for st in survey_states(bind, site)}
        ids = list(frame["survey_id"])
        frame["state"] = [states[i].state if i in states else None for i in ids]
        frame["failures"] = pd.array([states[i].failures if i in states else 0 for i in ids],
                                     dtype="Int64")
        frame["last_error"] = [states[i].last_error if i in states else None for i in ids]
        frame["action"] = [states[i].action() if i in states else None for i in ids]
    return frame


def _list_surveys(bind: Engine | Session, site: int | str) -> gpd.GeoDataFrame:
    with session_scope(bind) as s:
        site_row = _site(s, site)
        surveys = s.scalars(select(Survey).where(Survey.site_id == site_row.id)
                            .order_by(Survey.acquired_at, Survey.id)).all()
        runs = {r.survey_id: r for r in s.scalars(
            select(InferenceRun).join(Survey, Survey.id == InferenceRun.survey_id)
            .where(Survey.site_id == site_row.id, InferenceRun.status == "succeeded"))}
        sums = {x.survey_id: x for x in s.scalars(
            select(SurveySummary).where(SurveySummary.site_id == site_row.id))}
        epsg = site_row.crs_epsg
    rows = []
    for sv in surveys:
        run, sm = runs.get(sv.id), sums.get(sv.id)
        rows.append({
            "survey_id": sv.id, "acquired_at": sv.acquired_at, "source_type": sv.source_type,
            "source_path": sv.source_path, "sha256": sv.sha256, "pixel_size_m": sv.pixel_size_m,
            "registration_error_m": sv.registration_error_m,
            "simulated": bool((sv.meta or {}).get("simulated", False)),
            "run_id": run.id if run else None, "model_name": run.model_name if run else None,
            "crack_count": run.crack_count if run else None,
            "observable_fraction": run.observable_fraction if run else None,
            "total_length_m": sm.total_length_m if sm else None,
            "new_count": sm.new_count if sm else None,
            "vanished_count": sm.vanished_count if sm else None,
            "geometry": sv.footprint,
        })
    cols = ["survey_id", "acquired_at", "source_type", "source_path", "sha256", "pixel_size_m",
            "registration_error_m", "simulated", "run_id", "model_name", "crack_count",
            "observable_fraction", "total_length_m", "new_count", "vanished_count"]
    frame = pd.DataFrame(rows, columns=[*cols, "geometry"])
    for c in ("run_id", "crack_count", "new_count", "vanished_count"):
        frame[c] = frame[c].astype("Int64")
    frame["observable_fraction"] = frame["observable_fraction"].astype("float64")
    return gpd.GeoDataFrame(frame.drop(columns="geometry"),
                            geometry=gpd.GeoSeries(list(frame["geometry"]), crs=epsg), crs=epsg)
