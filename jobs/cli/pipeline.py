"""CLI commands of the monitoring pipeline: sites, surveys, run now, scheduler, demo.

    crackwatch site add NAME --profile slope|structure --crs EPSG:... [--lon --lat]
                             [--inbox DIR] [--tz ZONE] [--schedule CRON] [--model NAME]
    crackwatch site set-model SITE (--model NAME | --profile-default)
    crackwatch site list
    crackwatch survey add PATH --site S [--acquired-at ISO] [--gsd-m M]
    crackwatch survey list --site S
    crackwatch run --site S          process the site's inbox and pending surveys now
    crackwatch scheduler             nightly runs per site (APScheduler), until SIGTERM
    crackwatch demo                  the README's main command
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from jobs.cli.common import (
    SITE_HELP,
    SITE_ID_HELP,
    URL_HELP,
    _fail,
    cli_actor,
    console,
    runtime_choice,
    runtime_option,
)
from jobs.cli.common import notifiers as _notifiers
from jobs.cli.common import open_store as _engine
from jobs.cli.common import site_ref as _site_ref
from jobs.cli.ray import (
    executor_from_cli,
    executor_option,
    ray_address_option,
    ray_workers_option,
)

if TYPE_CHECKING:
    from geodata.store.models import Site

site_app = typer.Typer(help="Monitored sites.", no_args_is_help=True)
survey_app = typer.Typer(help="Surveys (orthomosaics, photo sets).", no_args_is_help=True)

RUN_MODEL_HELP = ("Model for every survey of this run (default: each site's model, `crackwatch "
                  "site set-model`, else the shipped model of its profile).")
TTA_HELP = "Test-time augmentation: average each window over 4 flips (4x the model compute)."


def _options(work_dir: Path | None, device: str, model: str | None, tta: bool = False,
             runtime: str | None = None):
    from jobs.pipeline import PipelineOptions
    from jobs.settings import get_settings

    return PipelineOptions(work_dir=work_dir or get_settings().data_dir / "work",
                           device=device, model_name=model, tta=tta,
                           runtime=runtime_choice(runtime, device))


MODEL_HELP = ("Model for this site's surveys (see `crackwatch models list`); default: the "
              "shipped model of the site's profile.")


@site_app.command("add")
def site_add(
    name: str = typer.Argument(..., help="Unique site name."),
    profile: str = typer.Option(..., help="slope | structure (which alert rules apply)."),
    crs: str = typer.Option(..., help="The site's projected CRS, e.g. EPSG:32633."),
    lon: float | None = typer.Option(None, help="Site marker longitude (WGS 84 degrees)."),
    lat: float | None = typer.Option(None, help="Site marker latitude (WGS 84 degrees)."),
    inbox: Path | None = typer.Option(None, help="Folder watched for new surveys."),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone, e.g. Europe/Oslo."),
    schedule: str = typer.Option("0 2 * * *", help="Cron (site local time); default nightly "
                                 "at 02:00."),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    by: str | None = typer.Option(None, "--by", help="Who adds it, for the audit trail "
                                  "(default: your login name)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Register a site (slope or structure) with its CRS, location, inbox and schedule."""
    from geodata import audit
    from geodata.errors import CRSError, StoreError
    from geodata.store import add_site, session_scope

    engine = _engine(url)
    try:
        with session_scope(engine, write=True) as s:  # the site and its audit entry
            site = add_site(s, name, profile=profile, crs_epsg=crs, lon=lon, lat=lat,
                            timezone=tz, inbox=inbox.resolve() if inbox else None,
                            schedule=schedule, model_name=model,
                            check_model=_check_model if model is not None else None)
            audit.record(s, "site.added", actor=cli_actor(by), site_id=site.id,
                         details={"profile": site.profile, "crs_epsg": site.crs_epsg,
                                  "lon": site.lon, "lat": site.lat, "timezone": site.timezone,
                                  "inbox": site.inbox, "schedule": site.schedule,
                                  "model_name": site.model_name})
    except (CRSError, StoreError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    finally:
        engine.dispose()  # SQLite: the last connection closed checkpoints the WAL
    console.print(f"[green]site[/] {escape(site.name)} (id {site.id}, {site.profile}, "
                  f"EPSG:{site.crs_epsg}, schedule '{escape(site.schedule or '')}' "
                  f"{site.timezone}, model {escape(_model_label(site.profile, site.model_name))})")


def _check_model(name: str) -> None:
    """Refuse a model name that has no card (``crackwatch models list`` lists them)."""
    from engine.registry import find_card

    find_card(name)


def _model_label(profile: str, model_name: str | None,
                 defaults: dict[str, str] | None = None) -> str:
    """A site's model as listings show it: its own, or ``profile default: NAME``."""
    if isinstance(model_name, str) and model_name:
        return model_name
    if defaults is None:
        from engine.profiles import read_profile_models

        defaults = read_profile_models()
    return f"profile default: {defaults.get(profile, '?')}"


@site_app.command("set-model")
def site_set_model(
    site: str | None = typer.Argument(None, help=SITE_HELP),
    site_id: int | None = typer.Option(None, "--site-id", help="Site id instead of SITE."),
    model: str | None = typer.Option(None, help="Model for this site's surveys from now on "
                                     "(see `crackwatch models list`)."),
    profile_default: bool = typer.Option(False, "--profile-default",
                                         help="Use the shipped model of the site's profile "
                                              "(and follow it when it changes)."),
    by: str | None = typer.Option(None, "--by", help="Who changes it, for the audit trail "
                                  "(default: your login name)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Choose the model a site's surveys are processed with; runs done keep their model."""
    from geodata import audit
    from geodata.errors import RecordNotFoundError
    from geodata.store import get_site, session_scope, set_site_model

    if (model is None) == (not profile_default):
        _fail(ValueError("give --model NAME (see `crackwatch models list`) or "
                         "--profile-default (one of them)"))
    engine = _engine(url)
    try:
        with session_scope(engine, write=True) as s:  # the change and its audit entry
            old = get_site(s, _site_ref(site, site_id)).model_name
            row = set_site_model(s, _site_ref(site, site_id), model,
                                 check_model=_check_model if model is not None else None)
            audit.record(s, "site.model_set", actor=cli_actor(by), site_id=row.id,
                         details={"old": old, "new": row.model_name})
    except (RecordNotFoundError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(f"site {row.name} (id {row.id}, {row.profile}): model "
                  f"{_model_label(row.profile, row.model_name)} from its next run; runs done "
                  f"keep theirs (a survey parked after failures: `crackwatch survey retry ID`).",
                  markup=False, soft_wrap=True)


@site_app.command("set-tile-gate")
def site_set_tile_gate(
    site: str | None = typer.Argument(None, help=SITE_HELP),
    site_id: int | None = typer.Option(None, "--site-id", help="Site id instead of SITE."),
    on: bool = typer.Option(False, "--on", help="Run the tile gate on this site's surveys."),
    off: bool = typer.Option(False, "--off", help="Never run it here (e.g. a soil-crack "
                             "slope: the gate was measured on rock fractures only)."),
    rule: bool = typer.Option(False, "--rule", help="Follow the rule of the site's profile "
                              "and model again (the default)."),
    by: str | None = typer.Option(None, "--by", help="Who changes it, for the audit trail "
                                  "(default: your login name)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Turn the crack / no-crack tile gate on or off for a site's surveys from their next run.

    The gate drops candidate cracks on 128-px tiles the tile classifier sees no crack in. By
    rule it runs on slope sites with the slope model; it was measured on rock-face fractures
    and crack-free terrain only, so a soil-crack site can turn it off here. A run's
    ``--tile-gate`` / ``--no-tile-gate`` (``crackwatch infer``) still wins.
    """
    from geodata import audit
    from geodata.errors import RecordNotFoundError
    from geodata.store import get_site, session_scope, set_site_tile_gate

    if on + off + rule != 1:
        _fail(ValueError("give one of --on, --off or --rule"))
    value = True if on else False if off else None
    engine = _engine(url)
    try:
        with session_scope(engine, write=True) as s:  # the change and its audit entry
            old = get_site(s, _site_ref(site, site_id)).tile_gate
            row = set_site_tile_gate(s, _site_ref(site, site_id), value)
            audit.record(s, "site.tile_gate_set", actor=cli_actor(by), site_id=row.id,
                         details={"old": old, "new": value})
            label = _tile_gate_label(row)
    except (RecordNotFoundError, ValueError) as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(f"site {row.name} (id {row.id}, {row.profile}): tile gate {label} from its "
                  f"next run; runs done keep the rules they recorded.", markup=False,
                  soft_wrap=True)


def _tile_gate_label(site: Site) -> str:
    """``on`` / ``off`` (the site's own switch) or what the profile and model's rule gives."""
    if site.tile_gate is not None:
        return "on" if site.tile_gate else "off"
    from types import SimpleNamespace

    from engine.crack_rules import rules_for
    from jobs.site_models import site_model_name

    name = site_model_name(site, SimpleNamespace(model_name=None))[0]
    return f"by rule ({'on' if rules_for(site.profile, name).tile_gate else 'off'} with {name})"


@site_app.command("list")
def site_list(url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """Sites with their current alert level."""
    from geodata.queries import sites_overview

    df = sites_overview(_engine(url, read_only=True))
    if df.empty:
        console.print("No sites yet: `crackwatch site add ...` or `crackwatch demo`.")
        return
    from engine.profiles import read_profile_models

    defaults = read_profile_models()
    df["model"] = [_model_label(p, n, defaults) for p, n in zip(df["profile"], df["model_name"],
                                                                strict=True)]
    t = Table(title="sites")
    cols = [c for c in ("site_id", "name", "profile", "model", "crs_epsg", "alert_level",
                        "open_alerts", "survey_count", "latest_survey_at") if c in df.columns]
    for c in cols:
        t.add_column(c, no_wrap=c in ("name", "profile"))
    for _, r in df.iterrows():
        t.add_row(*[escape(str(r[c])) for c in cols])
    console.print(t)


@survey_app.command("add")
def survey_add(
    path: Path = typer.Argument(..., help="Orthomosaic (GeoTIFF), JPEG, or folder of JPEGs."),
    site: str | None = typer.Option(None, help=SITE_HELP),
    site_id: int | None = typer.Option(None, "--site-id", help=SITE_ID_HELP),
    acquired_at: datetime | None = typer.Option(
        None, help="Acquisition time (ISO 8601 with offset); default EXIF / TIFF time."),
    gsd_m: float | None = typer.Option(None, help="Ground sample distance (m/px) for photos "
                                       "without usable EXIF."),
    registration_error_m: float = typer.Option(0.0, help="Expected misalignment to earlier "
                                               "surveys (m)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Ingest a survey (idempotent: the same file twice is one survey)."""
    from geodata.errors import RecordNotFoundError, StoreError
    from jobs.inbox import ingest

    if acquired_at is not None and acquired_at.tzinfo is None:
        _fail(ValueError("--acquired-at needs a UTC offset, e.g. 2026-06-01T02:00:00+02:00"))
    try:
        sv = ingest(_engine(url), _site_ref(site, site_id), path,
                    acquired_at=acquired_at, pixel_size_m=gsd_m,
                    registration_error_m=registration_error_m)
    except (FileNotFoundError, RecordNotFoundError, StoreError, ValueError) as exc:
        _fail(exc)
    console.print(f"[green]survey[/] {sv.id} of site {escape(str(site or site_id))}: "
                  f"{sv.source_type} {escape(sv.source_path)} acquired "
                  f"{sv.acquired_at.isoformat()} "
                  f"({escape(str(sv.meta.get('acquired_at_source')))})")


@survey_app.command("list")
def survey_list(site: str | None = typer.Option(None, help=SITE_HELP),
                site_id: int | None = typer.Option(None, "--site-id", help=SITE_ID_HELP),
                url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """Surveys of a site: when, pixel size, cracks, state, imagery and model, and why a parked
    survey waits (with the command that retries it). Each survey's model: `crackwatch site
    list`, the dashboard's Runs page."""
    from geodata.errors import RecordNotFoundError
    from geodata.queries import list_surveys

    try:
        df = list_surveys(_engine(url, read_only=True), _site_ref(site, site_id))
    except RecordNotFoundError as exc:
        _fail(exc)
    import pandas as pd

    def has(v: object) -> bool:
        return v is not None and not bool(pd.isna(v))

    rows = []
    for _, r in df.iterrows():
        px = r.get("pixel_size_m")
        name = Path(str(r["source_path"])).name
        simulated = " (SIMULATED)" if r.get("simulated") and "SIMULATED" not in name else ""
        rows.append((
            str(r["survey_id"]),
            f"{r['acquired_at']:%Y-%m-%d %H:%M}" if has(r.get("acquired_at")) else "-",
            (f"{px * 1000:.3g} mm" if px < 0.1 else f"{px:.3g} m") if has(px) else "-",
            str(int(r["crack_count"])) if has(r.get("crack_count")) else "-",
            f"{r['total_length_m']:.3f}" if has(r.get("total_length_m")) else "-",
            escape(str(r.get("state") or "-")),
            escape(f"{r['source_type']}: {name}{simulated}"),
            escape(" ".join(str(x) for x in (r.get("last_error"), r.get("action")) if has(x))),
        ))
    notes = any(row[-1] for row in rows)
    t = Table(title=f"surveys of {escape(str(site or site_id))}")
    for col in ("id", "acquired (UTC)", "pixel", "cracks", "length m", "state"):
        t.add_column(col, no_wrap=True)
    t.add_column("imagery", overflow="fold")
    if notes:
        t.add_column("note", overflow="fold")
    for row in rows:
        t.add_row(*(row if notes else row[:-1]))
    console.print(t)


@survey_app.command("retry")
def survey_retry(survey_id: int = typer.Argument(..., help="Survey id (`survey list`)."),
                 url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """Un-park (or un-skip) a survey: the next run of its site processes it again."""
    from geodata.errors import RecordNotFoundError
    from geodata.store.api import get_site
    from geodata.store.surveys import retry_survey

    try:
        engine = _engine(url)
        sv = retry_survey(engine, survey_id)
    except RecordNotFoundError as exc:
        _fail(exc)
    name = get_site(engine, sv.site_id).name
    console.print(f"survey {sv.id} will be processed by the next run of its site "
                  f"(`crackwatch run --site {name!r}`).", markup=False)


@survey_app.command("skip")
def survey_skip(survey_id: int = typer.Argument(..., help="Survey id (`survey list`)."),
                reason: str = typer.Option("", help="Why (kept with the survey)."),
                url: str | None = typer.Option(None, help=URL_HELP)) -> None:
    """Leave a survey out of every later run (undo with `survey retry ID`)."""
    from geodata.errors import RecordNotFoundError
    from geodata.store.surveys import skip_survey

    try:
        sv = skip_survey(_engine(url), survey_id, reason)
    except RecordNotFoundError as exc:
        _fail(exc)
    console.print(f"survey {sv.id} is skipped by every later run; `crackwatch survey retry "
                  f"{sv.id}` brings it back.", markup=False)


def _print_result(sv, r) -> None:
    colour = "green" if r.status == "succeeded" else "red"
    line = (f"[{colour}]{r.status}[/] survey {sv.id} ({escape(Path(sv.source_path).name)}, "
            f"{sv.acquired_at:%Y-%m-%d}): {r.cracks} cracks, {r.new_tracks} new tracks, "
            f"{len(r.alerts_raised)} alerts raised, {len(r.alerts_escalated)} escalated, "
            f"{r.seconds:.1f} s")
    if r.error:
        line += f" [red]{escape(r.error)}[/]"
    if r.alerts_skipped:
        line += f" [yellow]({escape(r.alerts_skipped)})[/]"
    console.print(line, soft_wrap=True)


def run_cmd(
    site: str | None = typer.Option(None, help=SITE_HELP),
    site_id: int | None = typer.Option(None, "--site-id", help=SITE_ID_HELP),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    model: str | None = typer.Option(None, help=RUN_MODEL_HELP),
    work_dir: Path | None = typer.Option(None, help="Where probability maps go."),
    tta: bool = typer.Option(False, help=TTA_HELP),
    runtime: str | None = runtime_option(),
    wait: float = typer.Option(0.0, "--wait", min=0.0,
                               help="Seconds to wait while another process runs this site "
                                    "(default: refuse at once)."),
    url: str | None = typer.Option(None, help=URL_HELP),
    executor: str | None = executor_option(),
    ray_address: str | None = ray_address_option(),
    ray_workers: int | None = ray_workers_option(),
) -> None:
    """Process the site now: scan its inbox, then every pending survey in date order.

    One run per site at a time: while another process runs the site this refuses (exit 2),
    or waits up to --wait seconds. With --executor ray the surveys' inference runs on Ray
    workers, all at once; they are stored here in date order.
    """
    from geodata.errors import RecordNotFoundError, SiteBusyError
    from jobs.notify import NotifierConfigError
    from jobs.pipeline import run_site

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ex = executor_from_cli(executor, ray_address, ray_workers, _fail)
    try:
        results = run_site(_engine(url), _site_ref(site, site_id),
                           _options(work_dir, device, model, tta, runtime),
                           notifiers=_notifiers(),
                           progress=_print_result, wait_s=wait, executor=ex)
    except (RecordNotFoundError, SiteBusyError, NotifierConfigError) as exc:
        _fail(exc)
    finally:
        if ex is not None:
            ex.close()
    from jobs.pipeline import survey_states

    held = [st for st in survey_states(_engine(url), _site_ref(site, site_id))
            if st.state in ("parked", "waiting")]
    for st in held:
        when = (f"retried after {st.retry_at:%Y-%m-%d %H:%M} UTC" if st.state == "waiting"
                else "left alone until you decide")
        console.print(f"survey {st.survey_id} {st.state} after {st.failures} failure(s), "
                      f"{when}: {st.last_error}. `crackwatch survey retry {st.survey_id}` "
                      f"runs it again, `crackwatch survey skip {st.survey_id}` drops it.",
                      markup=False, soft_wrap=True)
    if not results and not held:
        console.print("Nothing to do: no pending surveys (add one with `crackwatch survey add` "
                      "or drop it in the site's inbox).")
    if any(r.status == "failed" for r in results):
        raise typer.Exit(code=1)


def scheduler_cmd(
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    model: str | None = typer.Option(None, help=RUN_MODEL_HELP),
    work_dir: Path | None = typer.Option(None, help="Where probability maps go."),
    tta: bool = typer.Option(False, help=TTA_HELP),
    runtime: str | None = runtime_option(),
    url: str | None = typer.Option(None, help=URL_HELP),
    executor: str | None = executor_option(),
    ray_address: str | None = ray_address_option(),
    ray_workers: int | None = ray_workers_option(),
) -> None:
    """Run every site on its cron schedule (site time zone) until SIGTERM / Ctrl-C.

    With --executor ray up to four sites run at once, their surveys' inference on the Ray
    workers (deploy/README.md)."""
    from dataclasses import asdict

    from jobs.scheduler import start
    from jobs.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    url = url or get_settings().resolved_database_url()
    _engine(url).dispose()  # schema up to date before the first job
    opts = asdict(_options(work_dir, device, model, tta, runtime))
    opts["work_dir"] = str(opts["work_dir"])
    opts["weights_dir"] = str(opts["weights_dir"]) if opts["weights_dir"] else None
    ex = executor_from_cli(executor, ray_address, ray_workers, _fail, shared=True)
    start(url, opts, executor=None if ex is None else {
        k: v for k, v in asdict(ex.config).items() if k != "ray_init"})


def demo_cmd(
    data_dir: Path | None = typer.Option(None, help="Data folder (default CRACKWATCH_DATA_DIR "
                                         "or ~/.local/share/crackwatch)."),
    url: str | None = typer.Option(None, help=URL_HELP),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
) -> None:
    """Run the demo end to end: five sites, three from real imagery and two SIMULATED."""
    from jobs.demo import run_demo
    from jobs.pipeline import PipelineOptions
    from jobs.settings import get_settings, hide_password

    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    url = url or settings.model_copy(update={"data_dir": data_dir}).resolved_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    console.print(f"CrackWatch demo: store {escape(hide_password(url))}", soft_wrap=True)
    result = run_demo(url, data_dir, options=PipelineOptions(work_dir=data_dir / "work",
                                                             device=device),
                      progress=_print_result)
    if not result.processed:
        console.print("All demo surveys were already processed: nothing changed.")
    t = Table(title="demo sites")
    for c in ("site", "profile", "surveys", "cracks", "tracks", "alerts"):
        t.add_column(c)
    for s in result.sites:
        levels = ", ".join(f"{a['level']} {a['rule']}" + (f" (escalated x{a['escalations']})"
                                                          if a["escalations"] else "")
                           + (f" ({a['state']})" if a.get("state", "open") != "open" else "")
                           for a in s["alerts"]) or "none"
        t.add_row(s["site"], s["profile"], str(s["surveys"]), str(s["cracks"]),
                  str(s["tracks"]), levels)
    console.print(t)
    for s in result.sites:
        for a in s["alerts"]:
            console.print(f"  [bold]{a['level']}[/] {s['site']}: {a['message']}", soft_wrap=True)
        for r in s.get("refused_photos", []):
            console.print(f"  {s['site']}: photo {r['photo']} {r['reason']}", soft_wrap=True,
                          highlight=False, markup=False)
    _print_dashboard_steps(url, settings)
    if any(r.status == "failed" for r in result.processed):
        raise typer.Exit(code=1)


def _print_dashboard_steps(url: str, settings) -> None:
    """What to do after the demo: the first sign-in user (if there is none), the dashboard
    (with ``--url`` when the store is not the default; its password masked)."""
    from sqlalchemy.engine import make_url

    from geodata.users import UsersFileError, list_users
    from jobs.settings import hide_password

    try:
        users = list_users(settings.resolved_users_file())
    except (FileNotFoundError, UsersFileError):
        users = []
    if not users:
        console.print("The dashboard asks for a sign-in; create its first user (an admin) "
                      "with: [bold]crackwatch user add NAME --role admin[/]")
    extra = "" if url == settings.resolved_database_url() else f" --url {hide_password(url)}"
    console.print(f"Open the dashboard: [bold]crackwatch dashboard{escape(extra)}[/]",
                  soft_wrap=True)
    if extra and make_url(url).password:
        console.print("(the password is masked here: type the real URL, or set "
                      "CRACKWATCH_DATABASE_URL in the environment)")


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the main ``crackwatch`` app."""
    app.add_typer(site_app, name="site")
    app.add_typer(survey_app, name="survey")
    app.command("run")(run_cmd)
    app.command("scheduler")(scheduler_cmd)
    app.command("demo")(demo_cmd)
