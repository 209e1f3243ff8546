"""Writing one survey's matching outcome to the store: new and split-off tracks, continued,
merged and vanished tracks, each crack's track id. Shared by map tracking
(:mod:`geodata.tracking`) and photo-view tracking (:mod:`geodata.views`), below both.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import update
from sqlalchemy.orm import Session

from geodata.store.models import Crack, CrackTrack

__all__ = ["write_track_outcomes"]


def write_track_outcomes(s: Session, *, site_id: int, survey_id: int, when: datetime,
                         current: pd.DataFrame, previous: pd.DataFrame
                         ) -> tuple[dict[int, int], dict[int, CrackTrack]]:
    """Apply :class:`geodata.matching.Matching` frames (``current``: one row per crack id,
    ``previous``: one row per previous track id) to the store in session ``s``: a track for
    each new or split-off crack (one flush: ids in one batch), continued tracks moved to this
    survey (``when``, UTC), merged and vanished tracks marked, every crack's ``track_id`` set.

    Returns ``(track_of, started)``: crack id -> track id, and crack id -> the new tracks.
    """
    track_of: dict[int, int] = {}
    started: dict[int, CrackTrack] = {}
    for crack_id, row in current.iterrows():
        if row["event"] == "continued":
            track_of[crack_id] = int(row["track_id"])
            continue
        parent = None if pd.isna(row["parent_track_id"]) else int(row["parent_track_id"])
        started[crack_id] = CrackTrack(
            site_id=site_id, first_survey_id=survey_id, first_seen_at=when,
            last_survey_id=survey_id, last_seen_at=when, status="active",
            parent_track_id=parent)
    s.add_all(started.values())
    s.flush()
    track_of.update({crack_id: t.id for crack_id, t in started.items()})
    continued = [track_of[c] for c in current.index[current["event"] == "continued"]]
    if continued:
        s.execute(update(CrackTrack).where(CrackTrack.id.in_(continued))
                  .values(last_survey_id=survey_id, last_seen_at=when, status="active",
                          merged_into_track_id=None))
    for track_id, row in previous.iterrows():
        if row["outcome"] == "merged":
            s.execute(update(CrackTrack).where(CrackTrack.id == int(track_id))
                      .values(status="merged", merged_into_track_id=track_of[row["into"]]))
        elif row["outcome"] == "vanished":
            s.execute(update(CrackTrack).where(CrackTrack.id == int(track_id))
                      .values(status="vanished"))
    if track_of:
        s.execute(update(Crack), [{"id": int(c), "track_id": t} for c, t in track_of.items()])
    return track_of, started
