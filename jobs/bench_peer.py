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


def bench_peer(sizes: list[int], *, workdir: Path, repeats: int = 1, peer: str = "torchgeo",
               peer_script: Path = PEER_SCRIPT_DEFAULT, model: str | None = None,
               peer_untuned: bool = False, progress=None) -> list[dict]:
    """For each square raster size: ``repeats`` alternating pairs of whole-process runs,
    ``crackwatch infer RASTER`` then the peer, on the same synthetic raster.

    Returns one row per size with each side's median wall time, raster MP/s (raster pixels /
    whole-process wall time), user/sys CPU seconds, system share and peak RSS, the peer's own
    loop-only MP/s, and ``speedup`` = CrackWatch raster MP/s / peer raster MP/s.
    ``peer_untuned``: run the peer with ``CRACKWATCH_MALLOC_TUNING=0``, glibc's defaults, as a
    torchgeo user's own process has them.

    Raises:
        PeerUnavailableError: torchgeo or the peer script is missing.
        RuntimeError: a run failed.
    """
    from engine.bench import write_synthetic_orthomosaic

    check_peer(peer, peer_script)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        raster = workdir / f"synthetic_benchmark_{size}.tif"
        if not raster.exists():
            write_synthetic_orthomosaic(raster, size)
        runs: dict[str, list[dict]] = {"crackwatch": [], "peer": []}
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "jobs.cli", "infer", str(raster), "--out", out]
                if model:
                    cmd += ["--model", model]
                runs["crackwatch"].append(_timed_process(cmd))
            if progress:
                progress(f"{size} px crackwatch infer: {runs['crackwatch'][-1]['wall_s']} s")
            runs["peer"].append(_timed_process(
                [sys.executable, str(peer_script), str(raster)],
                cwd=Path(__file__).resolve().parents[1],
                extra_env={"CRACKWATCH_MALLOC_TUNING": "0"} if peer_untuned else None))
            if progress:
                progress(f"{size} px {peer} peer: {runs['peer'][-1]['wall_s']} s")
        mp = size * size / 1e6
        row: dict = {"raster_px": f"{size}x{size}", "raster_megapixels": round(mp, 2),
                     "repeats": repeats, "peer_allocator": "glibc defaults" if peer_untuned
                     else "as the peer process gets it (it imports engine)"}
        for side, rs in runs.items():
            med = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
            fig = {k: v for k, v in med.items() if k != "output"}
            fig["raster_megapixels_per_s"] = round(mp / med["wall_s"], 3)
            if side == "peer":
                m = re.search(r"= ([0-9.]+) MP/s", med["output"])
                fig["loop_megapixels_per_s"] = float(m.group(1)) if m else None
            row[side] = fig
        row["speedup"] = round(row["crackwatch"]["raster_megapixels_per_s"]
                               / row["peer"]["raster_megapixels_per_s"], 3)
        row["peak_rss_ratio"] = round(row["crackwatch"]["peak_rss_mib"]
                                      / row["peer"]["peak_rss_mib"], 3)
        rows.append(row)
    return rows


__all__ = ["PEER_SCRIPT_DEFAULT", "PeerUnavailableError", "bench_peer", "check_peer"]
