"""The Ray machinery under :mod:`jobs.executor`: connecting to a cluster, the inference
actors (:class:`RayWorker`: each keeps the models it loads) and the pool that feeds them
(:class:`ActorPool`: one driver thread per actor, a call goes to the first idle one), the
models as workers load them (:class:`ModelSpec`), and the executor's errors.

A worker's survey step is :func:`engine.survey.infer_survey` (:func:`infer_survey_output`);
a dead worker's call comes back as :class:`WorkerLostError`, a worker's own exception as
itself with the worker's traceback as a note (:func:`translate_error`).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["ActorPool", "CardOnly", "Composite", "ExecutorError", "ModelSpec",
           "RAY_INSTALL_HINT", "READY_TIMEOUT_S", "RayUnavailableError", "RayWorker",
           "WorkerLostError", "connect_ray", "import_ray", "infer_survey_output",
           "translate_error"]

#: Seconds to wait for the workers to start (import torch, load nothing yet).
READY_TIMEOUT_S = 300.0
RAY_INSTALL_HINT = "python3 -m pip install 'crackwatch[ray]' (Ray >= 2.40)"


class ExecutorError(RuntimeError):
    """The executor setting cannot be honoured (unknown executor, cluster too small...)."""


class RayUnavailableError(ExecutorError):
    """``ray`` was chosen but Ray is not installed, or its cluster cannot be reached."""


class WorkerLostError(ExecutorError):
    """The Ray worker running a call died (and Ray's retries were used up)."""


@dataclass
class ModelSpec:
    """A model as a worker loads it: by ``name`` (+ ``weights_dir``) from the registry, or
    ``ref``, a Ray object reference to a module the caller gave."""

    name: str | None = None
    weights_dir: str | None = None
    ref: Any = None
    runtime: str = "auto"

    def key(self) -> tuple:
        return ("ref", self.ref.hex()) if self.ref is not None else (
            "name", self.name, self.weights_dir, self.runtime)

    def load(self, device: str) -> Any:
        if self.ref is not None:
            import ray

            from engine.runtime import set_runtime

            model = ray.get(self.ref).to(device).eval()
            if getattr(model, "runtime", "torch") != "torch":
                # the runtime the driver chose, set again here: the weights' identity it is
                # tied to is per process
                set_runtime(model, model.runtime)
            return model
        from engine.registry import load_model

        return load_model(self.name, device=device, runtime=self.runtime,
                          weights_dir=Path(self.weights_dir) if self.weights_dir else None)


class CardOnly:
    """What the driver holds of a model that runs on workers: its card (for the run record)."""

    def __init__(self, card: dict[str, Any]):
        self.card = card


def infer_survey_output(survey: Any, model: Any, options: Any,
                        predict: Callable[..., Any] | None = None,
                        model_name: str | None = None) -> dict[str, Any]:
    """One survey's infer + vectorise as :func:`jobs.pipeline.process_survey` runs them
    locally: :func:`engine.survey.infer_survey` with the run's options, as the dict the
    pipeline stores (:meth:`engine.survey.SurveyInference.as_dict`). ``survey``: an
    :class:`engine.survey.SurveySource`; ``predict`` replaces
    :func:`engine.infer.predict_raster` for an orthomosaic (the band stitcher);
    ``model_name``: whose crack rules apply when ``model`` is None (the stitcher's run)."""
    from engine.survey import InferenceSettings, infer_survey

    return infer_survey(survey, model, InferenceSettings.of(options), work_dir=options.work_dir,
                        predict=predict, model_name=model_name).as_dict()


# ------------------------------------------------------------------------------ workers


class RayWorker:
    """A Ray actor (``ray.remote(RayWorker)``): inference with the models it has loaded."""

    def __init__(self, device: str, threads: int):
        import torch

        self.device = device
        if device == "cpu" and threads >= 1:
            torch.set_num_threads(threads)
        self._models: dict[tuple, Any] = {}

    def where(self) -> dict[str, Any]:
        import ray

        return {"node": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "gpus": [str(g) for g in ray.get_gpu_ids()], "device": self.device}

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of this worker process so far (all its threads)."""
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def _label(self) -> str:
        w = self.where()
        return f"{w['node']}:{w['pid']}" + (f" gpu {','.join(w['gpus'])}" if w["gpus"] else "")

    def _model(self, spec: ModelSpec) -> Any:
        key = spec.key()
        if key not in self._models:
            self._models[key] = spec.load(self.device)
        return self._models[key]

    def infer_survey(self, survey: Any, spec: ModelSpec, options: Any) -> dict:
        """:func:`infer_survey_output` of ``survey`` (an :class:`engine.survey.SurveySource`)
        with this worker's model and device."""
        t0 = time.perf_counter()
        out = infer_survey_output(survey, self._model(spec), replace(options, device=self.device))
        out["infer"] = {**out["infer"], "executor": "ray", "worker": self._label(),
                        "worker_seconds": round(time.perf_counter() - t0, 2)}
        return out

    def predict_band(self, path: str, band: tuple[int, int] | None, out_path: str,
                     spec: ModelSpec, kwargs: dict[str, Any]) -> Any:
        """Rows ``band`` of the raster to a band file (:func:`engine.banded.predict_band`);
        ``None``: the whole raster to its COG (:func:`engine.infer.predict_raster`)."""
        from engine.infer import predict_raster

        kwargs = {k: v for k, v in kwargs.items() if k != "device"}
        res = predict_raster(path, self._model(spec), out_path=out_path, device=self.device,
                             rows=band, **kwargs)
        where = "all rows" if band is None else f"rows {band[0]}..{band[1] - 1}"
        res.warnings.append(f"{where} on Ray worker {self._label()}")
        return res

    def predict_photo(self, path: str, spec: ModelSpec, kwargs: dict[str, Any]) -> Any:
        """:func:`engine.infer.predict_image` of the JPEG at ``path`` (read here)."""
        import numpy as np
        from PIL import Image

        from engine.infer import predict_image

        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        kwargs = {k: v for k, v in kwargs.items() if k != "device"}
        return predict_image(rgb, self._model(spec), device=self.device, **kwargs)

    def finish_banded(self, survey: Any, parts: list[str], results: list,
                      options: Any, model_name: str | None = None) -> dict:
        """Stitch a survey's band files into its probability COG, then vectorise it."""
        from engine.banded import merge_band_results, stitch_bands

        t0 = time.perf_counter()

        def stitcher(_path, _model, *, out_path, **_kwargs):
            stitch_bands(parts, out_path)
            return merge_band_results(results, Path(out_path),
                                      max(r.seconds for r in results))

        try:
            out = infer_survey_output(survey, None, options, predict=stitcher,
                                      model_name=model_name)
        finally:
            for p in parts:
                Path(p).unlink(missing_ok=True)
        out["infer"] = {**out["infer"], "executor": "ray", "worker": self._label(),
                        "bands": len(parts), "stitch_vectorise_seconds":
                            round(time.perf_counter() - t0, 2)}
        return out


def import_ray():
    """``import ray``, or a clear error naming the extra to install.

    Raises:
        RayUnavailableError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"--executor ray needs Ray, which is not installed here ({exc}). Install the extra "
            f"on this machine and on every worker: {RAY_INSTALL_HINT}; or run with "
            f"--executor local (CRACKWATCH_EXECUTOR=local).") from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast (5 s) on a ``HOST:PORT`` nothing answers on: ``ray.init`` would retry for
    minutes."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnavailableError(
            f"--ray-address {address!r} is not auto, local or HOST:PORT (e.g. 10.0.0.5:6379, "
            f"the address `ray start --head` printed).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"cannot reach the Ray cluster at {address} ({exc}). Start its head there "
            f"(`ray start --head --port={port}`, see deploy/README.md), check the address and "
            f"the firewall, or use --ray-address local to start a cluster on this machine."
        ) from exc


def connect_ray(config: Any) -> bool:
    """Connect this process to the cluster of ``config.ray_address``; True when a new local
    cluster was started here (stopped by :meth:`RayExecutor.close`).

    Raises:
        RayUnavailableError: Ray not installed; nothing answers at the address; no cluster
            runs on this machine (``auto``).
    """
    ray = import_ray()
    address = config.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    try:
        if address in (None, "local"):
            ray.init(address="local", **kwargs, **config.ray_init)
            return True
        ray.init(address=address, **kwargs)
        return False
    except ConnectionError as exc:
        auth = "" if os.environ.get("RAY_AUTH_MODE") == "token" else (
            " If the cluster uses token authentication (Ray 2.60's `ray start` turns it on "
            "by default), set RAY_AUTH_MODE=token here too, with its token in "
            "RAY_AUTH_TOKEN or ~/.ray/auth_token.")
        raise RayUnavailableError(
            f"cannot connect to a Ray cluster ({address}): {exc}. Start one with `ray start "
            f"--head` (deploy/README.md), give --ray-address HOST:PORT, or --ray-address local "
            f"to start one on this machine.{auth}") from exc


def translate_error(exc: BaseException, what: str) -> BaseException:
    """A Ray error as the error the survey records: the worker's own exception (with the
    worker's traceback as a note), or :class:`WorkerLostError` for a dead worker."""
    from ray import exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and not isinstance(cause, rex.RayError):
            try:
                cause.add_note(f"raised on a Ray worker:\n{exc.traceback_str}")
            except AttributeError:  # pragma: no cover - an exception without notes
                pass
            return cause
    lost = tuple(getattr(rex, n) for n in (
        "RayActorError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError",
        "NodeDiedError", "LocalRayletDiedError") if hasattr(rex, n))
    if isinstance(exc, lost):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return WorkerLostError(
            f"the Ray worker running {what} died ({type(exc).__name__}: {first}), and Ray's "
            f"retries were used up: it was killed, ran out of memory, or its node was lost. "
            f"Nothing of the survey was stored; the next run processes it again.")
    return exc


class Composite(Future):
    """A future that depends on others; cancelling it cancels them."""

    def __init__(self, children: Sequence[Future]):
        super().__init__()
        self.children = list(children)

    def cancel(self) -> bool:
        for c in self.children:
            c.cancel()
        return super().cancel()


class ActorPool:
    """``n`` inference actors, each fed by one driver thread from a shared queue: a call goes
    to the first idle worker (thread-safe: several site runs share the pool)."""

    def __init__(self, ray, n: int, device: str, cpus: float, max_retries: int):
        self._ray = ray
        cuda = device.startswith("cuda")
        self.device = "cuda" if cuda else "cpu"
        cls = ray.remote(RayWorker).options(
            num_cpus=cpus, num_gpus=1 if cuda else 0, max_restarts=-1,
            max_task_retries=max_retries)
        self.actors = [cls.remote(self.device, max(1, int(cpus))) for _ in range(n)]
        refs = [a.where.remote() for a in self.actors]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
        if waiting:
            for a in self.actors:
                ray.kill(a)
            raise ExecutorError(
                f"{len(waiting)} of {n} Ray workers did not start within {READY_TIMEOUT_S:g} "
                f"s; the cluster has {ray.cluster_resources()}. Ask fewer with --ray-workers.")
        self.where = ray.get(refs)
        self._q: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._serve, args=(a,), daemon=True,
                                          name=f"crackwatch-ray-{k}")
                         for k, a in enumerate(self.actors)]
        for t in self._threads:
            t.start()

    @property
    def size(self) -> int:
        return len(self.actors)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of all the workers' processes so far."""
        return float(sum(self._ray.get([a.cpu_seconds.remote() for a in self.actors])))

    def submit(self, method: str, *args: Any, what: str = "") -> Future:
        fut: Future = Future()
        self._q.put((method, args, fut, what or method))
        return fut

    def _serve(self, actor) -> None:
        alive = True
        while True:
            item = self._q.get()
            if item is None:
                return
            method, args, fut, what = item
            if not fut.set_running_or_notify_cancel():
                continue
            if not alive:  # Ray is restarting it: a call now would fail at once
                alive = self._wait_alive(actor)
                if not alive:
                    fut.set_exception(WorkerLostError(
                        f"the Ray worker for {what} died and did not come back within "
                        f"{READY_TIMEOUT_S:g} s; nothing of it was stored, the next run "
                        f"processes it again."))
                    continue
            try:
                fut.set_result(self._ray.get(getattr(actor, method).remote(*args)))
            except Exception as exc:  # noqa: BLE001 - handed to whoever waits on the call
                err = translate_error(exc, what)
                alive = not isinstance(err, WorkerLostError)
                fut.set_exception(err)

    def _wait_alive(self, actor) -> bool:
        """Wait until a (restarting) actor answers, up to :data:`READY_TIMEOUT_S`."""
        from ray import exceptions as rex

        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                self._ray.get(actor.where.remote(), timeout=30)
                return True
            except (rex.RayActorError, rex.GetTimeoutError):
                time.sleep(0.5)
        return False

    def close(self) -> None:
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[2].cancel()
        for _ in self._threads:
            self._q.put(None)
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        for t in self._threads:
            t.join(timeout=10)

