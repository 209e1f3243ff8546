"""``crackwatch demo``: four sites from real imagery, run through the whole pipeline.

Sites (sample files ship in ``jobs/demo_data/`` with their licenses beside them):

* **UAV75 bridge** (``structure``): three real UAV75 drone photos of a concrete bridge
  (Benz et al. 2019, GPL-3.0). They carry no GPS and no usable camera data, so the ground
  sample distance is *given* (:data:`UAV75_ASSUMED_GSD_M`, an assumption for thin 1-5 px
  cracks, recorded in the survey metadata) and the site's marker position is *assigned*.
* **Mt Agung slope** (``slope``): one real DJI nadir photo with real EXIF GPS (CC-BY-4.0).
  Its EXIF has no height above ground, so the GSD uses an *assumed* flight height
  (:data:`AGUNG_ASSUMED_HEIGHT_M`, recorded). No labelled slope-crack data exists here:
  whatever the model marks on this vegetated slope is not a measured accuracy.
* **WebODM park** (``structure``): the real WebODM test orthophoto (EPSG:32615, 0.5 m
  pixels, AGPL-3.0), run as an orthomosaic survey.
* **SIMULATED growth** (``slope``): one real UAV75 crack image; the earlier "surveys" have
  part of the crack removed by inpainting (scikit-image biharmonic inpainting over the
  labelled crack, dilated), so the crack appears to grow night by night. The site runs the
  structure (concrete) model, not the slope profile's: the crack is a concrete one. The
  GeoTIFFs get an *assigned* geotransform (:data:`GROWTH_GSD_M` per pixel, EPSG:32632).
  Every file and survey of this site says "SIMULATED" in its name and ``{"simulated": true}`` in its
  metadata: it is a demonstration of tracking and alerting, not a recorded crack.

Running the demo twice changes nothing: sites are created once, surveys are ingested by
SHA-256 (the simulated files are generated deterministically) and only surveys without a
succeeded run are processed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
UAV75_ASSUMED_GSD_M = 0.00025  # 0.25 mm/px: an assumption, UAV75 publishes no GSD
AGUNG_ASSUMED_HEIGHT_M = 100.0  # assumed height above ground; the EXIF has none
GROWTH_GSD_M = 0.002  # 2 mm/px, assigned
GROWTH_EPSG = 32632
GROWTH_ORIGIN = (650_000.0, 5_650_000.0)  # assigned upper-left corner, EPSG:32632 metres
#: Fraction of the crack (along its main axis) visible in each simulated survey.
GROWTH_FRACTIONS = (0.40, 0.48, 0.58, 0.72, 0.92)
GROWTH_START = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
GROWTH_SOURCE_STEM = "DSC00555b"


@dataclass
class DemoSite:
    name: str
    profile: str
    crs_epsg: int
    lon: float
    lat: float
    timezone: str
    surveys: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    #: The site's own model (``None``: its profile's model).
    model: str | None = None


# ---------------------------------------------------------------------- simulated growth


def _crack_order(mask: np.ndarray) -> np.ndarray:
    """Position of every crack pixel along the crack's principal axis, scaled to 0..1."""
    rows, cols = np.nonzero(mask)
    pts = np.stack([rows, cols], 1).astype(float)
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    t = centred @ vt[0]
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    order = np.full(mask.shape, np.nan)
    order[rows, cols] = t
    return order


def make_simulated_growth(
    image_path: Path, mask_path: Path, out_dir: Path, *,
    fractions: tuple[float, ...] = GROWTH_FRACTIONS, start: datetime = GROWTH_START,
    gsd_m: float = GROWTH_GSD_M, epsg: int = GROWTH_EPSG,
    origin: tuple[float, float] = GROWTH_ORIGIN,
) -> list[tuple[Path, datetime]]:
    """Write a SIMULATED crack-growth sequence: one GeoTIFF per night.

    Survey k shows the part of the labelled crack whose position along the crack's main
    axis is at most ``fractions[k]``; the rest of the crack (mask dilated by 3 px) is
    removed with biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``). The
    GeoTIFFs (RGB uint8, DEFLATE) get an ASSIGNED north-up geotransform (``gsd_m`` metres
    per pixel, upper-left corner ``origin`` in EPSG:``epsg``), ``TIFFTAG_DATETIME`` of the
    simulated night, and tags ``CRACKWATCH_SIMULATED=yes`` and a description.

    Deterministic: the same inputs give byte-identical files (so ingest stays idempotent).
    Existing files are kept.

    Returns:
        ``[(path, acquired_at), ...]`` oldest first.
    """
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin
    from scipy import ndimage
    from skimage.restoration import inpaint_biharmonic

    out_dir.mkdir(parents=True, exist_ok=True)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    order = _crack_order(mask)
    transform = from_origin(origin[0], origin[1], gsd_m, gsd_m)
    src_sha = hashlib.sha256(image_path.read_bytes()).hexdigest()[:12]
    made = []
    for k, frac in enumerate(fractions):
        when = start + timedelta(days=k)
        path = out_dir / f"SIMULATED_growth_{when:%Y%m%d}_{image_path.stem}.tif"
        made.append((path, when))
        if path.exists():
            continue
        hide = mask & ~(order <= frac)
        region = ndimage.binary_dilation(hide, iterations=3) & ~ndimage.binary_dilation(
            mask & (order <= frac), iterations=1)
        if region.any():
            filled = inpaint_biharmonic(image.astype(float) / 255.0, region, channel_axis=-1)
            out = np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
        else:
            out = image.copy()
        tmp = path.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", driver="GTiff", width=out.shape[1], height=out.shape[0],
                           count=3, dtype="uint8", crs=f"EPSG:{epsg}", transform=transform,
                           compress="deflate", tiled=True, blockxsize=256,
                           blockysize=256, photometric="RGB") as dst:
            dst.write(out.transpose(2, 0, 1))
            dst.update_tags(
                TIFFTAG_DATETIME=f"{when:%Y:%m:%d %H:%M:%S}",
                CRACKWATCH_SIMULATED="yes",
                CRACKWATCH_DESCRIPTION=(
                    f"SIMULATED crack growth for a demo: real UAV75 image {image_path.name} "
                    f"(sha256 {src_sha}...) with {100 * (1 - frac):.0f}% of the labelled crack "
                    f"inpainted away; geotransform ASSIGNED ({gsd_m * 1000:g} mm/px, "
                    f"EPSG:{epsg}); not a recorded survey"))
        tmp.replace(path)
    return made


# ------------------------------------------------------------------------------ sites


def demo_sites(work: Path) -> list[DemoSite]:
    """The four demo sites with their surveys (the simulated files are generated here)."""
    import rasterio
    from pyproj import Transformer

    uav = DEMO_DATA / "uav75"
    growth = make_simulated_growth(uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.jpg",
                                   uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.png",
                                   work / "simulated_growth")
    to_wgs = Transformer.from_crs(GROWTH_EPSG, 4326, always_xy=True)
    g_lon, g_lat = to_wgs.transform(GROWTH_ORIGIN[0] + 0.5, GROWTH_ORIGIN[1] - 0.5)
    ortho = DEMO_DATA / "webodm" / "orthophoto.tif"
    with rasterio.open(ortho) as src:
        cx, cy = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
    o_lon, o_lat = Transformer.from_crs(32615, 4326, always_xy=True).transform(cx, cy)
    dji = DEMO_DATA / "agung_dji" / "DJI_20251001132715_0396_D_POOR_SHARPNESS.JPG"
    from geodata.photos import ground_sample_distance_m, read_photo_metadata

    dji_meta = read_photo_metadata(dji)
    dji_gsd = ground_sample_distance_m(dji_meta, altitude_m=AGUNG_ASSUMED_HEIGHT_M)
    return [
        DemoSite("UAV75 bridge (real photos, assigned position)", "structure", 32632,
                 11.3235, 50.9795, "Europe/Berlin", note="real UAV75 photos; GSD given",
                 surveys=[{"path": uav / "photos",
                           "acquired_at": datetime(2019, 9, 4, 12, 0, tzinfo=UTC),
                           "pixel_size_m": UAV75_ASSUMED_GSD_M,
                           "metadata": {"pixel_size_source": "given (assumed 0.25 mm/px; "
                                        "UAV75 publishes no GSD)",
                                        "position_source": "assigned (UAV75 has no GPS)"}}]),
        DemoSite("Mt Agung slope (real DJI photo)", "slope", 32750, dji_meta.lon_deg,
                 dji_meta.lat_deg, "Asia/Makassar", note="real EXIF GPS; height assumed",
                 surveys=[{"path": dji, "pixel_size_m": dji_gsd,
                           "metadata": {"pixel_size_source": (
                               f"EXIF focal length and sensor, ASSUMED height above ground "
                               f"{AGUNG_ASSUMED_HEIGHT_M:g} m (not in the EXIF)")}}]),
        DemoSite("WebODM park (real orthophoto)", "structure", 32615, o_lon, o_lat,
                 "America/Chicago", note="real orthophoto, 0.5 m pixels",
                 surveys=[{"path": ortho}]),
        DemoSite("SIMULATED growth (UAV75 crack, inpainted, assigned geotransform)", "slope",
                 GROWTH_EPSG, g_lon, g_lat, "Europe/Berlin",
                 note="SIMULATED: earlier nights inpainted; assigned geotransform",
                 surveys=[{"path": p, "acquired_at": when,
                           "metadata": {"simulated": True,
                                        "simulation": "UAV75 crack partly inpainted away; "
                                                      "geotransform assigned"}}
                          for p, when in growth],
                 # the imagery is a concrete bridge crack: the structure (concrete) model
                 model=_structure_model()),
    ]


def _structure_model() -> str:
    from engine.profiles import read_profile_models

    return read_profile_models()["structure"]


@dataclass
class DemoResult:
    database_url: str
    sites: list[dict[str, Any]]
    processed: list[Any]


def run_demo(database_url: str, data_dir: Path, *, options: Any = None,
             progress: Any = None) -> DemoResult:
    """Create the demo sites and surveys in the store at ``database_url`` and process them.

    Surveys are processed in acquisition order per site; already processed ones are skipped,
    so a second run changes nothing. Returns what was processed and per-site totals.
    """
    from geodata.store import add_site, connect, upgrade
    from jobs.pipeline import PipelineOptions, ingest, run_site

    data_dir = Path(data_dir)
    upgrade(database_url)
    engine = connect(database_url)
    options = options or PipelineOptions(work_dir=data_dir / "work")
    sites = demo_sites(data_dir / "demo")
    processed = []
    models: dict = {}  # each site runs its profile's model; one load per model, not per site
    for ds in sites:
        add_site(engine, ds.name, profile=ds.profile, crs_epsg=ds.crs_epsg, lon=ds.lon,
                 lat=ds.lat, timezone=ds.timezone, exist_ok=True, model_name=ds.model)
        for sv in ds.surveys:
            ingest(engine, ds.name, sv["path"], acquired_at=sv.get("acquired_at"),
                   pixel_size_m=sv.get("pixel_size_m"), metadata=sv.get("metadata"))
        processed += run_site(engine, ds.name, options, models=models, progress=progress)
    summary = site_totals(engine, [s.name for s in sites])
    engine.dispose()
    return DemoResult(database_url, summary, processed)


def site_totals(engine: Any, names: list[str]) -> list[dict[str, Any]]:
    """Per site: surveys, cracks (current runs), tracks, open alerts with their levels."""
    from sqlalchemy import func, select

    from geodata.store import models as m
    from geodata.store.engine import session_scope

    out = []
    with session_scope(engine) as s:
        for name in names:
            site = s.scalar(select(m.Site).where(m.Site.name == name))
            if site is None:
                continue
            n_surveys = s.scalar(select(func.count()).select_from(m.Survey)
                                 .where(m.Survey.site_id == site.id))
            n_cracks = s.scalar(select(func.count()).select_from(m.Crack)
                                .where(m.Crack.site_id == site.id))
            n_tracks = s.scalar(select(func.count()).select_from(m.CrackTrack)
                                .where(m.CrackTrack.site_id == site.id))
            alerts = s.scalars(select(m.Alert).where(m.Alert.site_id == site.id)
                               .order_by(m.Alert.raised_at)).all()
            out.append({"site": name, "profile": site.profile, "surveys": n_surveys,
                        "cracks": n_cracks, "tracks": n_tracks,
                        "alerts": [{"level": a.level, "rule": a.rule, "message": a.message,
                                    "escalations": len((a.details or {}).get("escalations",
                                                                             [])),
                                    "state": _state(a)}
                                   for a in alerts]})
    return out


def _state(alert: Any) -> str:
    """``open``, ``watch`` (unconfirmed, nobody notified), ``acknowledged`` or ``resolved``
    (with the reason when it was resolved automatically, e.g. ``resolved: not_confirmed``)."""
    if alert.resolved_at is not None:
        reason = (alert.details or {}).get("resolved_reason")
        return f"resolved: {reason}" if reason else "resolved"
    if alert.watch:
        return "watch"
    return "acknowledged" if alert.acknowledged_at is not None else "open"


def to_json(result: DemoResult) -> str:
    return json.dumps({"database_url": result.database_url, "sites": result.sites}, indent=2,
                      default=str)
