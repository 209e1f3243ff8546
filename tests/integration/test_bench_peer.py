"""``crackwatch bench infer --peer``: whole-process figures, alternating runs, clear errors."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

import jobs.bench_peer as bench_peer_mod
from jobs.bench_peer import _timed_process, bench_peer
from jobs.cli import app

runner = CliRunner()


def test_timed_process_measures_the_child():
    r = _timed_process([sys.executable, "-c",
                        "import numpy as np; a = np.ones(150 * 2**20, np.uint8); "
                        "s = 0\nfor i in range(3 * 10**6): s += i\nprint('ok')"])
    assert r["output"].strip() == "ok"
    assert r["wall_s"] > 0 and r["user_s"] > 0 and r["peak_rss_mib"] >= 150
    assert 0.0 <= r["sys_share_of_cpu"] <= 1.0


def test_bench_peer_alternates_and_reports_the_peer_with_both_allocators(tmp_path,
                                                                          monkeypatch):
    # The orchestration with a stand-in peer script (torchgeo itself is in the bench extra);
    # it reports a different loop figure when run with glibc's defaults.
    peer = tmp_path / "peer.py"
    peer.write_text("import os, sys, time\ntime.sleep(0.2)\n"
                    "glibc = os.environ.get('CRACKWATCH_MALLOC_TUNING') == '0'\n"
                    "print(f'peer: {sys.argv[1]} = {0.05 if glibc else 0.123} MP/s')\n")
    monkeypatch.setattr(bench_peer_mod.importlib.util, "find_spec", lambda name: object())
    rows = bench_peer([256], workdir=tmp_path, repeats=1, peer_script=peer, runtime="torch")
    (row,) = rows
    assert row["raster_px"] == "256x256" and row["repeats"] == 1
    assert row["peers"] == ["peer", "peer_glibc"]
    for side in ("crackwatch", "peer", "peer_glibc"):
        f = row[side]
        assert f["wall_s"] > 0 and f["raster_megapixels_per_s"] > 0 and f["peak_rss_mib"] > 0
        assert 0.0 <= f["sys_share_of_cpu"] <= 1.0
    assert row["peer"]["loop_megapixels_per_s"] == 0.123
    assert row["peer_glibc"]["loop_megapixels_per_s"] == 0.05
    assert set(row["speedup"]) == set(row["peak_rss_ratio"]) == {"peer", "peer_glibc"}
    assert all(v > 0 for v in (*row["speedup"].values(), *row["peak_rss_ratio"].values()))
    assert (tmp_path / "synthetic_benchmark_256.tif").is_file()
    json.dumps(rows)
    (only,) = bench_peer([256], workdir=tmp_path, peer_script=peer, peer_allocator="glibc")
    assert only["peers"] == ["peer_glibc"] and "peer" not in only


def test_missing_peer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_peer_mod.importlib.util, "find_spec", lambda name: None)
    r = runner.invoke(app, ["bench", "infer", "--peer", "torchgeo", "--size", "256",
                            "--workdir", str(tmp_path)])
    assert r.exit_code == 2
    assert "torchgeo is not installed" in r.output and ".[bench]" in r.output
    r = runner.invoke(app, ["bench", "infer", "--peer", "gdal", "--size", "256",
                            "--workdir", str(tmp_path)])
    assert r.exit_code == 2 and "Unknown peer 'gdal'" in r.output
    monkeypatch.setattr(bench_peer_mod.importlib.util, "find_spec", lambda name: object())
    r = runner.invoke(app, ["bench", "infer", "--peer", "torchgeo", "--size", "256",
                            "--workdir", str(tmp_path), "--peer-allocator", "jemalloc"])
    assert r.exit_code == 2 and "peer allocator must be one of" in r.output


def test_bench_infer_reports_sys_share_and_batch(tmp_path):
    from engine.bench import bench_infer
    from engine.registry import DEFAULT_MODEL

    (row,) = bench_infer([256], DEFAULT_MODEL, workdir=tmp_path, tile_size=128, overlap=32)
    assert row["batch_size"] == 4  # the CPU default
    assert row["user_s"] > 0 and 0.0 <= row["sys_share_of_cpu"] <= 1.0
    assert row["allocator"] == "tuned" or not sys.platform.startswith("linux")
    assert row["peak_rss_mib"] > 0 and row["tile_megapixels_per_s_end_to_end"] > 0
