"""Which model processes a site: ``--model``, else the site's own, else its profile's.

Two tiny real models (random weights, real safetensors + cards with ``site_profile``) in a
user weights folder; ``engine.registry.PROFILE_MODELS`` points the profiles at them. Every run
goes through the real pipeline on a real SQLite store.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
import torch
from sqlalchemy import func, select
from synthetic import write_ortho

from engine import registry
from engine.checkpoint import fp16_state_dict, save_checkpoint
from engine.models import ARCHITECTURES, build_model
from geodata.store import add_site, set_site_model
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.inbox import ingest
from jobs.pipeline import PipelineOptions, run_site

EPSG = 32633
T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A folder with ``tiny-structure`` and ``tiny-slope``, the profiles' models."""
    folder = tmp_path / "weights"
    for seed, (name, profile) in enumerate((("tiny-structure", "structure"),
                                            ("tiny-slope", "slope"))):
        torch.manual_seed(seed)
        model = build_model(ARCHITECTURES["unet"]).eval()
        save_checkpoint(fp16_state_dict(model),
                        {"name": name, "version": str(seed + 1), "site_profile": profile,
                         "architecture": ARCHITECTURES["unet"]}, folder)
    monkeypatch.setattr(registry, "PROFILE_MODELS",
                        {"structure": "tiny-structure", "slope": "tiny-slope"})
    return folder


@pytest.fixture
def loads(monkeypatch):
    """The names of the models the pipeline loads (the real loader, counted)."""
    names, real = [], registry.load_model

    def counting(name, **kw):
        names.append(name)
        return real(name, **kw)

    monkeypatch.setattr(registry, "load_model", counting)
    return names


def _options(tmp_path, weights, **kw) -> PipelineOptions:
    return PipelineOptions(work_dir=tmp_path / "work", weights_dir=weights, tile_size=256,
                           overlap=32, inbox_settle_s=0, **kw)


def _runs(engine) -> list[tuple[str, int, str, str | None, str | None, str]]:
    """(site, survey id, model name, version, weights sha256, status) of every run."""
    with session_scope(engine) as s:
        return [tuple(r) for r in s.execute(
            select(m.Site.name, m.Survey.id, m.InferenceRun.model_name,
                   m.InferenceRun.model_version, m.InferenceRun.weights_sha256,
                   m.InferenceRun.status)
            .join(m.Survey, m.Survey.id == m.InferenceRun.survey_id)
            .join(m.Site, m.Site.id == m.Survey.site_id)
            .order_by(m.InferenceRun.id)).all()]


def _sha(weights, name: str) -> str:
    return registry.find_card(name, weights)["weights"]["sha256"]


def test_each_site_runs_the_model_of_its_profile_loaded_once_per_model(store, tmp_path,
                                                                       weights, loads):
    url, engine = store
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    add_site(engine, "cut 2", profile="slope", crs_epsg=EPSG)
    # a slope site that names a model of its own: the site's choice beats its profile's
    add_site(engine, "quay", profile="slope", crs_epsg=EPSG, model_name="tiny-structure",
             check_model=lambda name: registry.find_card(name, weights))
    sites = ["wall", "cut", "cut 2", "quay"]
    for k, name in enumerate(sites):
        ingest(engine, name, write_ortho(tmp_path / f"s{k}.tif", when=T0, seed=k))
    opt = _options(tmp_path, weights)

    cache: dict = {}  # one run over every site (as the demo does)
    for name in sites:
        assert [r.status for r in run_site(engine, name, opt, models=cache)] == ["succeeded"]
    assert sorted(loads) == ["tiny-slope", "tiny-structure"]  # per model, not per site
    want = {"wall": "tiny-structure", "cut": "tiny-slope", "cut 2": "tiny-slope",
            "quay": "tiny-structure"}
    runs = _runs(engine)
    assert {site: model for site, _, model, *_ in runs} == want
    for _site, _, model, version, sha, status in runs:
        assert status == "succeeded"
        assert version == {"tiny-structure": "1", "tiny-slope": "2"}[model]
        assert sha == _sha(weights, model)

    # --model (PipelineOptions.model_name) beats the site's and the profile's choice
    ingest(engine, "cut", write_ortho(tmp_path / "cut-2.tif", when=T0 + timedelta(days=1)))
    r = run_site(engine, "cut", _options(tmp_path, weights, model_name="tiny-structure"))
    assert [x.status for x in r] == ["succeeded"]
    assert _runs(engine)[-1][2] == "tiny-structure"

    # the scheduler's job (one site per call, options as the CLI passes them) does the same
    from jobs.scheduler import run_site_job

    ingest(engine, "cut 2", write_ortho(tmp_path / "cut2-2.tif", when=T0 + timedelta(days=1)))
    with session_scope(engine) as s:
        cut2 = s.scalar(select(m.Site.id).where(m.Site.name == "cut 2"))
    opts = asdict(opt)
    opts["work_dir"], opts["weights_dir"] = str(opts["work_dir"]), str(opts["weights_dir"])
    assert run_site_job(url, cut2, opts) == 1
    assert _runs(engine)[-1][:1] + _runs(engine)[-1][2:3] == ("cut 2", "tiny-slope")
    assert _runs(engine)[-1][5] == "succeeded"

    # a site set back to its profile's model follows the profile again
    set_site_model(engine, "quay", None)
    ingest(engine, "quay", write_ortho(tmp_path / "quay-2.tif", when=T0 + timedelta(days=1)))
    assert [x.status for x in run_site(engine, "quay", opt)] == ["succeeded"]
    assert _runs(engine)[-1][2] == "tiny-slope"


def _written(engine) -> dict[str, int]:
    with session_scope(engine) as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                for t in (m.Crack, m.CrackTrack, m.TrackObservation, m.SurveySummary, m.Alert)}


def test_a_site_naming_an_unknown_model_fails_clearly_and_other_sites_still_run(
        store, tmp_path, weights, loads):
    _, engine = store
    add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    set_site_model(engine, "cut", "retired-model")  # e.g. a model removed after it was set
    bad = ingest(engine, "cut", write_ortho(tmp_path / "a.tif", when=T0))
    ingest(engine, "wall", write_ortho(tmp_path / "b.tif", when=T0, seed=1))
    opt = _options(tmp_path, weights, survey_retry_base_s=0)
    before = _written(engine)

    cache: dict = {}
    results = run_site(engine, "cut", opt, models=cache)
    assert [r.status for r in results] == ["failed"]
    error = results[0].error
    assert "site 'cut' names model 'retired-model'" in error
    assert "crackwatch site set-model 'cut' --model NAME" in error
    assert "--profile-default" in error and "crackwatch models list" in error
    assert _written(engine) == before  # no crack, track, summary or alert of the failure
    with session_scope(engine) as s:
        run = s.scalars(select(m.InferenceRun).where(m.InferenceRun.survey_id == bad.id)).one()
        assert (run.status, run.model_name) == ("failed", "retired-model")
        assert "crackwatch site set-model" in run.error
        job = s.get(m.JobRun, results[0].job_run_id)
        assert job.status == "failed" and "retired-model" in job.error

    # the other site runs, in the same multi-site call
    assert [r.status for r in run_site(engine, "wall", opt, models=cache)] == ["succeeded"]
    assert cache and all(key[0] == "tiny-structure" for key in cache)

    # the fix the message names works: back to the profile's model, the survey runs
    set_site_model(engine, "cut", None)
    assert [r.status for r in run_site(engine, "cut", opt, models=cache)] == ["succeeded"]
    assert [(site, model, status) for site, _, model, _, _, status in _runs(engine)] == [
        ("cut", "retired-model", "failed"), ("wall", "tiny-structure", "succeeded"),
        ("cut", "tiny-slope", "succeeded")]


def test_a_profile_model_that_is_not_installed_says_where_the_table_is(store, tmp_path,
                                                                       weights, monkeypatch):
    _, engine = store
    monkeypatch.setattr(registry, "PROFILE_MODELS",
                        {"structure": "tiny-structure", "slope": "not-shipped-yet"})
    add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    ingest(engine, "cut", write_ortho(tmp_path / "a.tif", when=T0))
    before = _written(engine)
    (r,) = run_site(engine, "cut", _options(tmp_path, weights))
    assert r.status == "failed"
    assert "model 'not-shipped-yet' of the slope profile (engine/profile_models.json)" in r.error
    assert "crackwatch site set-model 'cut' --model NAME" in r.error
    assert _written(engine) == before
    assert [(s, mo, st) for s, _, mo, _, _, st in _runs(engine)] == [
        ("cut", "not-shipped-yet", "failed")]
