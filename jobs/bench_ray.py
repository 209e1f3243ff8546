"""``crackwatch bench ray``: wall time of the local executor vs the Ray executor.

Two jobs, each run locally (this process) and on Ray (``workers`` actors on a cluster started
here, or the one at ``ray_address``):

* ``surveys``: N SIMULATED survey orthomosaics over two sites through the whole pipeline
  (:func:`jobs.executor.run_sites`: infer, vectorise, store + track, alerts), each into a
  fresh SQLite store; the crack polygons of both stores are compared;
* ``orthomosaic``: one SIMULATED ``size x size`` orthomosaic to a probability COG
  (:func:`engine.infer.predict_raster` vs :meth:`jobs.executor.RayExecutor.predict_raster`,
  one row band per worker); the two maps are compared pixel for pixel.

The surveys' runs include loading the model (the local run once, each Ray worker once);
the orthomosaic runs do not (both have it loaded by then); starting the cluster and its
workers is timed apart. CPU seconds (user + system) are counted for this process and for
the Ray workers' processes (not Ray's own daemons), and the 1-minute load average is noted
before each run: on a shared machine wall times follow the other load. The local runs
use torch's default CPU threads (all cores), each Ray CPU worker one thread: the model's
forward pass may round differently with a different thread count, so a few uint8
probability levels can differ by one (counted in ``pixels_differing``; the stitching
itself is exact, see :mod:`engine.banded`). On CUDA the GPUs' utilisation is sampled every
0.5 s with ``nvidia-smi`` during each run. Figures are printed, never asserted; the
rasters are synthetic (noise + dark lines), named SIMULATED.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

EPSG = 32633
SITES = ("SIMULATED bench site A", "SIMULATED bench site B")


def write_simulated(path: Path, size: int, *, when: datetime, seed: int = 0,
                    crack_px: int | None = None, pixel_m: float = 0.002) -> Path:
    """A SIMULATED ``size x size`` RGB GeoTIFF (512-px blocks, EPSG:32633, ``pixel_m``
    pixels): grey noise with dark crack-like lines (a vertical one ``crack_px`` long and a
    few diagonal ones), written in 512-row strips (memory ~ 3 x 512 x size bytes)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    crack_px = size // 2 if crack_px is None else crack_px
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=3,
                       dtype="uint8", crs=f"EPSG:{EPSG}", tiled=True, blockxsize=512,
                       blockysize=512, transform=from_origin(500000, 6000000, pixel_m, pixel_m),
                       photometric="RGB") as dst:
        for r in range(0, size, 512):
            n = min(512, size - r)
            noise = rng.standard_normal((3, n, size), dtype=np.float32)
            img = np.clip(noise * 14 + 150, 0, 255).astype(np.uint8)
            rows = np.arange(r, r + n)
            c = size // 3
            inside = (rows >= size // 8) & (rows < size // 8 + crack_px)
            img[:, inside, c:c + 4] = 30
            for k in range(1, 4):  # diagonal lines, one every size/4 columns
                cols = (rows + k * size // 4) % size
                for j in range(3):
                    img[:, np.arange(n), np.clip(cols + j, 0, size - 1)] = 35
            dst.write(img, window=Window(0, r, size, n))
        dst.update_tags(TIFFTAG_DATETIME=f"{when:%Y:%m:%d %H:%M:%S}",
                        DESCRIPTION="SIMULATED raster for crackwatch bench ray")
    tmp.replace(path)
    return path


class GpuSampler:
    """Samples ``nvidia-smi`` GPU utilisation (%) and memory (MiB) every ``period_s``."""

    def __init__(self, period_s: float = 0.5):
        self.period_s, self.samples = period_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True,
                    timeout=5).stdout
                for line in out.strip().splitlines():
                    i, util, mem = (x.strip() for x in line.split(","))
                    self.samples.append((int(i), float(util), float(mem)))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period_s)

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.available:
            self._thread.join(timeout=10)

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        per = {}
        for i in sorted({s[0] for s in self.samples}):
            u = [s[1] for s in self.samples if s[0] == i]
            m = [s[2] for s in self.samples if s[0] == i]
            per[f"gpu{i}"] = {"util_mean_pct": round(float(np.mean(u)), 1),
                              "util_max_pct": round(float(np.max(u)), 1),
                              "mem_max_mib": round(float(np.max(m)))}
        return per


def _crack_snapshot(engine) -> dict[str, list[bytes]]:
    """Per survey source name, the normalised WKB of its stored cracks, sorted."""
    from geodata.store.summaries import crack_polygons_by_source

    return {k: sorted(g.normalize().wkb for g in v)
            for k, v in crack_polygons_by_source(engine).items()}


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _job_times(engine) -> dict[str, float]:
    """Per survey, from the job runs: seconds in the driver after inference (store + track
    + alerts + notify: the serial part) and the infer step (with Ray: the wait, and the
    worker's own seconds)."""
    from geodata.store.summaries import job_run_steps

    driver, infer, worker = [], [], []
    for total, steps in job_run_steps(engine, "process_survey"):
        step = steps.get("infer", {})
        infer.append(float(step.get("seconds", 0.0)))
        driver.append(total - infer[-1])
        if "worker_seconds" in step:
            worker.append(float(step["worker_seconds"]))
    out = {"driver_s_per_survey": round(float(np.mean(driver)), 3),
           "infer_step_s_per_survey": round(float(np.mean(infer)), 3)}
    if worker:
        out["worker_s_per_survey"] = round(float(np.mean(worker)), 3)
    return out


def _run_surveys(files: list[Path], store: Path, work: Path, options_kw: dict[str, Any],
                 executor=None) -> tuple[float, dict, dict]:
    from geodata.store import add_site, connect, upgrade
    from jobs.executor import run_sites
    from jobs.inbox import ingest
    from jobs.pipeline import PipelineOptions

    store.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    url = f"sqlite:///{store}"
    upgrade(url)
    engine = connect(url)
    try:
        for name in SITES:
            add_site(engine, name, profile="structure", crs_epsg=EPSG)
        for k, f in enumerate(files):
            ingest(engine, SITES[k % 2], f)
        opt = PipelineOptions(work_dir=work, inbox_settle_s=0, **options_kw)
        t0 = time.perf_counter()
        results = run_sites(engine, list(SITES), opt, executor=executor, notifiers=[])
        seconds = time.perf_counter() - t0
        failed = [r.error for rs in results.values() for r in rs if r.status != "succeeded"]
        if failed:
            raise RuntimeError(f"bench surveys failed: {failed}")
        return seconds, _crack_snapshot(engine), _job_times(engine)
    finally:
        engine.dispose()


def bench_ray(*, workdir: Path, workers: int | None = None, surveys: int = 8,
              survey_size: int = 1024, size: int = 8192, device: str = "auto",
              model: str | None = None,
              ray_address: str | None = None, object_store_mb: int = 300,
              skip_local: bool = False,
              progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Time local vs Ray (see the module docstring); returns the figures.

    ``device`` ``auto``: CUDA when torch sees a GPU, else the CPU. ``workers`` None: one Ray
    actor per GPU (``num_gpus=1`` each) on CUDA, else one per CPU core.

    Raises:
        RayUnavailableError: Ray not installed or not reachable. ExecutorError: more workers
        than the cluster fits.
    """
    import torch

    from engine.registry import DEFAULT_MODEL
    from jobs.executor import ExecutorConfig

    workdir = Path(workdir).resolve()
    name = model or DEFAULT_MODEL
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = device.startswith("cuda")
    if workers is None:  # one actor per GPU, else per CPU
        workers = torch.cuda.device_count() if cuda else (os.cpu_count() or 1)
    load0 = os.getloadavg()
    progress(f"writing SIMULATED rasters under {workdir} (kept for the next run)")
    files, big = _inputs(workdir, surveys, survey_size, size)
    job = _Job(files, big, size, workdir, name, device,
               {"model_name": name, "device": device}, progress)
    rows: list[dict[str, Any]] = [{"job": f"{surveys} surveys ({survey_size}^2 px, pipeline)",
                                   "megapixels": surveys * survey_size ** 2 / 1e6},
                                  {"job": f"orthomosaic {size}^2 px (probability COG)",
                                   "megapixels": size * size / 1e6}]
    gpu: dict[str, Any] = {}
    local_cracks = None if skip_local else _run_local(job, rows, gpu)
    config = ExecutorConfig(kind="ray", ray_address=ray_address, workers=workers,
                            ray_init={"num_cpus": os.cpu_count(),
                                      "object_store_memory": object_store_mb * 1_000_000})
    ray_cracks, started = _run_ray(job, config, rows, gpu)
    _rates(rows)
    if not skip_local:
        rows[0]["same"] = ray_cracks == local_cracks
        rows[0]["cracks"] = sum(len(v) for v in local_cracks.values())
        rows[1].update(_compare_maps(workdir / "local_ortho.tif", workdir / "ray_ortho.tif"))
    gpu_name = torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else None
    return {
        "rows": rows, "workers": workers, "device": device, "model": name, **started,
        "gpu_utilisation": {k: v for k, v in gpu.items() if v} or None,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
                   + (f", {gpu_name}" if gpu_name else ", no GPU used"),
        "load_average_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "command": (f"crackwatch bench ray --workers {workers} --surveys {surveys} "
                    f"--survey-size {survey_size} --size {size} --device {device}"),
    }


def _inputs(workdir: Path, surveys: int, survey_size: int, size: int
            ) -> tuple[list[Path], Path]:
    """The SIMULATED survey rasters (two a night, the crack growing) and the big
    orthomosaic, written once under ``workdir/data`` and kept."""
    t0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    files = [write_simulated(workdir / "data" / f"SIMULATED_survey{k:02d}_{survey_size}.tif",
                             survey_size, when=t0 + timedelta(days=k // 2), seed=k,
                             crack_px=survey_size // 4 + 40 * (k // 2))
             for k in range(surveys)]
    big = write_simulated(workdir / "data" / f"SIMULATED_ortho_{size}.tif", size, when=t0,
                          seed=99)
    return files, big


@dataclass
class _Job:
    """What both runs (local, Ray) work on."""

    files: list[Path]
    big: Path
    size: int  #: of ``big``, px a side
    workdir: Path
    name: str
    device: str
    options_kw: dict[str, Any]
    progress: Callable[[str], None]


def _run_local(job: _Job, rows: list[dict[str, Any]], gpu: dict[str, Any]
               ) -> dict[str, list[bytes]]:
    """The local runs: the surveys through the pipeline (``rows[0]``), then the big
    orthomosaic with a loaded model (``rows[1]``); returns the surveys' cracks."""
    from engine.infer import predict_raster
    from engine.registry import load_model

    surveys, size = len(job.files), job.size
    job.progress(f"local: {surveys} surveys through the pipeline")
    rows[0]["load_before_local"] = round(os.getloadavg()[0], 2)
    c0 = _cpu_s()
    with GpuSampler() as g:
        rows[0]["local_s"], local_cracks, rows[0]["local_jobs"] = _run_surveys(
            job.files, job.workdir / "local.db", job.workdir / "work-local", job.options_kw)
    rows[0]["local_cpu_s"] = round(_cpu_s() - c0, 1)
    gpu["local surveys"] = g.summary()
    job.progress(f"local: orthomosaic {size} x {size}")
    net = load_model(job.name, device=job.device)  # loaded: the Ray workers have theirs by now
    rows[1]["load_before_local"] = round(os.getloadavg()[0], 2)
    c0 = _cpu_s()
    with GpuSampler() as g:
        tl = time.perf_counter()
        predict_raster(job.big, net, out_path=job.workdir / "local_ortho.tif",
                       device=job.device, progress=False)
        rows[1]["local_s"] = time.perf_counter() - tl
    rows[1]["local_cpu_s"] = round(_cpu_s() - c0, 1)
    gpu["local orthomosaic"] = g.summary()
    return local_cracks


def _run_ray(job: _Job, config: Any, rows: list[dict[str, Any]], gpu: dict[str, Any]
             ) -> tuple[dict[str, list[bytes]], dict[str, Any]]:
    """The Ray runs, on a cluster started here (or joined): the surveys (``rows[0]``), then
    the big orthomosaic in one row band per worker (``rows[1]``). Returns the surveys'
    cracks and the start-up figures (cluster, workers, resources)."""
    from jobs.executor import RayExecutor

    surveys, size = len(job.files), job.size
    job.progress("ray: starting the cluster and its workers")
    tc = time.perf_counter()
    with RayExecutor(config) as ex:
        cluster_s = time.perf_counter() - tc
        tw = time.perf_counter()
        pool = ex.pool(job.device)
        workers_s = time.perf_counter() - tw
        job.progress(f"ray: {pool.size} workers: {pool.where}")
        job.progress(f"ray: {surveys} surveys through the pipeline")
        rows[0]["load_before_ray"] = round(os.getloadavg()[0], 2)
        c0, w0 = _cpu_s(), pool.cpu_seconds()
        with GpuSampler() as g:
            rows[0]["ray_s"], ray_cracks, rows[0]["ray_jobs"] = _run_surveys(
                job.files, job.workdir / "ray.db", job.workdir / "work-ray", job.options_kw,
                executor=ex)
        rows[0]["ray_cpu_s"] = {"driver": round(_cpu_s() - c0, 1),
                                "workers": round(pool.cpu_seconds() - w0, 1)}
        gpu["ray surveys"] = g.summary()
        job.progress(f"ray: orthomosaic {size} x {size} in {pool.size} row bands")
        rows[1]["load_before_ray"] = round(os.getloadavg()[0], 2)
        c0, w0 = _cpu_s(), pool.cpu_seconds()
        with GpuSampler() as g:
            tr = time.perf_counter()
            res = ex.predict_raster(job.big, ex.model_spec(name=job.name),
                                    out_path=job.workdir / "ray_ortho.tif",
                                    device=job.device, progress=False)
            rows[1]["ray_s"] = time.perf_counter() - tr
        rows[1]["ray_cpu_s"] = {"driver": round(_cpu_s() - c0, 1),
                                "workers": round(pool.cpu_seconds() - w0, 1)}
        gpu["ray orthomosaic"] = g.summary()
        rows[1]["bands"] = res.warnings[-1]
        resources = __import__("ray").cluster_resources()
    return ray_cracks, {
        "cluster_start_s": round(cluster_s, 2), "workers_ready_s": round(workers_s, 2),
        "cluster_resources": {k: v for k, v in resources.items()
                              if k in ("CPU", "GPU", "memory", "object_store_memory")}}


def _rates(rows: list[dict[str, Any]]) -> None:
    """Megapixels per second of each run and the speed-up; the seconds rounded."""
    for r in rows:
        r["ray_mp_s"] = round(r["megapixels"] / r["ray_s"], 3)
        r["ray_s"] = round(r["ray_s"], 2)
        if "local_s" in r:
            r["local_mp_s"] = round(r["megapixels"] / r["local_s"], 3)
            r["speedup"] = round(r["local_s"] / r["ray_s"], 3)
            r["local_s"] = round(r["local_s"], 2)


def _compare_maps(local: Path, ray: Path) -> dict[str, Any]:
    """The two probability maps compared block by block: ``same`` (every pixel and mask),
    ``pixels_differing`` and ``max_abs_diff_uint8``."""
    import rasterio

    differ, worst, masks = 0, 0, True
    with rasterio.open(local) as a, rasterio.open(ray) as b:
        for _, win in a.block_windows(1):
            d = np.abs(a.read(1, window=win).astype(np.int16) -
                       b.read(1, window=win).astype(np.int16))
            differ += int((d > 0).sum())
            worst = max(worst, int(d.max()))
            masks &= np.array_equal(a.read_masks(1, window=win),
                                    b.read_masks(1, window=win))
    return {"same": differ == 0 and masks, "pixels_differing": differ,
            "max_abs_diff_uint8": worst}
