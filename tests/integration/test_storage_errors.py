"""A full disk and a read-only store folder: one ``error:`` line naming what failed and what to
do, a non-zero exit, nothing half-written, and a re-run that completes once fixed.

The full store is SQLite's own ``database or disk is full`` (``PRAGMA max_page_count`` caps
the file at its size, so the run's writes really fail); the full work folder is an injected
``OSError(ENOSPC)`` at the end of writing the probability map, and a real 1 MiB tmpfs where
this machine may mount one. The read-only folder is a read-only tmpfs mount where possible,
else ``chmod`` (which root ignores, so as root without mount rights that test skips).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from builders import write_geotiff
from rasterio.transform import from_origin
from sqlalchemy import event, select
from synthetic import DarkModel, write_ortho
from typer.testing import CliRunner

import geodata.store as gs
import jobs.pipeline as pipeline
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.cli import app
from jobs.storage_errors import storage_problem

runner = CliRunner()


def _many_cracks(path: Path) -> Path:
    """A 256x256 orthomosaic with 180 short dark lines: a run that writes many rows."""
    img = np.full((3, 256, 256), 150, np.uint8)
    for r in range(8, 248, 8):
        for c0 in range(8, 240, 40):
            img[:, r:r + 3, c0:c0 + 30] = 40
    return write_geotiff(path, img, crs="EPSG:32633",
                         transform=from_origin(500000, 6000000, 0.002, 0.002),
                         tags={"TIFFTAG_DATETIME": "2026:06:01 00:00:00"})


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _site_with_survey(tmp_path: Path, ortho: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    for args in (["site", "add", "wall", "--profile", "structure", "--crs", "EPSG:32633"],
                 ["survey", "add", str(ortho), "--site", "wall"]):
        r = runner.invoke(app, [*args, "--url", url])
        assert r.exit_code == 0, r.output
    return url


def test_a_full_store_is_one_error_line_and_the_run_completes_once_there_is_room(
        tmp_path, monkeypatch):
    url = _site_with_survey(tmp_path, _many_cracks(tmp_path / "a.tif"))
    db = sqlite3.connect(tmp_path / "cw.db")
    db.execute("VACUUM")  # no free pages left to fill
    db.close()
    monkeypatch.setattr(pipeline, "load_site_model", lambda *a, **k: DarkModel())
    real_connect = gs.connect

    def full_connect(u, **kw):  # the store cannot grow past its size: a full disk to SQLite
        eng = real_connect(u, **kw)

        @event.listens_for(eng, "connect")
        def cap(dbapi, _record):
            cur = dbapi.cursor()
            pages = cur.execute("PRAGMA page_count").fetchone()[0]
            cur.execute(f"PRAGMA max_page_count = {pages}")
            cur.close()

        return eng

    monkeypatch.setattr(gs, "connect", full_connect)
    r = runner.invoke(app, ["run", "--site", "wall", "--url", url,
                            "--work-dir", str(tmp_path / "work")])
    assert r.exit_code == 2, r.output
    [line] = _errors(r.output)
    assert "database or disk is full" in line and "cw.db" in line and "--url" in line
    assert "Traceback" not in r.output

    monkeypatch.setattr(gs, "connect", real_connect)
    engine = real_connect(url)
    with session_scope(engine) as s:  # nothing half-written: no crack, no run, no lock
        assert s.scalars(select(m.Crack)).first() is None
        assert s.scalars(select(m.InferenceRun)).first() is None
        assert s.scalars(select(m.SiteLock)).first() is None
    # room again: the dead job run is marked abandoned, `survey retry` and the run completes
    assert runner.invoke(app, ["survey", "retry", "1", "--url", url]).exit_code == 0
    r = runner.invoke(app, ["run", "--site", "wall", "--url", url,
                            "--work-dir", str(tmp_path / "work")])
    assert r.exit_code == 0, r.output
    with session_scope(engine) as s:
        runs = {j.status for j in s.scalars(select(m.JobRun).where(
            m.JobRun.job == "process_survey"))}
        assert runs == {"abandoned", "succeeded"}
        assert len(s.scalars(select(m.Crack)).all()) > 100
    engine.dispose()


def test_a_full_work_folder_fails_the_survey_with_one_line_and_leaves_no_partial_map(
        tmp_path, monkeypatch):
    url = _site_with_survey(tmp_path, write_ortho(tmp_path / "a.tif",
                                                  when=datetime(2026, 6, 1, tzinfo=UTC)))
    import engine.infer

    real_predict = engine.infer.predict_raster

    def predict_then_disk_full(*args, out_path, **kw):
        real_predict(*args, out_path=out_path, **kw)  # the map is written ...
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_path))  # ... then no room

    monkeypatch.setattr(engine.infer, "predict_raster", predict_then_disk_full)
    monkeypatch.setattr(pipeline, "load_site_model", lambda *a, **k: DarkModel())
    work = tmp_path / "work"
    r = runner.invoke(app, ["run", "--site", "wall", "--url", url, "--work-dir", str(work)])
    assert r.exit_code == 1, r.output  # the survey failed; the command itself did not crash
    assert "Traceback" not in r.output
    assert "no space left on device" in r.output and "--work-dir" in r.output
    assert list((work / "probability").iterdir()) == []  # no partial or per-run map left
    eng = gs.connect(url)
    with session_scope(eng) as s:
        job = s.scalars(select(m.JobRun).where(m.JobRun.job == "process_survey")).one()
        assert job.status == "failed" and "no space left" in job.steps["infer"]["error"]
        assert s.scalars(select(m.Crack)).first() is None
    eng.dispose()


@contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_really_full_work_folder_on_a_tiny_tmpfs(tmp_path, monkeypatch):
    url = _site_with_survey(tmp_path, write_ortho(tmp_path / "a.tif",
                                                  when=datetime(2026, 6, 1, tzinfo=UTC)))
    monkeypatch.setattr(pipeline, "load_site_model", lambda *a, **k: DarkModel())
    with _tmpfs(tmp_path / "small", "1m") as small:
        (small / "work").mkdir()
        with open(small / "filler", "wb") as f:  # fill it to the last byte
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        r = runner.invoke(app, ["run", "--site", "wall", "--url", url,
                                "--work-dir", str(small / "work")])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "no space left on the device of" in r.output and "--work-dir" in r.output
        assert [p.name for p in (small / "work").rglob("*") if p.is_file()] == []


@contextmanager
def _read_only_folder(tmp_path: Path):
    """A folder holding a CrackWatch store, then made read-only."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:
        folder.mkdir()
        url = _site_with_survey(folder, write_ortho(tmp_path / "a.tif",
                                                    when=datetime(2026, 6, 1, tzinfo=UTC)))
        for p in folder.iterdir():
            p.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield url
        finally:
            folder.chmod(0o755)
        return
    # root writes through chmod: a read-only bind mount of the store's folder instead
    folder.mkdir()
    url = _site_with_survey(folder, write_ortho(tmp_path / "a.tif",
                                                when=datetime(2026, 6, 1, tzinfo=UTC)))
    view = tmp_path / "ro-view"
    view.mkdir()
    done = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount here "
                    f"({done.stderr.decode().strip()}); chmod does not stop root")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield url.replace(str(folder), str(view))
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_write_commands_on_a_read_only_store_folder_are_one_error_line(tmp_path):
    new = write_ortho(tmp_path / "b.tif", when=datetime(2026, 6, 2, tzinfo=UTC))
    with _read_only_folder(tmp_path) as url:
        for args in (["site", "add", "other", "--profile", "slope", "--crs", "EPSG:32633"],
                     ["survey", "add", str(new), "--site", "wall"],
                     ["run", "--site", "wall", "--work-dir", str(tmp_path / "work")],
                     ["survey", "retry", "1"], ["survey", "skip", "1"]):
            r = runner.invoke(app, [*args, "--url", url])
            assert r.exit_code == 2, (args, r.output)
            [line] = _errors(r.output)
            assert ("read-only file system" in line or "not writable" in line), line
            assert "--url" in line and "Traceback" not in r.output
        r = runner.invoke(app, ["site", "list", "--url", url])  # reading still works
        assert r.exit_code == 0 and "wall" in r.output, r.output
        # export only reads (issue 30, item 7): it works on the read-only store too
        for args in (["--site", "wall", "--out", str(tmp_path / "wall.gpkg")],
                     ["--layer", "audit", "--format", "csv", "--out",
                      str(tmp_path / "audit.csv")]):
            r = runner.invoke(app, ["export", *args, "--url", url])
            assert r.exit_code == 0 and "wrote" in r.output, r.output


def test_storage_problem_names_the_fault_or_nothing():
    full = OSError(errno.ENOSPC, "No space left on device", "/nonexistent/x.tif")
    assert "no space left" in storage_problem(full, work_dir=Path("/nonexistent"))
    ro = OSError(errno.EROFS, "Read-only file system", "/proc/x")
    assert "read-only file system" in storage_problem(ro)

    class DiskFull(Exception):  # psycopg.errors.DiskFull's name
        pass

    assert "PostgreSQL server's disk is full" in storage_problem(
        _caused(RuntimeError("commit failed"), DiskFull("could not extend file")))
    assert storage_problem(ValueError("bad threshold")) is None
    assert storage_problem(OSError(errno.ENOENT, "No such file", "/x")) is None


def _caused(exc: Exception, cause: Exception) -> Exception:
    exc.__cause__ = cause
    return exc
