"""Where survey inference runs: in this process (``local``) or on a Ray cluster (``ray``).

``local`` (the default) is CrackWatch as it always ran: one survey after another in the
calling process. ``ray`` scales out on an existing distributed engine, `Ray
<https://docs.ray.io>`_ (the optional extra ``crackwatch[ray]``), and gives the same results:

* **Surveys in parallel.** Every pending survey's infer + vectorise step
  (:func:`engine.survey.infer_survey`: survey imagery in, probability COG + crack frame out)
  runs on a Ray worker (:mod:`jobs.ray_pool`): an actor that keeps each model it loads, so a
  model is loaded once per worker; one actor per GPU (``num_gpus=1``) when the device is
  CUDA, else one per ``cpus_per_worker`` CPUs. The store writes, tracking and alerts stay in
  the driver (the process that called :func:`jobs.pipeline.run_site`: ``crackwatch run`` or
  the scheduler), one transaction per survey, in acquisition order per site, through
  :func:`jobs.pipeline.process_survey`'s ``infer`` hook. Several sites run at once with
  :func:`run_sites` (and in the scheduler), sharing the workers.
* **One large orthomosaic in row bands.** A raster of at least ``2 * band_rows`` rows is
  split into block-aligned row bands (:mod:`engine.banded`), one per worker; each worker
  reads its band's windows (with the tiler's overlap) from the file and writes its part;
  another call stitches the parts into the probability COG with the same blending weights.
  The result is bit-identical to a local run (same windows, weights and summation order).

Files: workers read each survey's source and write under the work directory, so on more
than one machine the inboxes and the work directory must be mounted at the same path on
every node (NFS or similar; a source may also be a GDAL URL such as ``/vsicurl/https://...``).

Failures: an error raised in a worker fails that survey exactly as it would locally (the
job run records it at the ``infer`` step, with the worker's traceback as a note). A worker
process that dies (killed, out of memory, its node lost) is restarted by Ray and the call
re-run up to ``max_retries`` times (inference writes only per-run temporary files, so a
re-run is safe); after that the survey fails with :class:`WorkerLostError`: nothing of it is
stored, and the next run of the site processes it again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.ray_pool import (
    RAY_INSTALL_HINT,
    ActorPool,
    CardOnly,
    Composite,
    ExecutorError,
    ModelSpec,
    WorkerLostError,
    connect_ray,
    import_ray,
    infer_survey_output,
)

if TYPE_CHECKING:
    from engine.survey import SurveySource

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BAND_ROWS", "EXECUTORS", "ExecutorConfig", "RayExecutor", "executor_config",
    "make_executor", "run_sites", "shared_executor",
]

EXECUTORS = ("local", "ray")
#: Rows per band below which an orthomosaic is not split (a raster is split when it has at
#: least twice as many rows). 4096 rows of 512-px windows with 64 px overlap: one window row
#: in 9 runs twice at each band edge (engine.banded).
DEFAULT_BAND_ROWS = 4096


# ------------------------------------------------------------------------------ settings


@dataclass
class ExecutorConfig:
    """Where and how inference runs.

    Attributes:
        kind: ``local`` or ``ray``.
        ray_address: ``None``: the cluster in ``RAY_ADDRESS`` when set, else a new local
            cluster on this machine; ``auto``: the cluster ``ray start`` runs on this
            machine; ``HOST:PORT`` (or ``ray://HOST:PORT``): that cluster's head; ``local``:
            a new local cluster.
        workers: inference actors; default one per GPU of the cluster (device CUDA), else
            one per ``cpus_per_worker`` CPUs of the cluster. More than fit are refused.
        cpus_per_worker: CPUs each actor reserves (and its torch threads on the CPU).
        band_rows: an orthomosaic with at least twice as many rows is split into row bands
            of at least this many rows (:func:`engine.banded.plan_bands`).
        max_retries: times Ray re-runs a call whose worker died (0: fail at once).
        ray_init: extra ``ray.init`` arguments for a local cluster started here (e.g.
            ``num_cpus``, ``object_store_memory``, ``runtime_env``).
    """

    kind: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    band_rows: int = DEFAULT_BAND_ROWS
    max_retries: int = 1
    ray_init: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = (self.kind or "local").strip().lower()
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"unknown executor {self.kind!r}: use local (this process) or "
                                f"ray (a Ray cluster; needs {RAY_INSTALL_HINT}).")
        if self.workers is not None and self.workers < 1:
            raise ExecutorError(f"--ray-workers must be >= 1, got {self.workers}.")
        if self.band_rows < 1 or self.cpus_per_worker <= 0 or self.max_retries < 0:
            raise ExecutorError("band_rows and cpus_per_worker must be > 0 and max_retries "
                                ">= 0.")


def executor_config(executor: str | None = None, ray_address: str | None = None,
                    ray_workers: int | None = None, **kwargs: Any) -> ExecutorConfig:
    """The executor of a command: its options, else ``CRACKWATCH_EXECUTOR``,
    ``CRACKWATCH_RAY_ADDRESS`` and ``CRACKWATCH_RAY_WORKERS`` (:mod:`jobs.settings`).

    Raises:
        ExecutorError: an unknown executor or a bad value.
    """
    from jobs.settings import get_settings

    st = get_settings()
    return ExecutorConfig(kind=executor or st.executor, ray_address=ray_address or st.ray_address,
                          workers=ray_workers or st.ray_workers, **kwargs)


def make_executor(config: ExecutorConfig) -> RayExecutor | None:
    """The executor for ``config``: None for ``local`` (the pipeline runs in this process),
    a connected :class:`RayExecutor` for ``ray``.

    Raises:
        RayUnavailableError: Ray is not installed, or the cluster cannot be reached.
    """
    if config.kind == "local":
        return None
    return RayExecutor(config)


_SHARED: dict[tuple, RayExecutor] = {}
_SHARED_LOCK = threading.Lock()


def shared_executor(config: ExecutorConfig | dict[str, Any] | None) -> RayExecutor | None:
    """One executor per process and configuration (the scheduler's site jobs share it, and
    with it the workers and their loaded models). ``dict``: :class:`ExecutorConfig` fields.
    """
    if config is None:
        return None
    if isinstance(config, dict):
        config = ExecutorConfig(**config)
    if config.kind == "local":
        return None
    key = (config.ray_address, config.workers, config.cpus_per_worker, config.band_rows,
           config.max_retries, repr(sorted(config.ray_init.items())))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = RayExecutor(config)
        return _SHARED[key]


class RayExecutor:
    """Inference on a Ray cluster (see the module docstring). Connects on creation.

    Raises (on creation):
        RayUnavailableError: Ray is not installed, or the cluster cannot be reached.
    """

    kind = "ray"

    def __init__(self, config: ExecutorConfig | None = None):
        self.config = config or ExecutorConfig(kind="ray")
        self._ray = import_ray()
        self._started = connect_ray(self.config)
        self._lock = threading.Lock()
        self._pools: dict[str, ActorPool] = {}
        self._refs: dict[int, tuple[Any, Any]] = {}

    # ---------------------------------------------------------------- workers
    def pool(self, device: str = "cpu") -> ActorPool:
        """The actors for ``device`` (``cpu`` or ``cuda``), started on first use."""
        kind = "cuda" if str(device).startswith("cuda") else "cpu"
        with self._lock:
            if kind not in self._pools:
                self._pools[kind] = self._start_pool(kind)
            return self._pools[kind]

    def _start_pool(self, kind: str) -> ActorPool:
        res = self._ray.cluster_resources()
        cfg = self.config
        if kind == "cuda":
            fit = int(res.get("GPU", 0))
            if fit < 1:
                raise ExecutorError(f"device cuda, but the Ray cluster has no GPU ({res}); "
                                    f"start GPU workers (`ray start --num-gpus=N`) or use "
                                    f"--device cpu.")
        else:
            fit = int(res.get("CPU", 0) // cfg.cpus_per_worker)
            if fit < 1:
                raise ExecutorError(f"the Ray cluster has no free CPU for a worker of "
                                    f"{cfg.cpus_per_worker:g} CPU ({res}).")
        n = cfg.workers or fit
        if n > fit:
            raise ExecutorError(
                f"--ray-workers {n} on {kind}, but the cluster fits {fit} ({res}); add "
                f"nodes (`ray start --address HEAD:PORT`) or ask for at most {fit}.")
        t0 = time.perf_counter()
        pool = ActorPool(self._ray, n, kind, cfg.cpus_per_worker, cfg.max_retries)
        log.info("Ray: %d %s worker(s) ready in %.1f s: %s", n, kind, time.perf_counter() - t0,
                 ", ".join(f"{w['node']}:{w['pid']}" for w in pool.where))
        return pool

    def workers(self, device: str = "cpu") -> int:
        """How many inference actors run for ``device``."""
        return self.pool(device).size

    def close(self) -> None:
        """Stop the workers (and the local cluster if this executor started it)."""
        with self._lock:
            for p in self._pools.values():
                p.close()
            self._pools.clear()
            self._refs.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        for k, v in list(_SHARED.items()):
            if v is self:
                _SHARED.pop(k, None)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- models
    def model_spec(self, model: Any = None, *, name: str | None = None,
                   weights_dir: Path | None = None, runtime: str = "auto") -> ModelSpec:
        """A loaded module ``model`` (sent to the workers once, with its runtime), or a
        registry ``name`` the workers load with ``runtime``."""
        if model is not None:
            with self._lock:
                if id(model) not in self._refs:
                    self._refs[id(model)] = (model, self._ray.put(model))
                return ModelSpec(ref=self._refs[id(model)][1])
        return ModelSpec(name=name, weights_dir=str(weights_dir) if weights_dir else None,
                         runtime=runtime)

    def _site_model(self, site: Any, options: Any, model: Any) -> tuple[ModelSpec | None, Any]:
        """(what the workers load, what the driver records) for a survey of ``site``; (None,
        None) when the model's card is missing: process_survey then fails the survey with
        the local error message."""
        if model is not None:
            return self.model_spec(model), model
        from engine.errors import ModelCardError, ModelNotFoundError
        from engine.registry import find_card
        from jobs.site_models import site_model_name

        name = site_model_name(site, options)[0]
        try:
            card = find_card(name, options.weights_dir)
        except (ModelNotFoundError, ModelCardError, ValueError, OSError):
            return None, None
        return self.model_spec(name=name, weights_dir=options.weights_dir,
                               runtime=getattr(options, "runtime", "auto")), CardOnly(card)

    # ---------------------------------------------------------------- surveys
    def submit_survey(self, survey: SurveySource, spec: ModelSpec, options: Any) -> Future:
        """Start one survey's infer + vectorise on the workers; its future gives
        :func:`jobs.ray_pool.infer_survey_output`'s dict (or raises its error). A large
        orthomosaic is split into row bands (:meth:`plan`)."""
        options = replace(options, work_dir=Path(options.work_dir).resolve())
        pool = self.pool(options.device)
        if not survey.is_photos:
            bands = self.plan(survey.source_path, pool.size)
            if len(bands) > 1:
                return self._submit_banded(pool, survey, bands, spec, options)
        return pool.submit("infer_survey", survey, spec, options, what=f"survey {survey.id}")

    def plan(self, path: str | Path, n_bands: int) -> list[tuple[int, int]]:
        """Row bands for the raster at ``path`` (:func:`engine.banded.plan_bands` with
        ``band_rows``); ``[]`` when it is not split: fewer than ``2 * band_rows`` rows, one
        worker, a raster without CRS or in a geographic CRS (reprojected on the fly: run
        whole), or a file this process cannot open (the worker reports why)."""
        import rasterio

        from engine.banded import plan_bands
        from engine.raster_read import open_survey_raster

        if n_bands < 2:
            return []
        try:
            with open_survey_raster(path) as src:
                if src.crs is None or src.crs.is_geographic:
                    return []
                rows = src.height
                block = src.block_shapes[0][0] if src.profile.get("tiled") else 0
        except (rasterio.errors.RasterioError, OSError):
            return []
        bands = plan_bands(rows, n_bands, min_rows=self.config.band_rows, block_rows=block)
        return bands if len(bands) > 1 else []

    def _submit_banded(self, pool: ActorPool, survey: SurveySource,
                       bands: list[tuple[int, int]], spec: ModelSpec, options: Any) -> Future:
        t0 = time.perf_counter()
        folder = Path(options.work_dir) / "probability"
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        parts = [str(folder / f"survey{survey.id}.bands-{tag}.band{k}.tif")
                 for k in range(len(bands))]
        kwargs = {"tile_size": options.tile_size, "overlap": options.overlap,
                  "batch_size": options.batch_size, "tta": options.tta, "progress": False}
        band_futs = [pool.submit("predict_band", survey.source_path, b, p, spec, kwargs,
                                 what=f"survey {survey.id} rows {b[0]}..{b[1] - 1}")
                     for b, p in zip(bands, parts, strict=True)]
        result = Composite(band_futs)
        left = [len(band_futs)]
        lock = threading.Lock()

        def drop_parts() -> None:
            for p in parts:
                try:
                    Path(p).unlink(missing_ok=True)
                except OSError:
                    pass

        def finished(fin: Future) -> None:
            drop_parts()
            if fin.cancelled():
                result.cancel()
            elif fin.exception() is not None:
                result.set_exception(fin.exception())
            else:
                out = fin.result()
                seconds = time.perf_counter() - t0
                mpx = sum(f.result().width * f.result().height for f in band_futs) / 1e6
                out["megapixels_per_s"] = round(mpx / seconds, 3)
                out["infer"] = {**out["infer"], "megapixels_per_s": out["megapixels_per_s"],
                                "seconds": round(seconds, 2),
                                "band_rows": [list(b) for b in bands]}
                result.set_result(out)

        def band_done(_f: Future) -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            if any(f.cancelled() for f in band_futs):
                drop_parts()
                result.cancel()
                return
            errors = [f.exception() for f in band_futs if f.exception() is not None]
            if errors:
                drop_parts()
                result.set_exception(_survey_error(survey, errors[0], options))
                return
            fin = pool.submit("finish_banded", survey, parts, [f.result() for f in band_futs],
                              options, spec.name, what=f"survey {survey.id} (stitch + vectorise)")
            result.children.append(fin)
            fin.add_done_callback(finished)

        for f in band_futs:
            f.add_done_callback(band_done)
        return result

    def process_surveys(self, bind: Any, surveys: Sequence[Any], options: Any, *,
                        model: Any = None, notifiers: Any = None,
                        progress: Callable[[Any, Any], None] | None = None) -> list:
        """The :func:`jobs.pipeline.run_site` hook: start every survey's inference on the
        workers at once, then store each in order (``surveys`` are in acquisition order)
        with :func:`jobs.pipeline.process_survey` as its result arrives.

        Returns:
            One :class:`jobs.pipeline.SurveyResult` per survey, in order.
        """
        from engine.survey import SurveySource
        from geodata.store.api import get_site
        from jobs.pipeline import process_survey

        sites: dict[int, Any] = {}
        jobs: list[tuple[Any, Any, Future | None]] = []
        try:
            for sv in surveys:
                if sv.site_id not in sites:
                    sites[sv.site_id] = get_site(bind, sv.site_id)
                site = sites[sv.site_id]
                spec, held = self._site_model(site, options, model)
                fut = (self.submit_survey(SurveySource.of(sv, site), spec, options)
                       if spec is not None else None)
                jobs.append((sv, held, fut))
            results = []
            for sv, held, fut in jobs:
                r = process_survey(bind, sv.id, options, model=held, notifiers=notifiers,
                                   infer=_waiter(fut, sv.id, options)
                                   if fut is not None else None)
                results.append(r)
                if progress:
                    progress(sv, r)
            return results
        finally:
            for _, _, fut in jobs:
                if fut is not None:
                    fut.cancel()

    # ---------------------------------------------------------------- one raster
    def raster_predictor(self, spec: ModelSpec, *, progress: bool = True
                         ) -> Callable[..., Any]:
        """A drop-in for :func:`engine.infer.predict_raster` (the ``crackwatch infer`` hook):
        the raster's row bands run on the workers (one band per worker), then are stitched
        here into ``out_path`` (which, like the raster, every worker must reach). Its bar is
        ``progress``'s, whatever the caller's ``progress`` says."""

        def predict(path, _model, *, out_path, device="cpu", **kwargs):
            kwargs.pop("progress", None)
            return self.predict_raster(path, spec, out_path=out_path, device=device,
                                       progress=progress, **kwargs)

        return predict

    def photo_predictor(self, spec: ModelSpec, paths: Sequence[str | Path], *,
                        device: str = "cpu", **kwargs: Any) -> Callable[..., Any]:
        """A drop-in for :func:`engine.infer.predict_image` over photos (the ``crackwatch
        infer`` hook), called as ``predict(path, rgb)``: ``paths`` (in the order the caller
        asks for them) run on the workers, which read each photo themselves, at most two per
        worker ahead of the caller; a path not in ``paths`` is sent when asked for.
        ``kwargs``: tiling of ``predict_image``."""
        pool = self.pool(device)
        todo = [str(Path(p).resolve()) for p in paths]
        started: dict[str, Future] = {}
        nxt = [0]

        def send(p: str) -> Future:
            return pool.submit("predict_photo", p, spec, kwargs, what=Path(p).name)

        asked: set[str] = set()

        def predict(path, _rgb=None):
            key = str(Path(path).resolve())
            asked.add(key)
            fut = started.pop(key, None) or send(key)
            while nxt[0] < len(todo) and len(started) < 2 * pool.size:
                p = todo[nxt[0]]
                nxt[0] += 1
                if p not in asked and p not in started:
                    started[p] = send(p)
            return fut.result()

        return predict

    def predict_raster(self, path: str | Path, spec: ModelSpec, *, out_path: str | Path,
                       device: str = "cpu", progress: bool = True, **kwargs: Any):
        """:func:`engine.infer.predict_raster` across the workers, in row bands; returns its
        :class:`~engine.infer.PredictionResult` (equal output, see :mod:`engine.banded`).
        A raster that is not split (:meth:`plan`) runs whole on one worker."""
        from tqdm import tqdm

        from engine.banded import merge_band_results, stitch_bands

        pool = self.pool(device)
        path, out_path = Path(path).resolve(), Path(out_path).resolve()
        kwargs["progress"] = False
        bands = self.plan(path, pool.size)
        if not bands:
            from engine.raster_read import open_survey_raster

            with open_survey_raster(path) as src:
                bands = [(0, src.height)] if src.crs is not None and \
                    not src.crs.is_geographic else []
        t0 = time.perf_counter()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if not bands:  # reprojected (or no CRS: the worker says what to do) - one worker
            fut = pool.submit("predict_band", str(path), None, str(out_path), spec, kwargs,
                              what=f"{path.name}")
            return fut.result()
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        parts = [out_path.with_name(f"{out_path.stem}.bands-{tag}.band{k}.tif")
                 for k in range(len(bands))]
        futs = [pool.submit("predict_band", str(path), b, str(p), spec, kwargs,
                            what=f"{path.name} rows {b[0]}..{b[1] - 1}")
                for b, p in zip(bands, parts, strict=True)]
        try:
            with tqdm(total=len(futs), desc=f"infer {path.name} on {pool.size} Ray workers",
                      unit="band", disable=not progress, leave=False) as bar:
                for f in as_completed(futs):
                    f.result()
                    bar.update(1)
            stitch_bands(parts, out_path)
        finally:
            for f in futs:
                f.cancel()
            for p in parts:
                p.unlink(missing_ok=True)
        return merge_band_results([f.result() for f in futs], out_path,
                                  time.perf_counter() - t0)


def _waiter(fut: Future, survey_id: int, options: Any) -> Callable[..., dict]:
    """process_survey's ``infer`` hook for a survey started on the workers. A worker that
    died left its per-run files (``*.run-*``, ``*.partial.tif``, band files): they are
    removed here (the site's lock is held, so no other run of the survey writes them)."""

    def wait(_survey, _site, _model, _options) -> dict:
        try:
            return fut.result()
        except WorkerLostError:
            folder = Path(options.work_dir) / "probability"
            for pattern in (f"survey{survey_id}_probability.run-*",
                            f"survey{survey_id}.bands-*"):
                for p in folder.glob(pattern):
                    p.unlink(missing_ok=True)
            raise

    return wait


def _survey_error(survey: SurveySource, exc: BaseException, options: Any) -> BaseException:
    """A band's error as the local step reports it (e.g. its hint for a raster without CRS
    names the survey commands, not ``crackwatch infer --crs``)."""
    from engine.errors import CRSError

    if not isinstance(exc, CRSError):
        return exc

    def raise_it(*_a, **_k):
        raise exc

    try:
        infer_survey_output(survey, None, options, predict=raise_it)
    except Exception as again:  # noqa: BLE001 - the rewritten error
        return again
    return exc  # pragma: no cover


def run_sites(bind: Any, sites: Sequence[int | str], options: Any, *,
              executor: RayExecutor | None = None, model: Any = None,
              notifiers: Any = None, progress: Callable[[Any, Any], None] | None = None,
              wait_s: float = 0.0) -> dict[int | str, list]:
    """Run several sites (:func:`jobs.pipeline.run_site` each).

    Local: one site after another. Ray: every site's run at once, one driver thread per
    site, so the surveys of all sites share the workers; each site's surveys are stored by
    its own thread in acquisition order (one transaction per survey; on SQLite the writers
    take turns, ``busy_timeout`` 30 s).

    Returns:
        ``{site: [SurveyResult, ...]}`` in the order of ``sites``.

    Raises:
        The first error a site's run raised (SiteBusyError, RecordNotFoundError), after
        every other site has finished.
    """
    from concurrent.futures import ThreadPoolExecutor

    from jobs.pipeline import run_site

    def one(site):
        return run_site(bind, site, options, model=model, notifiers=notifiers,
                        progress=progress, wait_s=wait_s, executor=executor)

    if executor is None:
        return {s: one(s) for s in sites}
    with ThreadPoolExecutor(max_workers=max(1, len(sites)),
                            thread_name_prefix="crackwatch-site") as threads:
        futs = {s: threads.submit(one, s) for s in sites}
    errors = [f.exception() for f in futs.values() if f.exception() is not None]
    if errors:
        raise errors[0]
    return {s: f.result() for s, f in futs.items()}
