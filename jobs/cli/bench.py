"""``crackwatch bench model|train|infer|runtimes``: throughput figures, printed, never asserted
(registered in :mod:`jobs.cli.main`; ``bench store`` and ``bench ray`` live beside their
subjects, :mod:`jobs.cli.store` and :mod:`jobs.cli.ray`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from jobs.cli.common import _fail, console, runtime_choice, runtime_option

__all__ = ["register"]


def bench_model_cmd(
    model: str = typer.Option(None, help="Model name (default: the default shipped model)."),
    tile_size: int = typer.Option(512, min=32),
    batch_size: int = typer.Option(8, min=1),
    iterations: int = typer.Option(5, min=1),
    device: str = typer.Option("cpu"),
    weights_dir: Path | None = typer.Option(None),
    tta: bool = typer.Option(False, help="Time flip test-time augmentation (4 passes)."),
    runtime: str | None = runtime_option(),
    compare: bool = typer.Option(True, help="On the CPU, also time every installed runtime "
                                 "(round-robin with the others)."),
) -> None:
    """Megapixels/s of the model's forward pass on tiles, per runtime, with the model's
    GFLOPs per MP and the machine's measured matmul peak (printed, not asserted)."""
    from engine.bench import bench_model
    from engine.registry import DEFAULT_MODEL, load_model
    from engine.runtime import RuntimeUnavailableError, installed_runtimes

    name = model or DEFAULT_MODEL
    runtime = runtime_choice(runtime, device)
    try:
        net = load_model(name, weights_dir=weights_dir, device=device, runtime=runtime)
        compared = installed_runtimes() if compare and device == "cpu" else []
        r = bench_model(net, tile_size=tile_size, batch_size=batch_size,
                        iterations=iterations, device=device, tta=tta, runtimes=compared)
    except RuntimeUnavailableError as exc:
        _fail(exc)
    console.print_json(json.dumps({"model": name, **r}))


def bench_runtimes_cmd(
    model: list[str] = typer.Option(None, help="Model(s), repeatable (default: the shipped "
                                    "model of each site profile)."),
    dataset: list[str] = typer.Option(None, "--set", help="deepcrack-test | uav75-test | "
                                      "rockfracture-test | demo, repeatable (default: all)."),
    limit: int | None = typer.Option(None, min=1, help="The first N images of each set."),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
    out: Path | None = typer.Option(None, help="Write the rows as JSON here."),
) -> None:
    """Same cracks from every installed runtime as from PyTorch, image by image on real
    imagery (crack-mask IoU >= 0.999, <= 0.01 % of pixels flipping at 0.5), and each
    runtime's end-to-end MP/s. Printed, not asserted."""
    from engine.errors import DataNotFoundError, ImageReadError
    from engine.registry import PROFILE_MODELS
    from engine.runtime import installed_runtimes
    from jobs.bench_runtimes import IDENTITY_SETS, bench_runtimes

    models = model or list(dict.fromkeys(PROFILE_MODELS.values()))
    try:
        rows = bench_runtimes(models, dataset or list(IDENTITY_SETS),
                              [r for r in installed_runtimes() if r != "torch"],
                              data_root=data_root, limit=limit,
                              progress=lambda m: console.print(escape(m), style="dim"))
    except (DataNotFoundError, ImageReadError, ValueError) as exc:
        _fail(exc)
    t = Table(title="Runtimes vs PyTorch, per image at threshold 0.5 (rule: IoU >= 0.999 and "
                    "<= 0.01 % of pixels flipped)")
    for col in ("model", "set", "runtime", "images", "same cracks", "min IoU", "max flipped %",
                "max |dp|", "MP/s"):
        t.add_column(col, justify="left" if col in ("model", "set", "runtime") else "right")
    for r in rows:
        t.add_row(r["model"], r["set"], r["runtime"], str(r["images"]),
                  f"{r['same_cracks']}/{r['images']}" if "same_cracks" in r else "reference",
                  f"{r['min_iou']:.4f}" if "min_iou" in r else "-",
                  f"{r['max_flipped_percent']:.4f}" if "min_iou" in r else "-",
                  f"{r['max_probability_difference']:.1e}" if "min_iou" in r else "-",
                  f"{r['megapixels_per_s']:.2f}")
    console.print(t)
    if rows:
        console.print(f"machine: {rows[0]['machine']}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2) + "\n")
        console.print(f"rows written to {out}")


def bench_train_cmd(
    augment: str = typer.Option("per-crop", help="per-crop | batched (see train segment)."),
    batch_size: int = typer.Option(16, min=1),
    crop_size: int = typer.Option(256, min=32),
    steps: int = typer.Option(20, min=1),
    workers: int = typer.Option(0, min=0, help="DataLoader workers (per-crop only)."),
    device: str = typer.Option("cpu"),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
    encoder: str | None = typer.Option(None, help="Encoder instead of the default "
                                       "(see train segment)."),
    encoder_depth: int | None = typer.Option(None, min=3, max=5, help="U-Net encoder stages "
                                             "(see train segment)."),
) -> None:
    """Training throughput: crops/s of the augmentation alone and of whole training steps."""
    from engine.bench import bench_train
    from engine.errors import DataNotFoundError, ImageReadError, MaskShapeError, PairingError

    try:
        r = bench_train(augment=augment, batch_size=batch_size, crop_size=crop_size,
                        steps=steps, workers=workers, device=device, data_root=data_root,
                        encoder=encoder, encoder_depth=encoder_depth)
    except (DataNotFoundError, PairingError, ImageReadError, MaskShapeError, ValueError) as exc:
        _fail(exc)
    console.print_json(json.dumps(r))


def bench_infer_cmd(
    size: list[int] = typer.Option([2048, 8192], "--size", help="Square raster side(s), px."),
    model: str = typer.Option(None, help="Model name (default: the default shipped model)."),
    tile_size: int = typer.Option(512, min=32),
    overlap: int = typer.Option(64, min=0),
    batch_size: int | None = typer.Option(None, min=1, help="Windows per forward pass "
                                          "(default 4 on the CPU, 8 on CUDA)."),
    device: str = typer.Option("cpu"),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    workdir: Path = typer.Option(Path("runs/bench"), help="Where synthetic rasters are kept."),
    peer: str | None = typer.Option(None, help="Also time a peer pipeline on the same rasters: "
                                    "'torchgeo' (needs the bench extra)."),
    peer_script: Path | None = typer.Option(None, help="The peer's script (default "
                                            "../shared/tools/peer_torchgeo.py)."),
    repeats: int = typer.Option(1, min=1, help="With --peer: alternating pairs of runs per "
                                "size (medians reported)."),
    peer_allocator: str = typer.Option("both", help="With --peer: tuned (the peer with our "
                                       "allocator settings) | glibc (its defaults, "
                                       "CRACKWATCH_MALLOC_TUNING=0, as a torchgeo user's "
                                       "process has them) | both."),
    runtime: str | None = runtime_option(),
) -> None:
    """End-to-end tiled inference on synthetic rasters: MP/s, ratio to model forward, sys
    share of CPU time, peak RSS.

    Each size runs in its own process so its peak RSS is its own. With ``--peer torchgeo``,
    whole ``crackwatch infer`` processes and the torchgeo peer alternate on the same raster
    (``jobs.bench_peer``). Printed, not asserted.
    """
    from engine.registry import DEFAULT_MODEL

    runtime = runtime_choice(runtime, device)
    if peer:
        _bench_peer(list(size), workdir, repeats, peer, peer_script, model, peer_allocator,
                    runtime)
        return
    from engine.bench import bench_infer

    rows = bench_infer(list(size), model or DEFAULT_MODEL, workdir=workdir, tile_size=tile_size,
                       overlap=overlap, batch_size=batch_size, device=device, threads=threads,
                       runtime=runtime)
    t = Table(title=f"predict_raster, tile {tile_size}, overlap {overlap}, batch "
                    f"{rows[0]['batch_size'] if rows else batch_size}")
    for col in ("raster", "s", "raster MP/s", "tile MP/s end-to-end", "tile MP/s forward",
                "ratio", "sys share", "peak RSS MiB"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["raster_px"], f"{r['seconds']:.1f}", f"{r['raster_megapixels_per_s']:.3f}",
                  f"{r['tile_megapixels_per_s_end_to_end']:.3f}",
                  f"{r['tile_megapixels_per_s_model_forward']:.3f}",
                  f"{r['end_to_end_over_forward']:.3f}", f"{r['sys_share_of_cpu']:.1%}",
                  f"{r['peak_rss_mib']:.0f}")
    console.print(t)
    console.print(f"machine: {rows[0]['machine'] if rows else '-'}")
    console.print_json(json.dumps(rows))


def _bench_peer(sizes: list[int], workdir: Path, repeats: int, peer: str,
                peer_script: Path | None, model: str | None, peer_allocator: str,
                runtime: str) -> None:
    """``bench infer --peer``: print the side-by-side table and its JSON."""
    from jobs.bench_peer import (
        PEER_SCRIPT_DEFAULT,
        PEER_SIDE_LABELS,
        PeerUnavailableError,
        bench_peer,
    )

    try:
        rows = bench_peer(sizes, workdir=workdir, repeats=repeats, peer=peer,
                          peer_script=peer_script or PEER_SCRIPT_DEFAULT, model=model,
                          peer_allocator=peer_allocator, runtime=runtime,
                          progress=lambda m: console.print(escape(m), style="dim"))
    except (PeerUnavailableError, RuntimeError, ValueError) as exc:
        _fail(exc)
    t = Table(title=f"crackwatch infer (runtime {runtime}) vs {peer} peer (whole processes, "
                    f"medians of {repeats})")
    for col in ("raster", "pipeline", "wall s", "MP/s", "user s", "sys s", "sys %", "RSS MiB"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        for side in ("crackwatch", *r["peers"]):
            f = r[side]
            t.add_row(r["raster_px"], "crackwatch" if side == "crackwatch" else
                      f"{peer}, {PEER_SIDE_LABELS[side]}",
                      f"{f['wall_s']:.1f}", f"{f['raster_megapixels_per_s']:.3f}",
                      f"{f['user_s']:.1f}", f"{f['sys_s']:.1f}", f"{f['sys_share_of_cpu']:.1%}",
                      f"{f['peak_rss_mib']:.0f}")
        for side in r["peers"]:
            t.add_row(r["raster_px"], f"ratio vs {PEER_SIDE_LABELS[side]}", "",
                      f"{r['speedup'][side]:.2f}x", "", "", "",
                      f"{r['peak_rss_ratio'][side]:.2f}x")
    console.print(t)
    import os
    import platform

    import torch

    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
                  f"{torch.__version__}")
    console.print_json(json.dumps(rows))

def register(bench_app: typer.Typer) -> None:
    """Add the model, training and inference benchmarks to the ``bench`` group."""
    bench_app.command("model")(bench_model_cmd)
    bench_app.command("train")(bench_train_cmd)
    bench_app.command("infer")(bench_infer_cmd)
    bench_app.command("runtimes")(bench_runtimes_cmd)
