"""``crackwatch bench infer --peer torchgeo``: CrackWatch's whole ``crackwatch infer`` process
against the torchgeo peer pipeline on the same raster, alternating, one process per run.

The peer is the yardstick script ``peer_torchgeo.py`` (``../shared/tools/`` beside the project,
or ``--peer-script``): torchgeo ``RasterDataset`` + ``GridGeoSampler(512, stride 448)`` +
``DataLoader`` + stitching into a full-size array, with CrackWatch's default model and
normalisation, so only the pipeline differs. Because it loads the model through
:mod:`engine`, it also gets CrackWatch's allocator tuning (:mod:`engine.allocator`); run with
``CRACKWATCH_MALLOC_TUNING=0`` to time both without it.

Each run is a fresh process timed from start to exit (Python start-up and model load
included, for both); user/system CPU seconds and peak RSS come from ``wait4`` (the peer's
DataLoader worker is a child process: its CPU time is included, and the peak RSS is that of
the largest process, as ``/usr/bin/time -v`` reports it). ``crackwatch infer`` also writes a
COG with overviews and vectorises the cracks to a GeoPackage; the peer only stitches an array.
Printed, never asserted.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs.errors import JobsError

PEER_SCRIPT_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / \
    "peer_torchgeo.py"


class PeerUnavailableError(JobsError, RuntimeError):
    """torchgeo or the peer script is missing."""


def check_peer(peer: str, script: Path) -> None:
    """Raise :class:`PeerUnavailableError` (saying how to fix it) unless the peer can run."""
    if peer != "torchgeo":
        raise PeerUnavailableError(f"Unknown peer {peer!r}; the only peer is 'torchgeo'.")
    if importlib.util.find_spec("torchgeo") is None:
        raise PeerUnavailableError(
            "torchgeo is not installed; install the benchmark extra: "
            "python3 -m pip install -e '.[bench]'")
    if not script.is_file():
        raise PeerUnavailableError(
            f"Peer script {script} not found; pass --peer-script PATH to peer_torchgeo.py.")


def _timed_process(cmd: list[str], cwd: Path | None = None,
                   extra_env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` to completion; wall seconds, user/sys CPU seconds and peak RSS (``wait4``).

    Raises:
        RuntimeError: the process exited non-zero (its output's tail is in the message).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{text[-2000:]}")
    cpu = ru.ru_utime + ru.ru_stime
    return {"wall_s": round(wall, 2), "user_s": round(ru.ru_utime, 2),
            "sys_s": round(ru.ru_stime, 2),
            "sys_share_of_cpu": round(ru.ru_stime / cpu, 3) if cpu else 0.0,
            "peak_rss_mib": round(ru.ru_maxrss / 1024, 1), "output": text}


#: ``--peer-allocator`` choices: which peer runs, by allocator. ``tuned``: as the peer process
#: gets it (it imports ``engine``, whose import tunes glibc malloc); ``glibc``: with
#: ``CRACKWATCH_MALLOC_TUNING=0``, glibc's defaults, as a torchgeo user's own process has them.
PEER_ALLOCATORS = {"tuned": ["peer"], "glibc": ["peer_glibc"], "both": ["peer", "peer_glibc"]}


def bench_peer(sizes: list[int], *, workdir: Path, repeats: int = 1, peer: str = "torchgeo",
               peer_script: Path = PEER_SCRIPT_DEFAULT, model: str | None = None,
               peer_allocator: str = "both", runtime: str | None = None,
               progress=None) -> list[dict]:
    """For each square raster size: ``repeats`` alternating rounds of whole-process runs,
    ``crackwatch infer RASTER`` then the peer (with each allocator ``peer_allocator`` names,
    :data:`PEER_ALLOCATORS`), on the same synthetic raster.

    Returns one row per size with each side's median wall time, raster MP/s (raster pixels /
    whole-process wall time), user/sys CPU seconds, system share and peak RSS, the peer's own
    loop-only MP/s, and per peer side (``peer``: tuned allocator, ``peer_glibc``: glibc
    defaults) ``speedup[side]`` = CrackWatch raster MP/s / the peer's and
    ``peak_rss_ratio[side]``. ``runtime``: ``crackwatch infer --runtime`` (None: its default).

    Raises:
        PeerUnavailableError: torchgeo or the peer script is missing.
        ValueError: an unknown ``peer_allocator``.
        RuntimeError: a run failed.
    """
    from engine.bench import write_synthetic_orthomosaic

    if peer_allocator not in PEER_ALLOCATORS:
        raise ValueError(f"peer allocator must be one of {', '.join(PEER_ALLOCATORS)}, got "
                         f"{peer_allocator!r}.")
    check_peer(peer, peer_script)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sides = PEER_ALLOCATORS[peer_allocator]
    rows = []
    for size in sizes:
        raster = workdir / f"synthetic_benchmark_{size}.tif"
        if not raster.exists():
            write_synthetic_orthomosaic(raster, size)
        runs: dict[str, list[dict]] = {"crackwatch": [], **{s: [] for s in sides}}
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "jobs.cli", "infer", str(raster), "--out", out]
                if model:
                    cmd += ["--model", model]
                if runtime:
                    cmd += ["--runtime", runtime]
                runs["crackwatch"].append(_timed_process(cmd))
            if progress:
                progress(f"{size} px crackwatch infer: {runs['crackwatch'][-1]['wall_s']} s")
            for side in sides:
                runs[side].append(_timed_process(
                    [sys.executable, str(peer_script), str(raster)],
                    cwd=Path(__file__).resolve().parents[1],
                    extra_env={"CRACKWATCH_MALLOC_TUNING": "0"} if side == "peer_glibc"
                    else None))
                if progress:
                    progress(f"{size} px {peer} peer ({PEER_SIDE_LABELS[side]}): "
                             f"{runs[side][-1]['wall_s']} s")
        mp = size * size / 1e6
        row: dict = {"raster_px": f"{size}x{size}", "raster_megapixels": round(mp, 2),
                     "repeats": repeats, "peers": sides, "speedup": {}, "peak_rss_ratio": {}}
        for side, rs in runs.items():
            med = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
            fig = {k: v for k, v in med.items() if k != "output"}
            fig["raster_megapixels_per_s"] = round(mp / med["wall_s"], 3)
            if side != "crackwatch":
                m = re.search(r"= ([0-9.]+) MP/s", med["output"])
                fig["loop_megapixels_per_s"] = float(m.group(1)) if m else None
            row[side] = fig
        for side in sides:
            row["speedup"][side] = round(row["crackwatch"]["raster_megapixels_per_s"]
                                         / row[side]["raster_megapixels_per_s"], 3)
            row["peak_rss_ratio"][side] = round(row["crackwatch"]["peak_rss_mib"]
                                                / row[side]["peak_rss_mib"], 3)
        rows.append(row)
    return rows


#: How each peer side is named in tables.
PEER_SIDE_LABELS = {"peer": "our allocator settings", "peer_glibc": "glibc defaults"}


__all__ = ["PEER_ALLOCATORS", "PEER_SCRIPT_DEFAULT", "PEER_SIDE_LABELS", "PeerUnavailableError",
           "bench_peer", "check_peer"]
