"""The executor options of ``crackwatch run``, ``scheduler`` and ``infer``, and ``crackwatch
bench ray`` (local vs Ray wall time; :mod:`jobs.bench_ray`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

EXECUTOR_HELP = ("Where inference runs: local (this process, one survey after another) | ray "
                 "(a Ray cluster: surveys in parallel, large orthomosaics in row bands; needs "
                 "crackwatch[ray]). Default: CRACKWATCH_EXECUTOR, else local.")
RAY_ADDRESS_HELP = ("With --executor ray: auto (the cluster `ray start` runs here) | HOST:PORT "
                    "(its head) | local (start one here). Default: CRACKWATCH_RAY_ADDRESS, "
                    "RAY_ADDRESS, else a new local cluster.")
RAY_WORKERS_HELP = ("With --executor ray: inference workers (default: one per GPU with "
                    "--device cuda, else one per CPU of the cluster).")


def executor_option() -> Any:
    return typer.Option(None, "--executor", help=EXECUTOR_HELP)


def ray_address_option() -> Any:
    return typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP)


def ray_workers_option() -> Any:
    return typer.Option(None, "--ray-workers", min=1, help=RAY_WORKERS_HELP)


def executor_from_cli(executor: str | None, ray_address: str | None, ray_workers: int | None,
                      fail: Callable[[Exception], None], *, shared: bool = False):
    """The executor the options (or settings) name: None for local, a connected
    :class:`jobs.executor.RayExecutor` for ray; a bad choice, Ray missing or an unreachable
    cluster is one ``error:`` line (``fail``)."""
    from jobs.executor import executor_config, make_executor, shared_executor
    from jobs.ray_pool import ExecutorError

    try:
        config = executor_config(executor, ray_address, ray_workers)
        return shared_executor(config) if shared else make_executor(config)
    except ExecutorError as exc:
        fail(exc)


def bench_ray_cmd(
    workers: int | None = typer.Option(None, "--workers", min=1, help="Ray workers (actors); "
                                       "default one per GPU with CUDA (num_gpus=1 each), else "
                                       "one per CPU core."),
    surveys: int = typer.Option(8, min=1, help="Surveys of the pipeline part (over 2 sites)."),
    survey_size: int = typer.Option(1024, min=256, help="Side of each survey's raster, px."),
    size: int = typer.Option(8192, min=512, help="Side of the large orthomosaic, px."),
    device: str = typer.Option("auto", help="auto (cuda when torch sees a GPU) | cpu | cuda"),
    model: str | None = typer.Option(None, help="Model (default: the default shipped model)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    object_store_mb: int = typer.Option(300, min=100, help="Object store of the local "
                                        "cluster started here, MB."),
    workdir: Path = typer.Option(Path("runs/bench-ray"), help="Synthetic rasters and stores."),
    skip_local: bool = typer.Option(False, help="Time the Ray runs only."),
) -> None:
    """Wall time local vs Ray: N surveys through the pipeline, and one large orthomosaic in
    row bands; MP/s, equality of the outputs, GPU utilisation on CUDA. Printed, not
    asserted."""
    from rich.console import Console
    from rich.table import Table

    from jobs.bench_ray import bench_ray
    from jobs.ray_pool import ExecutorError

    console = Console()
    try:
        r = bench_ray(workdir=workdir, workers=workers, surveys=surveys,
                      survey_size=survey_size, size=size, device=device, model=model,
                      ray_address=ray_address, object_store_mb=object_store_mb,
                      skip_local=skip_local,
                      progress=lambda m: console.print(m, style="dim", markup=False))
    except (ExecutorError, ValueError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    t = Table(title=f"local vs Ray ({r['workers']} {r['device']} workers); {r['machine']}")
    for c in ("job", "megapixels", "local s", "ray s", "local MP/s", "ray MP/s", "speed-up",
              "same output"):
        t.add_column(c, justify="right")
    for row in r["rows"]:
        loc = row.get("local_s")
        t.add_row(row["job"], f"{row['megapixels']:.1f}",
                  f"{loc:.1f}" if loc else "-", f"{row['ray_s']:.1f}",
                  f"{row['local_mp_s']:.2f}" if loc else "-", f"{row['ray_mp_s']:.2f}",
                  f"{row['speedup']:.2f}x" if loc else "-",
                  str(row.get("same", "-")) + (
                      f" ({row['pixels_differing']} px differ by <= "
                      f"{row['max_abs_diff_uint8']}/255)" if row.get("pixels_differing") else ""))
    console.print(t)
    console.print_json(json.dumps(r))


def register(bench_app: typer.Typer) -> None:
    """Add ``crackwatch bench ray``."""
    bench_app.command("ray")(bench_ray_cmd)
