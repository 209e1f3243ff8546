"""``crackwatch view`` commands: photo views of a site (registered in :mod:`jobs.cli.main`).

Commands:
    crackwatch view list --site S [--url URL]        a site's views: photos, tracks, RMS, scale
    crackwatch view photos --survey N [--url URL]    how each photo of a survey was registered
    crackwatch view set-scale VIEW --gsd-m M         the view's scale (m per reference pixel),
                                                     e.g. from a ruler in its reference photo
    crackwatch view register-pairs FOLDER [--json]   register consecutive photos of a folder
                                                     (and optional --pair A B) and print the
                                                     inliers and RMS error per pair

See :mod:`geodata.views` (views, registration rules) and :mod:`geodata.registration`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli.common import URL_HELP, _fail, site_ref

__all__ = ["register", "view_app"]

view_app = typer.Typer(help="Photo views: the places photo surveys are registered into.",
                       no_args_is_help=True)
console = Console()

def _engine(url: str | None):
    from geodata.store import connect
    from jobs.settings import Settings

    return connect(url or Settings().resolved_database_url(), must_exist=True)


def _errors() -> tuple[type[Exception], ...]:
    from geodata.errors import RecordNotFoundError, StoreError

    return (StoreError, RecordNotFoundError, ValueError, OSError)


def _query(url: str | None, work, *args):
    """``work(engine, *args)`` on the store at ``url`` (default: settings); a store error is
    one ``error:`` line and exit 2."""
    try:
        eng = _engine(url)
        try:
            return work(eng, *args)
        finally:
            eng.dispose()
    except _errors() as exc:
        _fail(exc)


def _num(v: object, fmt: str) -> str:
    import pandas as pd

    if v is None or pd.isna(v):
        return "-"
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if f != f else format(f, fmt)


@view_app.command("list")
def list_cmd(site: str | None = typer.Option(None, help="Site name (crackwatch site list)."),
             site_id: int | None = typer.Option(None, "--site-id",
                                                help="Site id instead of --site."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON."),
             url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """A site's photo views: photos, surveys, crack tracks, registration RMS and scale."""
    from geodata.views import site_views

    ref = site_ref(site, site_id)
    frame = _query(url, site_views, ref)
    if as_json:
        print(frame.to_json(orient="records", date_format="iso", indent=1))
        return
    if frame.empty:
        console.print(f"site {site_id if site is None else site!r} has no photo views yet: "
                      f"they are made when its photo surveys are processed")
        return
    t = Table(title=f"photo views of site {site_id if site is None else site}")
    for col in ("view", "name", "photos", "surveys", "tracks", "median RMS px", "mm/px",
                "on map"):
        t.add_column(col, overflow="fold")
    for r in frame.itertuples():
        t.add_row(str(r.view_id), r.name, str(r.photos), str(r.surveys), str(r.tracks),
                  _num(r.median_rms_px, ".2f"), _num(r.scale_mm_per_px, ".3f"),
                  f"+/- {r.position_error_m:g} m" if r.on_map else "no")
    console.print(t)
    for r in frame.itertuples():
        console.print(f"view {r.view_id}: reference photo {r.reference_image}; scale: "
                      f"{r.scale_source or 'none (crackwatch view set-scale)'}",
                      soft_wrap=True, highlight=False)


@view_app.command("photos")
def photos_cmd(survey: int = typer.Option(..., help="Survey id."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON."),
               url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """How each photo of a photo survey was registered (status, view, inliers, RMS, GSD)."""
    from geodata.views import survey_registrations

    frame = _query(url, survey_registrations, survey)
    if as_json:
        print(frame.to_json(orient="records", indent=1))
        return
    if frame.empty:
        console.print(f"survey {survey} has no registered photos (not a processed photo "
                      f"survey)")
        return
    t = Table(title=f"photos of survey {survey}")
    for col in ("photo", "status", "view", "inliers", "RMS px", "GSD mm/px"):
        t.add_column(col, overflow="fold")
    for r in frame.itertuples():
        t.add_row(r.image_name, r.status, _num(r.view_id, ".0f"), _num(r.inliers, ".0f"),
                  _num(r.rms_px, ".2f"), _num(r.gsd_mm_per_px, ".3f"))
    console.print(t)
    for r in frame.itertuples():
        console.print(f"{r.image_name}: {r.reason}", soft_wrap=True, highlight=False,
                      markup=False)


@view_app.command("set-scale")
def set_scale_cmd(
    view: int = typer.Argument(..., help="View id (crackwatch view list)."),
    gsd_m: float | None = typer.Option(None, "--gsd-m",
                                       help="Metres per reference-photo pixel (0.25 mm/px = "
                                            "0.00025)."),
    clear: bool = typer.Option(False, help="Clear the view's scale (unknown until set "
                               "again; photos then use --gsd-m or their EXIF/XMP)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Set a view's scale (m per pixel of its reference photo); it wins over every other
    GSD of the view's photos from the next run of their surveys on."""
    from geodata.views import set_view_scale

    if (gsd_m is None) == (not clear):
        _fail(ValueError("give --gsd-m M (metres per pixel) or --clear"))
    v = _query(url, set_view_scale, view, None if clear else gsd_m)
    if clear:
        console.print(f"view {v.id} ({v.name}): scale cleared")
    else:
        console.print(f"view {v.id} ({v.name}): {v.scale_m_per_px * 1000:g} mm per pixel of "
                      f"its reference photo {v.reference_image}; re-run its surveys "
                      f"(crackwatch survey retry ID) to measure with it")


@view_app.command("register-pairs")
def register_pairs_cmd(
    folder: Path = typer.Argument(..., exists=True, file_okay=False,
                                  help="Folder of photos, registered in file-name order."),
    pair: list[str] | None = typer.Option(None, help="Also register these two photos "
                                          "(file names), e.g. --pair A.JPG --pair B.JPG; "
                                          "repeat for more pairs (taken two by two)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register each photo of a folder to the next one (and any --pair), as the pipeline
    registers a photo into a view; print matches, inliers, RMS error (px) and the verdict."""
    from geodata.photos import PHOTO_SUFFIXES
    from geodata.registration import DEFAULT_PARAMS, register_pair
    from geodata.views import cached_features

    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES
                   and not p.name.startswith("."))
    if len(names) < 2:
        _fail(ValueError(f"{folder} holds {len(names)} JPEG photo(s); need at least 2"))
    pairs = [(a, b) for a, b in zip(names, names[1:], strict=False)]
    extra = list(pair or [])
    if len(extra) % 2:
        _fail(ValueError("--pair takes photos two by two: give an even number"))
    pairs += [(extra[i], extra[i + 1]) for i in range(0, len(extra), 2)]
    rows = []
    t0 = time.perf_counter()
    for a, b in pairs:
        try:
            fa = cached_features(folder / a, DEFAULT_PARAMS)
            fb = cached_features(folder / b, DEFAULT_PARAMS)
        except OSError as exc:
            rows.append({"photo": a, "reference": b, "accepted": False, "reason": str(exc)})
            continue
        r = register_pair(fa, fb)
        rows.append({"photo": a, "reference": b, **r.summary()})
    consecutive = rows[:len(names) - 1]
    ok = [r for r in consecutive if r["accepted"] and (r["rms_px"] or 0) <= 2.0]
    summary = {"folder": str(folder), "consecutive_pairs": len(consecutive),
               "consecutive_registered": len(ok),
               "consecutive_registered_fraction": round(len(ok) / len(consecutive), 4),
               "max_rms_px": max((r["rms_px"] for r in ok), default=None),
               "seconds": round(time.perf_counter() - t0, 1), "pairs": rows}
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    t = Table(title=f"registration of {folder}")
    for col in ("photo", "reference", "ok", "matches", "inliers", "RMS px", "overlap"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["photo"], r["reference"], "yes" if r["accepted"] else "no",
                  str(r.get("matches", "-")), str(r.get("inliers", "-")),
                  _num(r.get("rms_px"), ".2f"), _num(r.get("overlap"), ".2f"))
    console.print(t)
    for r in rows:
        if not r["accepted"]:
            console.print(f"{r['photo']} -> {r['reference']}: {r['reason']}", soft_wrap=True,
                          highlight=False, markup=False)
    console.print(f"consecutive pairs registered: {len(ok)} of {len(consecutive)}; "
                  f"{summary['seconds']} s")


def register(app: typer.Typer) -> None:
    """Add the ``view`` command group to the main ``crackwatch`` app."""
    app.add_typer(view_app, name="view")
