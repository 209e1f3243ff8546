"""What the map shows can be trusted (issue 25), through the pipeline on the real WebODM
orthophoto (0.5 m pixels): no crack along the footprint's edge, every crack 'unresolved'
(no BRE 251 category), and the warning on the survey and on the sites overview."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from geodata import queries, store
from geodata.severity import UNRESOLVED
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.inbox import ingest
from jobs.pipeline import PipelineOptions, process_survey
from tests.conftest import require_real_data

pytestmark = pytest.mark.realdata


def test_a_survey_with_unresolvable_pixels_is_said_loudly(engine, tmp_path):
    ortho = require_real_data("geo", "webodm_fixtures", "orthophoto.tif")
    path = shutil.copy(ortho, tmp_path / "park.tif")
    site = store.add_site(engine, "park", profile="structure", crs_epsg=32615)
    sv = ingest(engine, site.id, path)
    r = process_survey(engine, sv.id, PipelineOptions(work_dir=tmp_path / "work",
                                                      tile_size=256, overlap=32))
    assert r.status == "succeeded", r.error
    assert r.alerts_raised == [] and "not resolved" in r.alerts_skipped
    with session_scope(engine) as s:
        severities = s.scalars(select(m.Crack.severity).where(m.Crack.survey_id == sv.id)).all()
    assert severities and set(severities) == {UNRESOLVED}
    [warning] = queries.list_surveys(engine, site.id)["warnings"].iloc[0]
    assert "0.5 m" in warning and "no crack width is resolved" in warning
    overview = queries.sites_overview(engine).set_index("name")
    assert overview.loc["park", "warnings"] == [warning]
