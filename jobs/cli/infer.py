"""``crackwatch infer PATH``: an orthomosaic or photos through the survey-inference step
(:mod:`engine.survey`) into a probability COG and a cracks GeoPackage (registered in
:mod:`jobs.cli.main`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from jobs.cli.common import (
    _fail,
    console,
    err_console,
    profile_of,
    runtime_choice,
    runtime_option,
)
from jobs.cli.ray import executor_from_cli, executor_option, ray_address_option, ray_workers_option

__all__ = ["register"]


# long-function: a typer command: half its lines are its options and their help.
def infer_cmd(
    path: Path = typer.Argument(..., help="Orthomosaic (GeoTIFF), a JPEG photo, or a folder "
                                          "of photos."),
    model: str = typer.Option(None, help="Model name (default: the shipped model of --profile, "
                              "else the default shipped model)."),
    out: Path = typer.Option(Path("crackwatch-out"), help="Output folder."),
    tile_size: int = typer.Option(512, min=32, help="Window side, px (multiple of 32)."),
    overlap: int = typer.Option(64, min=0, help="Window overlap, px."),
    batch_size: int | None = typer.Option(None, min=1, help="Windows per forward pass "
                                          "(default 4 on the CPU, 8 on CUDA)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Crack probability threshold."),
    min_area_px: int = typer.Option(20, min=0, help="Drop cracks smaller than this (pixels)."),
    crs: str | None = typer.Option(None, help="CRS for a raster that has none, e.g. EPSG:32633."),
    gsd_m: float | None = typer.Option(None, help="Photos: ground sample distance (m/px); "
                                                  "default from EXIF altitude + camera."),
    altitude_m: float | None = typer.Option(None, help="Photos: camera height above ground, m."),
    dtype: str = typer.Option("uint8", help="Probability COG type: uint8 | float32."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    tta: bool = typer.Option(False, help="Test-time augmentation: average each window over 4 "
                             "flips (4x slower, slightly more accurate)."),
    profile: str | None = typer.Option(None, help="Site profile whose crack rules run after the "
                                       "model (slope: vegetation masked; shape rules), as the "
                                       "nightly job runs them (default: the profile the model "
                                       "serves, else structure)."),
    tile_gate: bool | None = typer.Option(None, "--tile-gate/--no-tile-gate",
                                          help="Drop cracks on 128 px tiles the crack / "
                                          "no-crack tile classifier (rock fractures and "
                                          "terrain) sees no crack in (default: on for slope "
                                          "sites running the slope model)."),
    runtime: str | None = runtime_option(),
    executor: str | None = executor_option(),
    ray_address: str | None = ray_address_option(),
    ray_workers: int | None = ray_workers_option(),
) -> None:
    """Find cracks in an orthomosaic or photos: probability COG + cracks GeoPackage.

    With --executor ray an orthomosaic is split into row bands inferred on the Ray workers
    and stitched into the same probability COG (--out must be a folder the workers reach);
    photos are inferred on the workers, several at once.
    """
    from engine.errors import (
        BandLayoutError,
        CRSError,
        ModelNotFoundError,
        RasterReadError,
        WeightsIntegrityError,
    )
    from engine.registry import DEFAULT_MODEL, PROFILE_MODELS, load_model
    from engine.survey import InferenceSettings
    from geodata.photos import PHOTO_SUFFIXES
    from jobs.ray_pool import ExecutorError

    if not path.exists():
        _fail(FileNotFoundError(f"{path} does not exist; give an orthomosaic, a JPEG or a "
                                f"folder of JPEGs."))
    is_photo = path.is_dir() or path.suffix.lower() in PHOTO_SUFFIXES
    runtime = runtime_choice(runtime, device)
    ex = executor_from_cli(executor, ray_address, ray_workers, _fail)
    try:  # with Ray the model runs on the workers: here it only gives its card
        net = load_model(model or PROFILE_MODELS.get(profile or "", DEFAULT_MODEL),
                         weights_dir=weights_dir,
                         device=device if ex is None else "cpu",
                         runtime=runtime if ex is None else "torch")
    except (ModelNotFoundError, WeightsIntegrityError) as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(InferenceSettings(
        tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device, tta=tta,
        threshold=threshold, min_area_px=min_area_px, tile_gate=tile_gate), net.card["name"],
        profile)
    spec = None if ex is None else ex.model_spec(name=net.card["name"], weights_dir=weights_dir,
                                                  runtime=runtime)
    try:
        if is_photo:
            _infer_photos(path, net, out, settings, gsd_m=gsd_m, altitude_m=altitude_m,
                          predict=None if ex is None else ex.photo_predictor(
                              spec, _jpegs(path), **settings.tiling()))
        else:
            _infer_raster(path, net, out, settings, crs=crs, dtype=dtype,
                          predict=None if ex is None else ex.raster_predictor(spec))
    except (RasterReadError, BandLayoutError, CRSError, ValueError, ModelNotFoundError,
            WeightsIntegrityError) as exc:  # the last two: the tile gate's files
        _fail(exc)
    except ExecutorError as exc:
        _fail(exc)
    finally:
        if ex is not None:
            ex.close()


def _settings(settings, model_name: str, profile: str | None):
    """``settings`` with the crack rules of ``profile`` (default: the one the model serves)
    and of the model, as the nightly job runs them; a bad profile is one error line."""
    try:
        return settings.for_profile(profile_of(model_name, profile), model_name)
    except ValueError as exc:
        _fail(exc)


def _summary_table(title: str, gdf, extra: dict) -> Table:
    t = Table(title=title)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k, v in extra.items():
        t.add_row(k, str(v))
    t.add_row("cracks", str(len(gdf)))
    if len(gdf):
        t.add_row("total length (m)", f"{gdf['length_m'].sum():.3f}")
        t.add_row("longest crack (m)", f"{gdf['length_m'].max():.3f}")
        t.add_row("max width (mm)", f"{gdf['max_width_mm'].max():.1f}")
        t.add_row("total area (m2)", f"{gdf['area_m2'].sum():.4f}")
    return t


def _infer_raster(path: Path, net, out: Path, settings, *, crs, dtype, predict=None) -> None:
    """:func:`engine.survey.infer_orthomosaic` into ``out``. ``predict``: what writes the
    probability COG (default :func:`engine.infer.predict_raster`; ``--executor ray``: row
    bands on Ray workers)."""
    from engine.survey import infer_orthomosaic
    from geodata.vectorise import write_cracks_gpkg

    prob_path = out / f"{path.stem}_probability.tif"
    inf = infer_orthomosaic(path, net, settings, out_path=prob_path, crs=crs, dtype=dtype,
                            predict=predict)
    for message in inf.warnings:
        err_console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)
    gdf, res = inf.cracks, inf.prediction
    gdf["source"] = str(path)
    gdf["model"] = net.card["name"]
    gpkg = out / f"{path.stem}_cracks.gpkg"
    write_cracks_gpkg(gdf, gpkg)
    console.print(_summary_table(f"cracks in {path.name}", gdf, {
        "raster (cols x rows)": f"{res.width} x {res.height}",
        "CRS": res.crs + (f" (reprojected from {res.reprojected_from})"
                          if res.reprojected_from else ""),
        "windows (skipped nodata)": f"{res.windows_total} ({res.windows_skipped})",
        "seconds": f"{res.seconds:.1f}",
        "megapixels/s": f"{res.megapixels_per_s:.3f}",
        "model runtime": "Ray workers" if predict is not None else
        getattr(net, "runtime", "torch"),
        "probability COG": str(prob_path),
        "cracks GeoPackage": str(gpkg),
    }))


def _jpegs(path: Path) -> list[Path]:
    """The JPEGs ``crackwatch infer PATH`` reads, in order (a file, or a folder's)."""
    from geodata.photos import PHOTO_SUFFIXES

    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir()
                  if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith("."))


def _infer_photos(path: Path, net, out: Path, settings, *, gsd_m, altitude_m,
                  predict=None) -> None:
    """Photos: cracks in image coordinates (pixels, y down) measured with each photo's GSD,
    plus a ``photos`` layer with nadir footprints in the UTM zone of the first located photo
    (:func:`engine.survey.infer_photos`).

    ``predict``: ``predict(photo_path, rgb) -> probability`` instead of
    :func:`engine.infer.predict_image` (``--executor ray``: on the workers)."""
    import geopandas as gpd
    import pandas as pd

    from engine.survey import infer_photos
    from geodata.vectorise import CRACK_COLUMNS, empty_crack_frame, write_cracks_gpkg

    inf = infer_photos(path, net, settings, gsd_m=gsd_m, altitude_m=altitude_m,
                       predict=predict)
    done = [p for p in inf.photos if not p.failed_at]
    if done:
        cracks = pd.concat([p.cracks for p in done], ignore_index=True)
    else:
        cracks = empty_crack_frame(None)
        cracks["photo"] = pd.Series(dtype=str)
    stem = path.stem if path.is_file() else path.name
    gpkg = out / f"{stem}_cracks.gpkg"
    write_cracks_gpkg(cracks, gpkg, layer="cracks")
    if done:
        photos = gpd.GeoDataFrame([_photo_row(p) for p in done], geometry="geometry",
                                  crs=inf.footprint_crs)
        photos.to_file(gpkg, layer="photos", driver="GPKG", engine="pyogrio")
    failures = [(p.path, _failure(p)) for p in inf.photos if p.failed_at or p.footprint_error]
    crs = inf.footprint_crs
    console.print(_summary_table(f"cracks in {len(done)} photo(s) of {path.name}", cracks, {
        "photos processed": len(done),
        "photos failed": len(failures),
        "coordinates": "image pixels (x right, y down); footprints in "
                       + (crs.to_string() if crs is not None else "- (no GPS)"),
        "cracks GeoPackage": str(gpkg),
    }))
    assert set(CRACK_COLUMNS) <= set(cracks.columns)
    for p, reason in failures:
        err_console.print(f"[yellow]skipped[/] {p}: {reason}", soft_wrap=True)
    if not done:
        raise typer.Exit(code=1)


def _failure(photo) -> str:
    """Why ``photo`` is listed as skipped (a failure, or a photo without footprint)."""
    if photo.failed_at == "pixels":
        return f"cannot decode the image: {photo.problem}"
    if photo.failed_at:
        return photo.problem
    return f"no footprint: {photo.footprint_error}"


def _photo_row(photo) -> dict:
    """A photo's row of the GeoPackage's ``photos`` layer (its footprint as geometry)."""
    meta, cracks = photo.meta, photo.cracks
    return {
        "photo": photo.name, "path": str(meta.path), "acquired_at": str(meta.acquired_at or ""),
        "lon_deg": meta.lon_deg, "lat_deg": meta.lat_deg, "gsd_m": photo.gsd_m,
        "location_source": meta.location_source, "cracks": len(cracks),
        "total_length_m": float(cracks["length_m"].sum()) if len(cracks) else 0.0,
        "warnings": "; ".join(meta.warnings), "geometry": photo.footprint,
    }


def register(app: typer.Typer) -> None:
    """Add ``infer`` to the main ``crackwatch`` app."""
    app.command("infer")(infer_cmd)
