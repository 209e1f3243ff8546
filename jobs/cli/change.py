"""``crackwatch site baseline``: the per-site unsupervised "surface change" layer (issue 29,
:mod:`jobs.site_baseline`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from jobs.cli.common import SITE_HELP, URL_HELP, _fail, console
from jobs.cli.common import open_store as _engine
from jobs.cli.pipeline import site_app


@site_app.command("baseline")
def site_baseline(
    site: str = typer.Argument(..., help=SITE_HELP),
    survey: list[int] | None = typer.Option(
        None, "--survey", help="Baseline survey id, repeatable (default: the site's first "
        "survey). Orthomosaic surveys only."),
    work_dir: Path | None = typer.Option(None, help="Where the feature file and the layers go "
                                         "(default: the pipeline's, <data dir>/work)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Fit the site's baseline for "surface change (unsupervised)" and compute the layer of
    every later orthomosaic survey; later surveys get theirs when they are processed.

    The layer marks ground that no longer looks like the baseline's ground at the same place
    (PatchCore features of the ImageNet EfficientNet-Lite0, engine.site_change). It is not a
    crack map and never sets alert levels."""
    from geodata.errors import RecordNotFoundError, StoreError
    from jobs.settings import get_settings
    from jobs.site_baseline import SiteBaselineError, fit_site_baseline

    engine = _engine(url)
    try:
        r = fit_site_baseline(engine, site, work_dir or get_settings().data_dir / "work", survey,
                              progress=lambda m: console.print(m, style="dim", markup=False))
    except (RecordNotFoundError, StoreError, SiteBaselineError, ValueError) as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(f"baseline {r['baseline_id']} of site {site} on survey(s) "
                  f"{', '.join(map(str, r['surveys']))}; threshold {r['threshold']:.2f} "
                  f"({r['threshold_rule']})", markup=False)
    t = Table(title="surface change (unsupervised) of later surveys")
    for col in ("survey", "compared m2", "changed m2", "changed %", "polygons", "raster"):
        t.add_column(col, justify="left" if col == "raster" else "right")
    for lay in r["layers"]:
        if lay:
            t.add_row(str(lay["survey_id"]), f"{lay['compared_m2']:.2f}",
                      f"{lay['changed_m2']:.3f}", f"{lay['changed_pct']:.3f}",
                      str(lay["polygons"]), lay["raster"])
    console.print(t if r["layers"] else "no later orthomosaic survey yet: each gets its layer "
                  "when it is processed.")


def register(app: typer.Typer) -> None:  # noqa: ARG001 - the command lives on site_app
    """Import-time registration (``site baseline`` is added to ``site_app``)."""
