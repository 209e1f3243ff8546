"""``crackwatch demo``: six sites from real imagery, run through the whole pipeline.

Sites (sample files ship in ``jobs/demo_data/`` with their licenses beside them):

* **UAV75 bridge** (``structure``): three real UAV75 drone photos of a concrete bridge
  (Benz et al. 2019, GPL-3.0). They carry no GPS and no usable camera data, so the ground
  sample distance is *given* (:data:`UAV75_ASSUMED_GSD_M`, an assumption for thin 1-5 px
  cracks, recorded in the survey metadata) and the site's marker position is *assigned*.
* **Mt Agung slope** (``slope``): one real DJI nadir photo with real EXIF GPS (CC-BY-4.0).
  Its EXIF has no height above ground, so the GSD uses an *assumed* flight height
  (:data:`AGUNG_ASSUMED_HEIGHT_M`, recorded). No labelled slope-crack data exists here:
  whatever the model marks on this vegetated slope is not a measured accuracy.
* **Rock cut** (``slope``): four real rock-face photos with labelled fractures (the first
  four of the rockfracture test split by name, AGPL-3.0), run through the slope profile's
  pipeline: what the slope model finds, next to the Mt Agung photo where it must find
  nothing. No EXIF: the GSD is *assumed* (:data:`ROCKCUT_ASSUMED_GSD_M`) and the position
  *assigned*, both recorded.
* **WebODM park** (``structure``): the real WebODM test orthophoto (EPSG:32615, 0.5 m
  pixels, AGPL-3.0), run as an orthomosaic survey.
* **SIMULATED growth** (``slope``): one real UAV75 crack image; the earlier "surveys" have
  part of the crack removed by inpainting (scikit-image biharmonic inpainting over the
  labelled crack, dilated), so the crack appears to grow night by night. The site runs the
  structure (concrete) model, not the slope profile's: the crack is a concrete one. The
  GeoTIFFs get an *assigned* geotransform (:data:`GROWTH_GSD_M` per pixel, EPSG:32632).
  Every file and survey of this site says "SIMULATED" in its name and ``{"simulated": true}`` in its
  metadata: it is a demonstration of tracking and alerting, not a recorded crack.
* **SIMULATED photo inspections** (``structure``): four monthly photo inspections of two
  places, built from real UAV75 photos: the growth crack (grown by the same inpainting) and
  a second, unchanged place, each re-projected through a known perspective warp with an
  exposure change (:func:`make_simulated_inspections`); one inspection also holds a black
  lens-cap frame. The photos are registered into per-place views and their cracks tracked
  per view (:mod:`geodata.views`). The first inspection is given an ASSIGNED GSD; later
  ones take it from their view. Named and marked SIMULATED like the growth site.

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
import shapely

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
UAV75_ASSUMED_GSD_M = 0.00025  # 0.25 mm/px: an assumption, UAV75 publishes no GSD
AGUNG_ASSUMED_HEIGHT_M = 100.0  # assumed height above ground; the EXIF has none
#: 2.5 mm/px: an assumption (a 400 px photo of about 1 m of rock face); the photos have no EXIF.
ROCKCUT_ASSUMED_GSD_M = 0.0025
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
    #: Fit a site baseline (the unsupervised "surface change" layer) on the first survey.
    baseline: bool = False


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


def _grown(image: np.ndarray, mask: np.ndarray, order: np.ndarray, frac: float) -> np.ndarray:
    """``image`` (RGB uint8) with the labelled crack beyond ``frac`` of its main axis
    removed: the hidden part (dilated by 3 px, minus the kept part dilated by 1 px) filled
    by biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``)."""
    from scipy import ndimage
    from skimage.restoration import inpaint_biharmonic

    hide = mask & ~(order <= frac)
    region = ndimage.binary_dilation(hide, iterations=3) & ~ndimage.binary_dilation(
        mask & (order <= frac), iterations=1)
    if not region.any():
        return image.copy()
    filled = inpaint_biharmonic(image.astype(float) / 255.0, region, channel_axis=-1)
    return np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)


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
        out = _grown(image, mask, order, frac)
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


# ------------------------------------------------------- simulated repeat photo inspections

#: Fraction of the labelled crack visible at each SIMULATED photo inspection.
INSPECTION_FRACTIONS = (0.45, 0.60, 0.75, 0.92)
INSPECTION_START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
INSPECTION_EVERY = timedelta(days=28)
INSPECTION_SIZE_PX = 480  # square photos
#: Viewpoint of each inspection: the quad of the source image (x, y px; top-left,
#: top-right, bottom-right, bottom-left) that the photo's corners see -- a perspective warp
#: of a few degrees of tilt and turn, all inside the source so no photo has blank borders.
INSPECTION_VIEWS = (
    ((40, 36), (468, 44), (472, 470), (36, 462)),
    ((58, 30), (480, 52), (462, 486), (30, 470)),
    ((30, 50), (455, 28), (486, 455), (50, 488)),
    ((50, 46), (490, 60), (470, 480), (26, 450)),
)
#: Exposure of each inspection: (gain, gamma) applied as 255 * gain * (v / 255) ** gamma.
INSPECTION_EXPOSURE = ((1.0, 1.0), (0.85, 1.0), (1.1, 0.9), (0.95, 1.15))
INSPECTION_SECOND_STEM = "DSC00564"  # a second place (UAV75 photo), unchanged over time
#: The inspection (index) that also holds a black lens-cap frame, to show it refused.
INSPECTION_LENS_CAP = 2


def _source_to_photo(quad: tuple[tuple[float, float], ...]) -> np.ndarray:
    """3x3 homography source px -> photo px for a viewpoint of :data:`INSPECTION_VIEWS`."""
    import cv2

    n = INSPECTION_SIZE_PX - 1
    dst = np.float32([[0, 0], [n, 0], [n, n], [0, n]])
    return cv2.getPerspectiveTransform(np.float32(quad), dst).astype(np.float64)


def _photo_of(image: np.ndarray, h: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    import cv2

    warped = cv2.warpPerspective(image, h, (INSPECTION_SIZE_PX, INSPECTION_SIZE_PX),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    v = 255.0 * gain * (warped.astype(np.float64) / 255.0) ** gamma
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


def make_simulated_inspections(
    image_path: Path, mask_path: Path, second_path: Path, out_dir: Path, *,
    fractions: tuple[float, ...] = INSPECTION_FRACTIONS, start: datetime = INSPECTION_START,
    every: timedelta = INSPECTION_EVERY,
) -> list[tuple[Path, datetime]]:
    """Write SIMULATED repeat photo inspections of a structure: one photo folder each.

    Inspection k holds ``SIMULATED_crack_wall.jpg``: the real image ``image_path`` with the
    labelled crack grown to ``fractions[k]`` of its main axis by the inpainting of
    :func:`make_simulated_growth`, re-projected through the known viewpoint
    ``INSPECTION_VIEWS[k]`` (a perspective warp, OpenCV ``warpPerspective``, bilinear) with
    the exposure ``INSPECTION_EXPOSURE[k]``; and ``SIMULATED_pier.jpg``: the real image
    ``second_path`` (another place, unchanged) through a viewpoint of its own. Inspection
    :data:`INSPECTION_LENS_CAP` also holds ``SIMULATED_lens_cap.jpg``, a black frame with
    sensor noise. JPEG quality 95, no EXIF (no GSD: the first inspection is given one, later
    ones inherit it through their view).

    ``SIMULATED_truth.json`` beside the folders records every warp (source px -> photo px,
    row-major 3x3), exposure, fraction and date: the ground truth of the registration and
    growth targets. Deterministic: the same inputs give byte-identical files; existing
    files are kept.

    Returns:
        ``[(folder, acquired_at), ...]`` oldest first.
    """
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    second = np.asarray(Image.open(second_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    order = _crack_order(mask)
    made, truth = [], []
    n = len(INSPECTION_VIEWS)
    for k, frac in enumerate(fractions):
        when = start + k * every
        folder = out_dir / f"SIMULATED_inspection_{when:%Y%m%d}"
        made.append((folder, when))
        h = _source_to_photo(INSPECTION_VIEWS[k % n])
        h2 = _source_to_photo(INSPECTION_VIEWS[(k + 1) % n])
        gain, gamma = INSPECTION_EXPOSURE[k % n]
        files = {"SIMULATED_crack_wall.jpg": (h, image_path.name),
                 "SIMULATED_pier.jpg": (h2, second_path.name)}
        truth.append({"folder": folder.name, "acquired_at": when.isoformat(),
                      "fraction": frac, "gain": gain, "gamma": gamma,
                      "photos": {name: {"source": src, "source_to_photo":
                                        [float(v) for v in hm.ravel()]}
                                 for name, (hm, src) in files.items()}})
        if folder.exists():
            continue
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        grown = _grown(image, mask, order, frac)
        Image.fromarray(_photo_of(grown, h, gain, gamma)).save(
            tmp / "SIMULATED_crack_wall.jpg", quality=95)
        Image.fromarray(_photo_of(second, h2, gain, gamma)).save(
            tmp / "SIMULATED_pier.jpg", quality=95)
        if k == INSPECTION_LENS_CAP:
            rng = np.random.default_rng(251)
            dark = np.clip(rng.normal(3.0, 1.5, (INSPECTION_SIZE_PX, INSPECTION_SIZE_PX, 3)),
                           0, 255).astype(np.uint8)
            Image.fromarray(dark).save(tmp / "SIMULATED_lens_cap.jpg", quality=95)
        tmp.replace(folder)
    src_sha = hashlib.sha256(image_path.read_bytes()).hexdigest()[:12]
    (out_dir / "SIMULATED_truth.json").write_text(json.dumps({
        "description": (f"SIMULATED repeat photo inspections for a demo: real UAV75 image "
                        f"{image_path.name} (sha256 {src_sha}...) with its labelled crack "
                        f"grown by inpainting, re-projected through known perspective warps "
                        f"with exposure changes; not recorded photos"),
        "source_gsd_m": UAV75_ASSUMED_GSD_M, "mask": mask_path.name,
        "inspections": truth}, indent=1))
    return made


def inspection_truth(out_dir: Path) -> dict[str, Any]:
    """The ``SIMULATED_truth.json`` :func:`make_simulated_inspections` wrote."""
    return json.loads((out_dir / "SIMULATED_truth.json").read_text())


def photo_inspection_figures(engine: Any, site: str, out_dir: Path, *, model: Any = None,
                             near_px: float = 3.0) -> dict[str, Any]:
    """The SIMULATED photo-inspection targets, measured against the known truth.

    * ``registration_rms_px``: per photo of the grown crack, the RMS distance (view px, over
      a 16-px grid of the photo) between the stored homography and the true one
      (``T_0 @ inv(T_k)`` from :func:`make_simulated_inspections`' warps); and the maximum.
    * ``lineages``: the distinct lineages (tracks joined by split parents and merges) of the
      detected cracks lying within ``near_px`` view px of the grown crack's visible part
      (its label, re-projected into the view) in any inspection; the target is 1.
    * ``width``: per inspection the measured maximum width of those cracks (view-pixel
      equivalents: mm / the view's mm per px) and the reference: the same model
      (``model``, default the structure profile's) on the same SIMULATED image *before*
      re-projection and exposure change, measured the same way near the label and scaled
      into the view by the known warp; ``growth_error_px`` is the measured width growth
      since the first inspection minus the reference's. (The UAV75 labels are 1-px lines:
      they hold no width, so ``label_px`` is shown for information only.)
    """
    from PIL import Image

    from geodata.registration import homography_error_px
    from geodata.store.summaries import photo_inspections

    if model is None:
        from engine.registry import load_model

        model = load_model(_structure_model())
    truth = inspection_truth(out_dir)
    uav = DEMO_DATA / "uav75" / "growth_source"
    image = np.asarray(Image.open(uav / f"{GROWTH_SOURCE_STEM}.jpg").convert("RGB"))
    mask = np.asarray(Image.open(uav / truth["mask"]).convert("L")) > 127
    crack = _Crack(image, mask, _crack_order(mask))
    name = "SIMULATED_crack_wall.jpg"
    t0 = np.array(truth["inspections"][0]["photos"][name]["source_to_photo"]).reshape(3, 3)
    stored = photo_inspections(engine, site, name)
    figures: dict[str, Any] = {"registration_rms_px": {}, "width": []}
    near_tracks: set[int] = set()
    for insp in truth["inspections"]:
        photo = stored.photos[insp["folder"]]
        tk = np.array(insp["photos"][name]["source_to_photo"]).reshape(3, 3)
        figures["registration_rms_px"][insp["folder"]] = round(homography_error_px(
            photo.homography, t0 @ np.linalg.inv(tk), INSPECTION_SIZE_PX,
            INSPECTION_SIZE_PX), 4)
        figures["width"].append(_inspection_width(insp, photo, crack, t0, model, near_px,
                                                  near_tracks))
    _growth_errors(figures["width"])
    figures["near_tracks"] = sorted(near_tracks)
    figures["lineages"] = _lineages(stored.track_links, near_tracks)
    figures["max_registration_rms_px"] = max(figures["registration_rms_px"].values())
    errs = [abs(r["growth_error_px"]) for r in figures["width"]
            if r["growth_error_px"] is not None]
    figures["max_width_growth_error_px"] = max(errs) if errs else None
    return figures


@dataclass
class _Crack:
    """The SIMULATED crack's source image (RGB), label mask and :func:`_crack_order`."""

    image: np.ndarray
    mask: np.ndarray
    order: np.ndarray


def _pieces(binary_or_prob: np.ndarray) -> Any:
    """Crack pieces of a mask or probability map, in pixel units."""
    from geodata.vectorise import vectorise_cracks

    return vectorise_cracks(binary_or_prob.astype(np.float32), None, None, threshold=0.5,
                            min_area_px=1, pixel_size_m=1.0)


def _to_view(geom: Any, h: np.ndarray) -> Any:
    from geodata.registration import warp_points

    return shapely.transform(geom, lambda c: warp_points(h, c))


def _inspection_width(insp: dict[str, Any], photo: Any, crack: _Crack, t0: np.ndarray,
                      model: Any, near_px: float, near_tracks: set[int]) -> dict[str, Any]:
    """One inspection's row of ``width`` (see :func:`photo_inspection_figures`); adds the
    tracks of the stored cracks near the label to ``near_tracks``."""
    from engine.infer import predict_image
    from geodata.registration import local_scale

    visible = crack.mask & (crack.order <= insp["fraction"])
    label_src = shapely.union_all(_pieces(visible).geometry.values)
    label = _to_view(label_src, t0)
    # reference: the model on the un-warped image, near the label, scaled by the warp
    ref = _pieces(predict_image(_grown(crack.image, crack.mask, crack.order,
                                       insp["fraction"]), model))
    ref_w = [w / 1000.0 * local_scale(t0, (g.centroid.x, g.centroid.y))
             for g, w in zip(ref.geometry, ref["max_width_mm"], strict=True)
             if shapely.distance(g, label_src) <= near_px]
    lab = _pieces(visible)
    label_w = float(lab["max_width_mm"].max()) / 1000.0 if len(lab) else None
    widths = []
    for poly, w_mm, track in photo.cracks:
        if shapely.distance(_to_view(poly, photo.homography), label) <= near_px:
            widths.append(w_mm / photo.view_mm_per_px)
            if track is not None:
                near_tracks.add(int(track))
    return {"inspection": insp["folder"],
            "measured_px": round(max(widths), 3) if widths else None,
            "reference_px": round(max(ref_w), 3) if ref_w else None,
            "label_px": label_w}


def _growth_errors(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``growth_error_px``: measured width growth since the first row minus
    the reference's (None where a width is missing)."""
    w0 = rows[0]
    for row in rows:
        if None in (row["measured_px"], w0["measured_px"], row["reference_px"],
                    w0["reference_px"]):
            row["growth_error_px"] = None
            continue
        row["growth_error_px"] = round((row["measured_px"] - w0["measured_px"])
                                       - (row["reference_px"] - w0["reference_px"]), 3)


def _lineages(links: dict[int, tuple[int | None, int | None]], tracks: set[int]) -> int:
    """The number of distinct lineages of ``tracks``: tracks joined by ``links`` (track ->
    split parent, merged into), union-find."""
    parent = {t: t for t in links}

    def find(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for t, (par, into) in links.items():
        for other in (par, into):
            if other is not None and other in parent:
                parent[find(t)] = find(other)
    return len({find(t) for t in tracks})


# ------------------------------------------------------------------------------ sites


def demo_sites(work: Path) -> list[DemoSite]:
    """The six demo sites with their surveys (the simulated files are generated here)."""
    import rasterio
    from pyproj import Transformer

    uav = DEMO_DATA / "uav75"
    growth = make_simulated_growth(uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.jpg",
                                   uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.png",
                                   work / "simulated_growth")
    inspections = make_simulated_inspections(
        uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.jpg",
        uav / "growth_source" / f"{GROWTH_SOURCE_STEM}.png",
        uav / "photos" / f"{INSPECTION_SECOND_STEM}.jpg", work / "simulated_inspections")
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
        _rock_cut_site(),
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
                 model=_structure_model(),
                 # night 1 is the baseline of the "surface change (unsupervised)" layer
                 baseline=True),
        DemoSite("SIMULATED photo inspections (UAV75 wall re-projected, crack grown)",
                 "structure", 32632, 11.3240, 50.9790, "Europe/Berlin",
                 note="SIMULATED: warped real photo, inpainted growth; registered per view",
                 surveys=[{"path": folder, "acquired_at": when,
                           "pixel_size_m": _inspection_gsd() if k == 0 else None,
                           "metadata": {
                               "simulated": True,
                               "simulation": "real UAV75 photo re-projected through known "
                                             "perspective warps with exposure changes; "
                                             "crack grown by inpainting; truth in "
                                             "SIMULATED_truth.json",
                               **({"pixel_size_source": (
                                   f"ASSIGNED: UAV75's assumed {UAV75_ASSUMED_GSD_M * 1000:g} "
                                   f"mm/px through the known warp; later inspections take "
                                   f"it from their view")} if k == 0 else {})}}
                          for k, (folder, when) in enumerate(inspections)]),
    ]


def _rock_cut_site() -> DemoSite:
    """The rock cut: four real rockfracture test photos (AGPL-3.0), GSD assumed, position
    assigned (issue 25: what the slope model finds, next to the Mt Agung photo)."""
    return DemoSite(
        "Rock cut (real rock-face photos, assigned position)", "slope", 32750, 115.5050,
        -8.3420, "Asia/Makassar",
        note="real labelled rock fractures; GSD assumed, position assigned",
        surveys=[{"path": DEMO_DATA / "rockfracture" / "photos",
                  "acquired_at": datetime(2021, 6, 11, 3, 0, tzinfo=UTC),
                  "pixel_size_m": ROCKCUT_ASSUMED_GSD_M,
                  "metadata": {
                      "pixel_size_source": f"given (ASSUMED {ROCKCUT_ASSUMED_GSD_M * 1000:g} "
                                           f"mm/px; the photos have no EXIF)",
                      "position_source": "ASSIGNED (no GPS in the photos)",
                      "acquired_at_source": "ASSUMED from the file names (Unix time "
                                            "1623382976)",
                      "license": "AGPL-3.0 (rockfracture)"}}])


def _inspection_gsd() -> float:
    """GSD (m/px) of the first SIMULATED inspection photo at its centre: UAV75's assumed
    GSD through the known warp of :data:`INSPECTION_VIEWS` [0]."""
    from geodata.registration import local_scale

    h = _source_to_photo(INSPECTION_VIEWS[0])
    c = (INSPECTION_SIZE_PX - 1) / 2.0
    return UAV75_ASSUMED_GSD_M * local_scale(np.linalg.inv(h), (c, c))  # source px/photo px


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
    from geodata.store.summaries import site_totals
    from jobs.inbox import ingest
    from jobs.pipeline import PipelineOptions, run_site

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
        if ds.baseline:
            _demo_baseline(engine, ds.name, options.work_dir)
    summary = site_totals(engine, [s.name for s in sites])
    engine.dispose()
    return DemoResult(database_url, summary, processed)


def _demo_baseline(engine: Any, site: str, work_dir: Path) -> None:
    """Fit the site's baseline on its first survey once (a re-run keeps it)."""
    from geodata.store.change import has_site_baseline
    from geodata.store.engine import session_scope
    from jobs.site_baseline import fit_site_baseline

    with session_scope(engine) as s:
        if has_site_baseline(s, site):
            return
    fit_site_baseline(engine, site, work_dir)


def to_json(result: DemoResult) -> str:
    return json.dumps({"database_url": result.database_url, "sites": result.sites}, indent=2,
                      default=str)
