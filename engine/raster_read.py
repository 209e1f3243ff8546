"""Reading an orthomosaic for tiled inference: opening it with clear errors
(:func:`open_raster`, :func:`check_readable`), which bands are RGB (:func:`select_rgb_bands`),
how non-8-bit data becomes uint8 (:func:`stretch_limits`, :func:`to_uint8`), and the CRS it is
predicted in (:func:`source_crs`; a geographic raster is read through a warped VRT in its UTM
zone, :func:`projected_reader`). The rules are those of :mod:`engine.infer`'s docstring.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from engine.errors import BandLayoutError, CRSError, RasterReadError, RasterRefusedError
from geodata.crs import utm_crs_for

log = logging.getLogger(__name__)

__all__ = ["STRETCH_PERCENTILES", "SUPPORTED_DTYPES", "SURVEY_RASTER_DRIVERS",
           "StripedRasterWarning", "check_readable", "open_raster", "open_survey_raster",
           "projected_reader", "select_rgb_bands", "source_crs", "stretch_limits", "to_uint8"]

STRETCH_PERCENTILES = (2.0, 98.0)
SUPPORTED_DTYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}


class StripedRasterWarning(UserWarning):
    """The input GeoTIFF is striped, not tiled: windowed reads are slow on large files."""


def select_rgb_bands(colorinterp: tuple, count: int) -> tuple[tuple[int, int, int], str]:
    """1-based band indexes to read as (R, G, B) and a note saying which rule applied.

    Raises:
        BandLayoutError: the raster has no bands.
    """
    from rasterio.enums import ColorInterp

    if count < 1:
        raise BandLayoutError("The raster has no bands; export the orthomosaic as RGB(A).")
    ci = list(colorinterp)
    rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    if all(c in ci for c in rgb):
        return tuple(ci.index(c) + 1 for c in rgb), "RGB bands by colour interpretation"
    colour = [k + 1 for k, c in enumerate(ci) if c != ColorInterp.alpha]
    if len(colour) >= 3:
        return (colour[0], colour[1], colour[2]), (
            f"no RGB colour interpretation: bands {colour[:3]} used as R, G, B"
        )
    if len(colour) >= 1:
        return (colour[0],) * 3, f"single band {colour[0]} replicated to grey RGB"
    raise BandLayoutError(
        f"All {count} bands are alpha; there is no image band. Export the orthomosaic as RGB(A)."
    )


def stretch_limits(src, bands: tuple[int, int, int]) -> np.ndarray | None:
    """Per-band (low, high) of the 2-98 % stretch for non-8-bit rasters, shape (3, 2); None
    for uint8. Computed from a decimated read (<= 1024 px long side) over valid pixels."""
    if src.dtypes[bands[0] - 1] == "uint8":
        return None
    scale = max(1.0, max(src.height, src.width) / 1024)
    shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale)))
    data = src.read(list(bands), out_shape=(3, *shape)).astype(np.float64)
    valid = src.dataset_mask(out_shape=shape) > 0
    limits = np.zeros((3, 2))
    for b in range(3):
        v = data[b][valid & np.isfinite(data[b])]
        if v.size == 0:
            limits[b] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(v, STRETCH_PERCENTILES)
        limits[b] = (lo, hi if hi > lo else lo + 1.0)
    return limits


def to_uint8(data: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """``(3, rows, cols)`` raster values -> uint8 using the stretch ``limits`` (None: as is)."""
    if limits is None:
        return data.astype(np.uint8, copy=False)
    x = data.astype(np.float32)
    lo = limits[:, 0, None, None].astype(np.float32)
    hi = limits[:, 1, None, None].astype(np.float32)
    x = (x - lo) * (255.0 / (hi - lo))
    return np.nan_to_num(np.clip(x, 0, 255), nan=0).astype(np.uint8)


#: File suffix -> the one GDAL driver a survey raster with that suffix is opened with. An
#: orthomosaic is data, never a reference: a VRT (or a VRT renamed ``.tif``/``.img``) can
#: point GDAL at any file on the machine or at ``/vsicurl/`` URLs, and HFA (``.img``) can
#: name an external spill file, so neither is opened (issue 30). GDAL identifies a file by
#: its content, so each open names its driver (``allowed_drivers``), whatever the suffix says.
SURVEY_RASTER_DRIVERS = {".tif": "GTiff", ".tiff": "GTiff", ".jp2": "JP2OpenJPEG"}


def open_survey_raster(path: str | Path):
    """Open the survey raster ``path`` (a local GeoTIFF or JPEG 2000 file, see
    :data:`SURVEY_RASTER_DRIVERS`) with rasterio, only with the driver its suffix names, and
    refuse a declared size over :func:`geodata.plausibility.max_raster_pixels`. The caller
    closes it.

    Raises:
        RasterRefusedError: another format (VRT, HFA, ...: the message says which formats
            are read) or too many pixels.
        RasterReadError: missing file, or not readable by its driver.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    from geodata.plausibility import ImplausibleMetadata, check_raster_size

    path = Path(path)
    if not path.is_file():
        raise RasterReadError(f"Raster {path} does not exist; check the path.")
    driver = SURVEY_RASTER_DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise RasterRefusedError(
            f"{path.name}: {path.suffix or 'no suffix'} is not a survey raster format; give a "
            f"GeoTIFF (.tif, .tiff) or JPEG 2000 (.jp2) orthomosaic. A VRT is refused: it can "
            f"make GDAL read other files or URLs (convert it: gdal_translate -of COG in.vrt "
            f"out.tif).")
    try:
        src = rasterio.open(path, driver=driver)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"{path} is not a readable raster for the {driver} driver ({exc}). Give a GeoTIFF "
            f"or JPEG 2000 orthomosaic (a VRT renamed .tif is refused); if it was copied, "
            f"check it is complete."
        ) from exc
    try:
        check_raster_size(src.width, src.height, path.name)
    except ImplausibleMetadata as exc:
        src.close()
        raise RasterRefusedError(str(exc)) from exc
    return src


def open_raster(path: str | Path):
    """Open ``path`` (:func:`open_survey_raster`), refusing a zero-size raster too.

    Raises:
        RasterReadError: missing file, not a survey raster format, not a raster, truncated,
            zero-size or too large.
    """
    path = Path(path)
    src = open_survey_raster(path)
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise RasterReadError(f"{path} has zero size ({src.width}x{src.height}, "
                              f"{src.count} bands); re-export the orthomosaic.")
    return src


def check_readable(src, path: Path) -> None:
    """Read the last block so that a truncated file fails now, not halfway through."""
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    try:
        src.read(1, window=Window(max(0, src.width - 1), max(0, src.height - 1), 1, 1))
    except (RasterioIOError, OSError) as exc:
        raise RasterReadError(
            f"{path} is truncated or corrupt: reading its last pixels failed ({exc}). Copy the "
            f"file again or re-export it."
        ) from exc


def source_crs(src, path: Path, crs: str | None, notes: list[str]):
    """The CRS ``src`` is predicted in: its own, else ``crs`` (noted in ``notes``). Also
    refuses unsupported band types and warns (:class:`StripedRasterWarning`, noted too) when
    the GeoTIFF is striped.

    Raises:
        BandLayoutError: an unsupported band type (complex).
        CRSError: no CRS and none given, ``crs`` unreadable, or no geotransform.
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError as RioCRSError

    bad = [d for d in src.dtypes if d not in SUPPORTED_DTYPES]
    if bad:
        raise BandLayoutError(
            f"{path} has band type(s) {sorted(set(bad))}; supported: "
            f"{sorted(SUPPORTED_DTYPES)}. Convert it with gdal_translate -ot Byte/UInt16.")
    src_crs = src.crs
    if src_crs is None:
        if crs is None:
            raise CRSError(
                f"{path} has no CRS, so its cracks cannot be placed or measured. If you "
                f"know it, pass it (--crs EPSG:XXXX); otherwise georeference the "
                f"orthomosaic in the photogrammetry software and export it again."
            )
        try:
            src_crs = CRS.from_user_input(crs)
        except RioCRSError as exc:
            raise CRSError(f"Cannot parse CRS {crs!r}: {exc}. Use e.g. EPSG:32633.") \
                from exc
        if src.transform.is_identity:
            raise CRSError(f"{path} has no geotransform, so a CRS alone cannot place "
                           f"it; georeference the raster first.")
        notes.append(f"raster has no CRS; user-given CRS {src_crs.to_string()} assumed")
    bh0, bw0 = src.block_shapes[0]
    if not src.profile.get("tiled", False) and bw0 == src.width and bh0 < src.height:
        msg = (f"{path.name} is a striped (untiled) GeoTIFF; windowed reads re-read whole "
               f"strips and are slow on large files. Convert it once with "
               f"`gdal_translate -of COG {path.name} {path.stem}_cog.tif`.")
        warnings.warn(msg, StripedRasterWarning, stacklevel=3)
        notes.append(msg)
    return src_crs


def projected_reader(src, src_crs, target_crs: str | None, path: Path, notes: list[str]):
    """``(reader, out_crs, reprojected_from)``: ``src`` itself in a projected CRS; for a
    geographic one a bilinear :class:`rasterio.vrt.WarpedVRT` (the caller closes it) into
    ``target_crs``, default the UTM zone of the raster's centre (logged and noted).

    Raises:
        CRSError: ``target_crs`` is geographic.
    """
    if not src_crs.is_geographic:
        return src, src_crs, None
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    if target_crs:
        dst_crs = CRS.from_user_input(target_crs)
    else:
        from rasterio.warp import transform_bounds
        w, s, e, n = transform_bounds(src_crs, "EPSG:4326", *src.bounds)
        dst_crs = CRS.from_epsg(utm_crs_for((w + e) / 2, (s + n) / 2).to_epsg())
    if dst_crs.is_geographic:
        raise CRSError(f"target CRS {dst_crs} is geographic; give a projected CRS "
                       f"in metres.")
    has_mask = src.nodata is not None or any(c.name == "alpha" for c in src.colorinterp)
    vrt = WarpedVRT(src, src_crs=src_crs, crs=dst_crs, resampling=Resampling.bilinear,
                    add_alpha=not has_mask)
    reprojected_from = src_crs.to_string()
    msg = (f"{path.name} is in geographic CRS {reprojected_from} (degrees); "
           f"reprojected to {dst_crs.to_string()} (bilinear) to measure in metres")
    log.warning(msg)
    notes.append(msg)
    return vrt, dst_crs, reprojected_from
