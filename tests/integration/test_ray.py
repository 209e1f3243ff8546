"""The Ray executor (jobs.executor) on a local Ray cluster started here (2 CPUs, no
dashboard, no network), shared by the module: a two-site run equals the local run, a banded
orthomosaic equals the local result, a killed worker leaves the store unchanged and the
survey re-runnable (and a worker killed once is re-run by Ray), the scheduler's jobs use the
executor, and choosing ray without Ray installed (or an unreachable cluster) is a clear
error.

Ray is in the ``dev`` extra, so CI runs these; elsewhere they skip when Ray is missing.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from sqlalchemy import func, select
from synthetic import EPSG, KillerModel, KillOnceModel, write_ortho
from typer.testing import CliRunner

from geodata.store import add_site, connect, upgrade
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.executor import (
    ExecutorConfig,
    RayExecutor,
    make_executor,
    run_sites,
)
from jobs.inbox import ingest
from jobs.pipeline import PipelineOptions, run_site
from jobs.ray_pool import RayUnavailableError
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, tzinfo=UTC)
#: A shipped slope model that finds the synthetic cracks (a real network, so the band edges
#: matter: every window reaches across them). Pinned on both sites: the profile's default
#: since 2026-12-07, slope6 with its rules and the tile gate, keeps no crack on a1's synthetic
#: scene (drawn lines on noise, no rock fracture), which would leave the banded run nothing
#: to compare.
MODEL = "crackwatch-unet-lite0-slope2"


def _need_ray():
    try:
        import ray
    except ImportError as exc:
        msg = f"Ray is not installed ({exc}): python3 -m pip install -e '.[dev]' installs it"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: the Ray tests never skip in CI)")
        pytest.skip(msg)
    return ray


@pytest.fixture(scope="module")
def executor():
    """Two CPU workers on a local 2-CPU cluster; bands of >= 256 rows; a call whose worker
    died is re-run once (the default)."""
    ray = _need_ray()
    if ray.is_initialized():
        ray.shutdown()
    # workers import this checkout's code, tests/integration/synthetic.py and the shared
    # test builders it uses (tests/builders.py)
    path = os.pathsep.join([str(ROOT), str(Path(__file__).parent), str(Path(__file__).parents[1])])
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=300_000_000,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    ex = RayExecutor(ExecutorConfig(kind="ray", workers=2, band_rows=256, max_retries=1))
    yield ex
    ex.close()
    ray.shutdown()


@contextmanager
def _one_thread():
    """Run the local reference with one torch CPU thread, as each Ray worker here runs
    (cpus_per_worker=1): the model's forward pass can round differently with another thread
    count, which would blur what these tests check (that the executor and the band stitching
    change nothing)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _store(path: Path):
    url = f"sqlite:///{path}"
    upgrade(url)
    return connect(url)


def _write_scene(path: Path, *, when: datetime, rows: int = 768, cols: int = 512,
                 crack_rows: int = 560, seed: int = 7) -> Path:
    """A ``rows x cols`` RGB GeoTIFF (256-px blocks, EPSG:32633, 2 mm pixels) with a dark
    vertical crack ``crack_rows`` long from row 40 and a horizontal one at 3/4 height. The
    default 768 rows are split into 2 row bands (one per worker; 512 + 256 rows) on this
    cluster; the vertical crack crosses the band edge."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(150, 12, (3, rows, cols)), 0, 255).astype(np.uint8)
    img[:, 40:40 + crack_rows, cols // 2:cols // 2 + 4] = 25
    img[:, rows * 3 // 4:rows * 3 // 4 + 4, 40:cols // 2 + 60] = 25
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=3,
                       dtype="uint8", crs=f"EPSG:{EPSG}", tiled=True, blockxsize=256,
                       blockysize=256,
                       transform=from_origin(500000, 6000000, 0.002, 0.002)) as dst:
        dst.write(img)
        dst.update_tags(TIFFTAG_DATETIME=f"{when:%Y:%m:%d %H:%M:%S}")
    return path


def _wkb(geom) -> bytes:
    from geoalchemy2.shape import to_shape

    g = geom if hasattr(geom, "wkb") else to_shape(geom)
    return g.normalize().wkb


def _snapshot(engine) -> dict:
    """What a run leaves in the store, keyed by source file (ids may differ between stores)."""
    with session_scope(engine) as s:
        surveys = {sv.id: Path(sv.source_path).name for sv in s.scalars(select(m.Survey))}
        cracks: dict[str, list] = {}
        for c in s.scalars(select(m.Crack).order_by(m.Crack.survey_id, m.Crack.crack_index)):
            cracks.setdefault(surveys[c.survey_id], []).append(
                (c.image_name, c.crack_index, _wkb(c.polygon), round(c.length_m, 9),
                 round(c.area_m2, 12),
                 round(c.max_width_mm, 9), c.track_id is not None))
        summaries = {surveys[x.survey_id]: (
            surveys.get(x.previous_survey_id), x.crack_count, round(x.total_length_m, 9),
            x.new_count, x.continued_count, x.split_count, x.merged_count, x.vanished_count)
            for x in s.scalars(select(m.SurveySummary))}
        # track ids (in the messages) depend on which site stored first: not compared
        alerts = sorted((a.rule, a.level, surveys.get(a.survey_id),
                         re.sub(r"crack (track )?\d+", "crack N", a.message))
                        for a in s.scalars(select(m.Alert)))
        tracks = s.scalar(select(func.count()).select_from(m.CrackTrack))
        runs = sorted((surveys[r.survey_id], r.status) for r in s.scalars(select(m.InferenceRun)))
    return {"cracks": cracks, "summaries": summaries, "alerts": alerts, "tracks": tracks,
            "runs": runs}


def test_two_site_run_equals_the_local_run(executor, tmp_path):
    files = tmp_path / "in"
    files.mkdir()
    a = [_write_scene(files / "a0.tif", when=T0, rows=256, cols=256, crack_rows=120),
         _write_scene(files / "a1.tif", when=T0 + timedelta(days=1), rows=256, cols=256,
                      crack_rows=200)]  # the crack grew
    b = [_write_scene(files / "b0.tif", when=T0)]  # banded: one band per worker
    photo = files / "photos"
    photo.mkdir()
    with rasterio.open(a[1]) as src:  # a site photo: the same scene as a JPEG
        Image.fromarray(np.moveaxis(src.read(), 0, -1)).save(photo / "p0.jpg", quality=95)
    snaps, results = {}, {}
    for kind in ("local", "ray"):
        engine = _store(tmp_path / f"{kind}.db")
        add_site(engine, "slope A", profile="slope", crs_epsg=EPSG, model_name=MODEL)
        add_site(engine, "wall B", profile="structure", crs_epsg=EPSG, model_name=MODEL)
        for p in reversed(a):  # ingested out of date order: the run restores it
            ingest(engine, "slope A", p)
        for p in b:
            ingest(engine, "wall B", p)
        ingest(engine, "wall B", photo, acquired_at=T0 + timedelta(days=3), pixel_size_m=0.002)
        opt = PipelineOptions(work_dir=tmp_path / f"work-{kind}", tile_size=256, overlap=32,
                              inbox_settle_s=0)
        with _one_thread():
            results[kind] = run_sites(engine, ["slope A", "wall B"], opt,
                                      executor=executor if kind == "ray" else None)
        snaps[kind] = _snapshot(engine)
        if kind == "ray":
            with session_scope(engine) as s:
                steps = [j.steps["infer"] for j in s.scalars(select(m.JobRun).where(
                    m.JobRun.job == "process_survey"))]
        engine.dispose()
    for kind in ("local", "ray"):
        assert [r.status for rs in results[kind].values() for r in rs] == ["succeeded"] * 4
    # stored in date order per site: a0, a1 (ingested a1 first, so ids descend)
    stored = results["ray"]["slope A"]
    assert [r.survey_id for r in stored] == sorted((r.survey_id for r in stored), reverse=True)
    assert [r.job_run_id for r in stored] == sorted(r.job_run_id for r in stored)
    assert snaps["ray"] == snaps["local"]
    # a0's short synthetic crack falls under the slope model's object rules (50 px, seed
    # 0.75: engine.crack_rules); the banded Ray run applies the same rules as the local one
    assert {"a1.tif", "b0.tif", "photos"} <= set(snaps["local"]["cracks"])
    assert snaps["local"]["tracks"] > 0
    assert snaps["local"]["summaries"]["a1.tif"][0] == "a0.tif"  # tracked against a0
    # the job runs say where inference ran; the large orthomosaic ran in 2 bands
    assert all(st.get("executor") == "ray" and st.get("worker") for st in steps)
    assert sorted(st.get("bands", 1) for st in steps) == [1, 1, 1, 2]


def test_a_banded_orthomosaic_equals_the_local_result(executor, tmp_path):
    from engine.infer import predict_raster
    from engine.registry import load_model
    from geodata.vectorise import vectorise_cracks

    src = _write_scene(tmp_path / "large.tif", when=T0)
    assert len(executor.plan(src, executor.workers())) > 1
    net = load_model(MODEL)
    with _one_thread():
        loc = predict_raster(src, net, out_path=tmp_path / "local.tif", tile_size=256,
                             overlap=32, dtype="float32", progress=False)
    res = executor.predict_raster(src, executor.model_spec(name=MODEL),
                                  out_path=tmp_path / "ray.tif", tile_size=256, overlap=32,
                                  dtype="float32", progress=False)
    assert (res.width, res.height, res.transform, res.crs) == \
        (loc.width, loc.height, loc.transform, loc.crs)
    assert "2 row bands" in res.warnings[-1]
    maps, polys = {}, {}
    for kind in ("local", "ray"):
        with rasterio.open(tmp_path / f"{kind}.tif") as ds:
            assert ds.profile["driver"] == "GTiff" and ds.overviews(1)  # a COG with overviews
            prob, transform, crs = ds.read(1), ds.transform, ds.crs
        maps[kind] = prob
        gdf = vectorise_cracks(np.nan_to_num(prob), transform, crs, threshold=0.5,
                               min_area_px=20, nodata_mask=np.isnan(prob))
        polys[kind] = sorted(g.normalize().wkb for g in gdf.geometry)
    assert maps["ray"].shape == (768, 512)
    assert np.allclose(maps["ray"], maps["local"], rtol=0, atol=1e-6, equal_nan=True)
    assert polys["ray"] == polys["local"] and len(polys["local"]) >= 2


def _counts(engine) -> dict:
    with session_scope(engine) as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                for t in (m.Crack, m.CrackTrack, m.TrackObservation, m.SurveySummary, m.Alert)}


def test_a_killed_worker_leaves_the_store_unchanged_and_the_survey_reruns(executor, tmp_path):
    engine = _store(tmp_path / "cw.db")
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    first = ingest(engine, "wall", write_ortho(tmp_path / "a.tif", when=T0))
    opt = PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32,
                          inbox_settle_s=0, survey_retry_base_s=0)
    assert [r.status for r in run_site(engine, "wall", opt, executor=executor)] == ["succeeded"]
    before = _counts(engine)
    second = ingest(engine, "wall", write_ortho(tmp_path / "b.tif", when=T0 + timedelta(days=1),
                                                crack_cols=190))

    # killed in the middle of the survey, and again when Ray re-runs the call
    [r] = run_site(engine, "wall", opt, model=KillerModel(), executor=executor)
    assert r.status == "failed" and r.survey_id == second.id
    assert "Ray worker" in r.error and "died" in r.error and "next run" in r.error
    assert _counts(engine) == before
    with session_scope(engine) as s:
        job = s.get(m.JobRun, r.job_run_id)
        assert job.status == "failed" and job.steps["infer"]["status"] == "failed"
        assert s.scalar(select(func.count()).select_from(m.InferenceRun).where(
            m.InferenceRun.survey_id == second.id, m.InferenceRun.status == "failed")) == 1
    assert sorted(p.name for p in (tmp_path / "work" / "probability").iterdir()) == [
        f"survey{first.id}_probability.tif"]  # no partial map of the failed survey

    [r] = run_site(engine, "wall", opt, executor=executor)  # Ray restarted the worker
    assert r.status == "succeeded" and r.survey_id == second.id
    assert _counts(engine)["survey_summary"] == 2

    # killed once: Ray restarts the worker and re-runs the call; the survey succeeds
    third = ingest(engine, "wall", write_ortho(tmp_path / "c.tif", when=T0 + timedelta(days=2),
                                               crack_cols=200))
    marker = tmp_path / "killed-once"
    [r] = run_site(engine, "wall", opt, model=KillOnceModel(str(marker)), executor=executor)
    assert marker.exists() and r.status == "succeeded" and r.survey_id == third.id
    engine.dispose()


def test_ray_without_ray_installed_is_a_clear_error(monkeypatch, tmp_path):
    from jobs.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayUnavailableError, match=r"crackwatch\[ray\]"):
        make_executor(ExecutorConfig(kind="ray"))
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    engine = _store(tmp_path / "cw.db")
    add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    engine.dispose()
    res = CliRunner().invoke(app, ["run", "--site", "wall", "--url", url, "--executor", "ray"])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "not installed" in res.output
    assert "crackwatch[ray]" in res.output and "--executor local" in res.output
    assert "Traceback" not in res.output


def test_an_unreachable_ray_address_is_a_clear_error(tmp_path):
    _need_ray()
    from jobs.cli import app

    port = free_port()
    with pytest.raises(RayUnavailableError, match=f"cannot reach the Ray cluster at "
                                                  f"127.0.0.1:{port}"):
        make_executor(ExecutorConfig(kind="ray", ray_address=f"127.0.0.1:{port}"))
    raster = write_ortho(tmp_path / "a.tif", when=T0)
    res = CliRunner().invoke(app, ["infer", str(raster), "--out", str(tmp_path / "out"),
                                   "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2 and "ray start --head" in res.output, res.output
    res = CliRunner().invoke(app, ["run", "--site", "x", "--executor", "dask"])
    assert res.exit_code == 2 and "unknown executor 'dask'" in res.output, res.output


def test_the_scheduler_runs_site_jobs_on_the_shared_ray_executor(executor, tmp_path,
                                                                   monkeypatch):
    """`crackwatch scheduler --executor ray`: the site jobs carry the executor setting (a
    job stored without it is rescheduled with it), run up to RAY_SITE_JOBS sites at once and
    send inference to the process's one executor."""
    from apscheduler.schedulers.background import BackgroundScheduler

    import jobs.executor
    from jobs.scheduler import RAY_SITE_JOBS, build_scheduler, run_site_job, sync_site_jobs

    engine = _store(tmp_path / "cw.db")
    url = str(engine.url)
    site = add_site(engine, "wall", profile="structure", crs_epsg=EPSG, model_name=MODEL)
    ingest(engine, "wall", _write_scene(tmp_path / "a.tif", when=T0, rows=256, cols=256,
                                        crack_rows=200))
    opts = {"work_dir": str(tmp_path / "work"), "tile_size": 256, "overlap": 32,
            "inbox_settle_s": 0}
    cfg = {"kind": "ray", "workers": 2}
    sched = build_scheduler(url, scheduler_cls=BackgroundScheduler, threads=RAY_SITE_JOBS)
    sched.start(paused=True)
    try:
        sync_site_jobs(sched, url, opts)  # as an older scheduler stored it: no executor
        assert sched.get_job(f"site-{site.id}").args[3] is None
        sync_site_jobs(sched, url, opts, cfg)
        assert list(sched.get_job(f"site-{site.id}").args) == [url, site.id, opts, cfg]
        assert sched._executors["default"]._pool._max_workers == RAY_SITE_JOBS
    finally:
        sched.shutdown(wait=False)
    given = []
    monkeypatch.setattr(jobs.executor, "shared_executor",
                        lambda c: given.append(c) or executor)
    assert run_site_job(url, site.id, opts, cfg) == 1
    assert given == [cfg]
    with session_scope(engine) as s:
        [job] = s.scalars(select(m.JobRun).where(m.JobRun.job == "process_survey")).all()
        assert job.status == "succeeded" and job.steps["infer"]["executor"] == "ray"
    engine.dispose()
