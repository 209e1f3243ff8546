"""``crackwatch`` commands of the spatial store (registered in :mod:`jobs.cli.main`).

Commands:
    crackwatch db upgrade [--url URL]          create / migrate the store's schema (Alembic)
    crackwatch db current [--url URL]          the schema revision of the store
    crackwatch export --site S|--site-id N --format F --out PATH [--url URL] [--rfc7946]
                                               a site's cracks, tracks, surveys to gpkg/geojson/csv
    crackwatch bench store [--n N] [--per-survey K] [--url URL]
                                               insert N crack polygons, fetch one survey

``--url`` defaults to ``CRACKWATCH_DATABASE_URL``, else the SQLite file under
``CRACKWATCH_DATA_DIR`` (see :mod:`jobs.settings`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobs.cli.common import _fail

__all__ = ["db_app", "register"]

db_app = typer.Typer(help="The CrackWatch store (SQLite or PostGIS).", no_args_is_help=True)
console = Console()

URL_HELP = ("Database URL (default: CRACKWATCH_DATABASE_URL, else "
            "sqlite:///<CRACKWATCH_DATA_DIR>/crackwatch.db).")


def _url(url: str | None) -> str:
    from jobs.settings import Settings

    return url or Settings().resolved_database_url()


def _store_errors() -> tuple[type[Exception], ...]:
    from geodata.errors import CRSError, RecordNotFoundError, StoreError

    return (StoreError, RecordNotFoundError, CRSError, ValueError, OSError)


@db_app.command("upgrade")
def db_upgrade(
    url: str | None = typer.Option(None, help=URL_HELP),
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Create or upgrade the store's schema (PostgreSQL: also CREATE EXTENSION postgis)."""
    from geodata.store import connect, upgrade

    target = _url(url)
    try:
        engine = connect(target)
        now = upgrade(engine, revision)
        shown = engine.url.render_as_string(hide_password=True)
        engine.dispose()
    except _store_errors() as exc:
        _fail(exc)
    console.print(f"[green]store at revision {now}[/] ({shown})")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. 0007 (see `crackwatch db "
                                   "current`)."),
    url: str | None = typer.Option(None, help=URL_HELP),
    yes: bool = typer.Option(False, "--yes", help="Go on although stored records would be "
                             "lost (they are listed first)."),
) -> None:
    """Take the store's schema back to an older revision (to run an older CrackWatch).

    First measures what would be lost (a trial downgrade that is rolled back) and lists it;
    without --yes, a downgrade that loses records changes nothing."""
    from geodata.store import connect
    from geodata.store.migrate import DataLossError, downgrade, downgrade_losses

    try:
        engine = connect(_url(url), must_exist=True)
        losses = downgrade_losses(engine, revision)
        for line in losses:
            console.print(f"[yellow]would lose[/] {escape(line)}", soft_wrap=True)
        if losses and not yes:
            raise DataLossError(f"not downgraded: {len(losses)} kind(s) of stored records "
                                f"would be lost (above). Export the sites first (`crackwatch "
                                f"export`), then repeat with --yes.")
        now = downgrade(engine, revision, allow_data_loss=True)
        engine.dispose()
    except _store_errors() as exc:
        _fail(exc)
    console.print(f"[green]store at revision {now}[/]"
                  + (" (nothing was lost)" if not losses else ""))


@db_app.command("current")
def db_current(url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """Print the store's schema revision and the newest one shipped."""
    from geodata.store import connect, current_revision, head_revision

    try:
        rev = current_revision(connect(_url(url), must_exist=True))
    except _store_errors() as exc:
        _fail(exc)
    head = head_revision()
    state = "up to date" if rev == head else "run `crackwatch db upgrade`"
    console.print(f"revision {rev or '-'} (newest {head}): {state}")


def export_cmd(
    site: str | None = typer.Option(None, "--site", help="Site name (see `crackwatch site "
                                    "list`)."),
    site_id: int | None = typer.Option(None, "--site-id", help="Site id instead of --site."),
    fmt: str = typer.Option("gpkg", "--format", help="gpkg | geojson | csv"),
    out: Path = typer.Option(..., "--out", help="Output file (GeoJSON/CSV: the cracks file; "
                                                "tracks and surveys are written beside it)."),
    url: str | None = typer.Option(None, help=URL_HELP),
    rfc7946: bool = typer.Option(False, help="GeoJSON: reproject to WGS 84 (RFC 7946) instead "
                                             "of keeping the site CRS."),
    layer: str | None = typer.Option(None, "--layer", help="Only this layer: cracks | tracks "
                                     "| surveys | photo_cracks | not_observable | "
                                     "surface_change_unsupervised, or audit "
                                     "(the audit trail, CSV; of every site unless --site is "
                                     "given)."),
) -> None:
    """Export a site's cracks, tracks and surveys (GeoPackage layers cracks/tracks/surveys),
    or the audit trail (--layer audit --format csv)."""
    from geodata.export import EXPORT_LAYERS, export_audit, export_site
    from geodata.store import connect

    if layer is not None and layer not in EXPORT_LAYERS:
        _fail(ValueError(f"--layer must be one of {', '.join(EXPORT_LAYERS)}, got {layer!r}"))
    if site is not None and site_id is not None or (
            layer != "audit" and site is None and site_id is None):
        _fail(ValueError("give the site as --site NAME or --site-id ID (one of them)"))
    try:
        engine = connect(_url(url), read_only=True)  # it only reads: works on a read-only store
        ref = site_id if site_id is not None else site
        if layer == "audit":
            paths = export_audit(engine, out, fmt, site=ref)
        else:
            paths = export_site(engine, ref, out, fmt, rfc7946=rfc7946, layer=layer)
        engine.dispose()
    except _store_errors() as exc:
        _fail(exc)
    for p in paths:
        console.print(f"[green]wrote[/] {p}")


def bench_store_cmd(
    n: int = typer.Option(100_000, "--n", min=1, help="Crack polygons to insert."),
    per_survey: int = typer.Option(1000, min=1, help="Cracks per survey."),
    url: str | None = typer.Option(None, help="Store to benchmark (a throw-away site is made "
                                              "and deleted); default a temporary SQLite file."),
    keep: bool = typer.Option(False, help="Keep the benchmark site (and temporary file)."),
) -> None:
    """Insert N crack polygons, then fetch one survey's cracks for display (printed figures)."""
    from geodata.store.bench import bench_store

    try:
        r = bench_store(url, n, per_survey=per_survey, keep=keep)
    except _store_errors() as exc:
        _fail(exc)
    t = Table(title=f"crack store benchmark ({r['backend']})")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("cracks inserted", f"{r['n_cracks']} ({r['surveys']} surveys x {r['per_survey']})")
    t.add_row("insert seconds", f"{r['insert_seconds']:.2f}")
    t.add_row("insert rows/s", f"{r['insert_rows_per_s']:.0f}")
    t.add_row("fetch one survey (rows)", str(r["fetch_rows"]))
    t.add_row("fetch frame seconds", f"{r['fetch_frame_seconds']:.3f}")
    t.add_row("fetch GeoJSON (EPSG:4326) seconds", f"{r['fetch_geojson_seconds']:.3f}")
    t.add_row(f"track last {r['track_surveys']} surveys seconds", f"{r['track_seconds']:.3f}")
    t.add_row("mean vertices per polygon", f"{r['mean_vertices']}")
    console.print(t)
    console.print(f"machine: {r['machine']}")
    console.print_json(json.dumps(r))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the store commands to the main ``crackwatch`` app and its ``bench`` group."""
    app.add_typer(db_app, name="db")
    app.command("export")(export_cmd)
    bench_app.command("store")(bench_store_cmd)
