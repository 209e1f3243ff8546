"""One survey's inference: imagery in, probability and crack frame out (no database).

The one step that ``crackwatch infer``, the pipeline (in this process, or on a Ray worker
through :mod:`jobs.executor`) and the inference benchmark (:func:`engine.bench.bench_infer`)
run:

- :func:`infer_orthomosaic`: a georeferenced raster -> a probability Cloud-Optimized GeoTIFF
  (:func:`engine.infer.predict_raster`, or a drop-in such as the Ray band stitcher) -> cracks
  vectorised and measured in the map's CRS (:mod:`geodata.vectorise`);
- :func:`infer_photos`: a photo set -> per photo its metadata, GSD, nadir footprint, pixels'
  probability (:func:`engine.infer.predict_image`) and cracks in image pixels (y down),
  measured with the photo's own GSD or left in pixel units for the store step to measure;
- :func:`infer_survey`: a stored survey (:class:`SurveySource`: plain values, no session)
  through one of the two, as the pipeline runs it: the probability map under
  ``<work_dir>/probability/``, photos checked for registration (black/blur, SIFT features)
  and left in pixel units.

Every result is a :class:`SurveyInference`. Store writes (photo registration into views,
the crack tables) stay in :mod:`jobs.pipeline`.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import CRSError
from engine.infer import PredictionResult
from engine.raster_read import StripedRasterWarning
from engine.run_files import remove_stale_run_files
from engine.survey_masks import map_exclusions, photo_exclusions
from geodata.photos import PHOTO_SOURCE_TYPES

__all__ = ["InferenceSettings", "PhotoInference", "SurveyInference", "SurveySource",
           "infer_orthomosaic", "infer_photos", "infer_survey"]



#: Default edge band (px) of :class:`InferenceSettings`: a crack with half its pixels within
#: this distance of nodata, the collar or the frame follows the edge of the data and is
#: dropped. Measured in README "What the map shows can be trusted" (issue 25).
EDGE_BAND_PX = 8


@dataclass(frozen=True)
class InferenceSettings:
    """Tiling and thresholds of one inference.

    Attributes:
        tile_size, overlap: window side and overlap, px (:func:`engine.infer.predict_raster`).
        batch_size: windows per forward pass (None: :func:`engine.infer.default_batch_size`).
        device: ``cpu``, ``cuda``, ``cuda:N``.
        tta: test-time augmentation (mean over 4 flips).
        threshold: crack probability threshold in (0, 1].
        min_area_px: cracks with fewer pixels are dropped.
        edge_band_px: cracks with half their pixels or more within this many pixels of
            nodata, the collar or the frame are dropped (:func:`geodata.vectorise.
            vectorise_cracks`); 0 keeps them.
        mask_vegetation: drop cracks that lie on vegetation, where no crack in the ground can
            be seen (:mod:`engine.observable`); None: the site profile's rule
            (:meth:`for_profile`: on slope sites only).
        object_filter: crack-object shape rules (:class:`geodata.crack_objects.ObjectFilter`);
            None: the model's (:data:`engine.crack_rules.MODEL_OBJECT_FILTERS`).
        tile_gate: drop cracks half on 128 px tiles the shipped crack / no-crack tile
            classifier sees no crack in (:mod:`engine.tile_classifier`); None: the site's
            own switch, else its profile and model's rule (:meth:`for_survey`).
    """

    tile_size: int = 512
    overlap: int = 64
    batch_size: int | None = None
    device: str = "cpu"
    tta: bool = False
    threshold: float = 0.5
    min_area_px: int = 20
    edge_band_px: int = EDGE_BAND_PX
    mask_vegetation: bool | None = None
    object_filter: Any = None
    tile_gate: bool | None = None

    def for_profile(self, profile: str | None,
                    model_name: str | None = None) -> InferenceSettings:
        """These settings with the rules left None taken from ``profile``'s and
        ``model_name``'s (:func:`engine.crack_rules.rules_for`).

        Raises:
            ValueError: an unknown profile.
        """
        from engine.crack_rules import rules_for

        rules = rules_for(profile, model_name)
        return replace(self, mask_vegetation=rules.mask_vegetation
                       if self.mask_vegetation is None else self.mask_vegetation,
                       object_filter=rules.object_filter
                       if self.object_filter is None else self.object_filter,
                       tile_gate=rules.tile_gate if self.tile_gate is None else self.tile_gate)

    def for_survey(self, survey: SurveySource, model_name: str | None) -> InferenceSettings:
        """:meth:`for_profile` of the survey's site, after the site's own tile-gate switch
        (``survey.tile_gate``, ``crackwatch site set-tile-gate``) where this run sets none."""
        own = self if self.tile_gate is not None else replace(self, tile_gate=survey.tile_gate)
        return own.for_profile(survey.profile, model_name)

    @classmethod
    def of(cls, options: Any) -> InferenceSettings:
        """The settings of anything with these attributes (``jobs.pipeline.PipelineOptions``;
        one it lacks keeps its default)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)
                      if hasattr(options, f.name)})

    def rules_dict(self) -> dict[str, Any]:
        """The crack rules run after the model, JSON-ready (recorded with each run)."""
        from dataclasses import asdict

        return {"edge_band_px": self.edge_band_px, "mask_vegetation": bool(self.mask_vegetation),
                "tile_gate": bool(self.tile_gate),
                "object_filter": asdict(self.object_filter) if self.object_filter else None}

    def tiling(self) -> dict[str, Any]:
        """Keyword arguments of :func:`engine.infer.predict_raster` / ``predict_image``."""
        return {"tile_size": self.tile_size, "overlap": self.overlap,
                "batch_size": self.batch_size, "device": self.device, "tta": self.tta}


@dataclass
class PhotoInference:
    """One photo of a photo set as :func:`infer_photos` saw it.

    Attributes:
        path: the file.
        meta: its EXIF/XMP metadata (:class:`geodata.photos.PhotoMetadata`); None when it
            could not be read.
        failed_at: None, or where it was given up: ``"metadata"`` (not a readable JPEG),
            ``"gsd"`` (no GSD while cracks are measured in metres), ``"pixels"`` (the image
            does not decode); ``problem`` then says why, and nothing below is set.
        width_px, height_px: image size.
        gsd_m: its own GSD, m/px (the given ``gsd_m``, else EXIF/XMP), or None;
            ``gsd_error`` why there is none.
        footprint: nadir ground footprint (shapely polygon in the footprint CRS) when the
            photo has GPS and a GSD; ``footprint_error`` why it could not be made.
        quality, features: :class:`geodata.registration.PhotoQuality` and ``PhotoFeatures``
            (only with ``check_quality``; no features for a refused photo).
        cracks, skeletons: its crack frame (column ``photo`` = the file name; image pixels)
            and skeleton lines; None when it was not run (failed, or a black frame).
        observable_fraction: share of the photo not covered by vegetation (with
            ``mask_vegetation``; :mod:`engine.observable`), else None.
    """

    path: Path
    meta: Any = None
    failed_at: str | None = None
    problem: str | None = None
    width_px: int = 0
    height_px: int = 0
    gsd_m: float | None = None
    gsd_error: str | None = None
    footprint: Any = None
    footprint_error: str | None = None
    quality: Any = None
    features: Any = None
    cracks: Any = None
    skeletons: Any = None
    observable_fraction: float | None = None

    @property
    def name(self) -> str:
        """The file name (as stored on its cracks)."""
        return self.path.name


@dataclass
class SurveyInference:
    """What one inference produced.

    Attributes:
        coordinate_space: ``"map"`` (orthomosaic: cracks in ``crs``, metres) or ``"image"``
            (photos: each photo's cracks in its pixels, x right, y down).
        cracks, skeletons: orthomosaic: the crack frame (:data:`geodata.vectorise.
            CRACK_COLUMNS`) and its skeleton lines; None when not vectorised. Photos: see
            ``photos``.
        probability_path: the probability COG (orthomosaic).
        prediction: what :func:`engine.infer.predict_raster` reported (orthomosaic).
        pixel_size_m: ground size of the probability map's pixels, m (orthomosaic).
        photos: per photo of a photo set, in order: those whose metadata could not be read
            first, then every readable one (sorted by path).
        footprint_crs: CRS of the photos' footprints (None: no photo has GPS).
        gsd_m_given: the GSD given for every photo (``--gsd-m``), or None.
        megapixels_per_s: orthomosaic: raster megapixels/s end to end; photos: megapixels/s
            of the model over the photos run (None: none was run).
        warnings: Python warnings raised while predicting (e.g. a striped GeoTIFF).
        observable_fraction: orthomosaic with ``mask_vegetation``: share of its valid pixels
            not covered by vegetation (:mod:`engine.observable`); else None.
        unobservable: the vegetation as a one-row GeoSeries in ``crs`` (the map's "not
            observable" layer, :func:`engine.observable.vegetation_polygons`), or None.
        crack_rules: the rules run after the model (vegetation mask, object filter, edge
            band; :meth:`InferenceSettings.rules_dict`).
    """

    coordinate_space: str
    cracks: Any = None
    skeletons: Any = None
    probability_path: Path | None = None
    prediction: PredictionResult | None = None
    pixel_size_m: float | None = None
    photos: list[PhotoInference] = field(default_factory=list)
    footprint_crs: Any = None
    gsd_m_given: float | None = None
    megapixels_per_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    observable_fraction: float | None = None
    crack_rules: dict[str, Any] | None = None
    unobservable: Any = None

    @property
    def photo_failures(self) -> list[tuple[Path, str]]:
        """``(path, why)`` of each photo that was given up (``failed_at`` set), in order."""
        return [(p.path, p.problem) for p in self.photos if p.failed_at]

    def as_dict(self) -> dict[str, Any]:
        """The infer step's output as :func:`jobs.pipeline.process_survey` stores it.

        Orthomosaic: ``cracks``, ``skeletons``, ``pixel_size_m``, ``unobservable``; photos:
        ``photos`` (:class:`geodata.views.SurveyPhoto`) and ``photo_cracks`` (``{name: (cracks,
        skeletons)}`` in pixel units). Both: ``coordinate_space``, ``footprint`` (union of
        the photos' footprints, or None), ``megapixels_per_s`` and ``infer`` (what the job
        run records for the step).
        """
        if self.coordinate_space == "map":
            res = self.prediction
            return {"cracks": self.cracks, "skeletons": self.skeletons, "coordinate_space": "map",
                    "footprint": None, "megapixels_per_s": res.megapixels_per_s,
                    "pixel_size_m": self.pixel_size_m, "unobservable": self.unobservable,
                    "infer": {"seconds": round(res.seconds, 2),
                              "probability_cog": str(self.probability_path),
                              "megapixels_per_s": round(res.megapixels_per_s, 3),
                              "windows": res.windows_total,
                              "windows_skipped": res.windows_skipped,
                              "observable_fraction": self.observable_fraction,
                              "crack_rules": self.crack_rules,
                              # the prediction's own and any other raised while predicting
                              "warnings": list(dict.fromkeys([*res.warnings,
                                                              *self.warnings]))}}
        return self._photos_dict()

    def _photos_dict(self) -> dict[str, Any]:
        from geodata.views import SurveyPhoto

        photos, notes, footprints = [], [], []
        for p in self.photos:
            if p.failed_at:
                photos.append(SurveyPhoto(p.name, p.path, problem=f"unreadable: {p.problem}"))
                continue
            photos.append(SurveyPhoto(
                p.name, p.path, width_px=p.width_px, height_px=p.height_px, quality=p.quality,
                features=p.features, own_gsd_m=p.gsd_m,
                own_gsd_source=p.gsd_error if p.gsd_m is None else (
                    "the survey's pixel size (--gsd-m)" if self.gsd_m_given else
                    "EXIF/XMP (focal length, sensor width, height above take-off)"),
                gsd_given=self.gsd_m_given is not None, footprint=p.footprint))
            if p.footprint is not None:
                footprints.append(p.footprint)
            if p.footprint_error:
                notes.append(f"{p.name}: no footprint ({p.footprint_error})")
            elif not p.meta.has_gps:
                notes.append(f"{p.name}: no GPS in EXIF; attached to the site's location")
            if p.cracks is None:
                notes.append(f"{p.name}: {p.quality.reason}; not run through the model")
        footprint = None
        if footprints:
            import shapely

            footprint = shapely.union_all(footprints)
        found = {p.name: (p.cracks, p.skeletons) for p in self.photos if p.cracks is not None}
        seen = [p.observable_fraction for p in self.photos if p.observable_fraction is not None]
        mps = self.megapixels_per_s
        return {"photos": photos, "photo_cracks": found, "coordinate_space": "image",
                "footprint": footprint, "megapixels_per_s": mps,
                "infer": {"photos": len(found),
                          "failed": [f"{p.name}: {r}" for p, r in self.photo_failures],
                          "notes": notes, "megapixels_per_s": round(mps, 3) if mps else None,
                          "observable_fraction": round(float(np.mean(seen)), 4) if seen else None,
                          "observable_fraction_per_photo": {
                              p.name: p.observable_fraction for p in self.photos
                              if p.observable_fraction is not None},
                          "crack_rules": self.crack_rules}}


# ------------------------------------------------------------------------ orthomosaic


def infer_orthomosaic(
    path: str | Path,
    model: Any,
    settings: InferenceSettings,
    *,
    out_path: str | Path,
    crs: str | None = None,
    dtype: str = "uint8",
    progress: bool = True,
    predict: Callable[..., PredictionResult] | None = None,
    vectorise: bool = True,
) -> SurveyInference:
    """An orthomosaic's probability COG and its cracks.

    The map is written under a name of this run only (``<stem>.run-<pid>-<random>.tif``,
    and :func:`engine.infer.predict_raster`'s ``.partial.tif`` beside it), then renamed to
    ``out_path`` atomically, so two processes sharing a folder never write one file (a killed
    run's are deleted first: :mod:`engine.run_files`). Then it is read whole (uint8) and
    vectorised with its nodata mask (:func:`geodata.vectorise.vectorise_cracks_and_skeletons`:
    cracks in the map's CRS, lengths in m, widths in mm).

    Args:
        path: the raster (GeoTIFF or anything GDAL reads).
        model: segmentation model in ``eval()`` mode on ``settings.device``.
        settings: tiling and thresholds.
        out_path: the probability COG to write.
        crs: as for :func:`engine.infer.predict_raster` (so are ``dtype`` and ``progress``).
        predict: a drop-in for :func:`engine.infer.predict_raster` (the Ray band
            stitcher, :mod:`jobs.executor`).
        vectorise: False: only the probability map (benchmarks); ``cracks`` stay None.

    Returns:
        :class:`SurveyInference` (``coordinate_space`` ``"map"``); Python warnings raised
        while predicting are in its ``warnings``, not shown.

    Raises:
        RasterReadError: as :func:`engine.infer.predict_raster` (also BandLayoutError,
            CRSError, ValueError there and in :func:`geodata.vectorise.vectorise_cracks`).
    """
    if predict is None:  # looked up now: tests replace engine.infer.predict_raster
        from engine.infer import predict_raster as predict
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_run_files(out_path)
    run_out = out_path.with_name(f"{out_path.stem}.run-{os.getpid()}-{uuid.uuid4().hex[:8]}.tif")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StripedRasterWarning)
            res = predict(path, model, out_path=run_out, crs=crs, dtype=dtype, progress=progress,
                          **settings.tiling())
        os.replace(run_out, out_path)
    finally:
        for leftover in (run_out, run_out.with_name(run_out.stem + ".partial.tif")):
            leftover.unlink(missing_ok=True)
    out = SurveyInference("map", probability_path=out_path, prediction=replace(res, path=out_path),
                          megapixels_per_s=res.megapixels_per_s,
                          crack_rules=settings.rules_dict(),
                          warnings=[str(w.message) for w in caught])
    if vectorise:
        _vectorise_map(out, settings, Path(path))
    return out


def _vectorise_map(out: SurveyInference, settings: InferenceSettings,
                   source: Path | None = None) -> None:
    """Read ``out``'s probability map and set its cracks, skeletons and pixel size (and,
    with ``settings.mask_vegetation`` / ``settings.tile_gate``, drop cracks on the
    vegetation / crack-free tiles of ``source``: :mod:`engine.survey_masks`)."""
    import rasterio

    from geodata.vectorise import vectorise_cracks_and_skeletons

    with rasterio.open(out.probability_path) as src:
        # Whole-map read: uint8 is one byte per pixel (a 16k x 16k map is 256 MiB).
        prob = src.read(1)
        nodata = src.read_masks(1) == 0
        transform, crs = src.transform, src.crs
    if prob.dtype.kind == "f":
        nodata |= np.isnan(prob)
        prob = np.nan_to_num(prob, nan=0.0)
    exclude = map_exclusions(out, settings, source, prob.shape, transform, crs, nodata)
    out.cracks, out.skeletons = vectorise_cracks_and_skeletons(
        prob, transform, crs, threshold=settings.threshold, min_area_px=settings.min_area_px,
        nodata_mask=nodata, edge_band_px=settings.edge_band_px, exclude_mask=exclude,
        object_filter=settings.object_filter)
    out.pixel_size_m = float(abs(transform.determinant) ** 0.5)


# ----------------------------------------------------------------------------- photos


def infer_photos(
    photos: str | Path | Sequence[str | Path],
    model: Any,
    settings: InferenceSettings,
    *,
    gsd_m: float | None = None,
    altitude_m: float | None = None,
    footprint_crs: Any = None,
    measure: bool = True,
    check_quality: bool = False,
    predict: Callable[[Path, np.ndarray], np.ndarray] | None = None,
) -> SurveyInference:
    """Cracks in each photo of a set, in its image pixels (x right, y down).

    One bad photo (unreadable, undecodable, no GSD when measuring) is recorded in its
    :class:`PhotoInference` and skipped; it does not stop the set.

    Args:
        photos: a folder (its JPEGs), one file, or a list of files
            (:func:`geodata.photos.read_photo_set`).
        model: segmentation model in ``eval()`` mode on ``settings.device``.
        settings: tiling and thresholds.
        gsd_m: each photo's GSD (m/px); else from EXIF/XMP (geodata.photos).
        altitude_m: each photo's height above ground (m), given, for the GSD.
        footprint_crs: CRS of the nadir footprints (a projected CRS in metres); None: the
            UTM zone of the first photo with GPS (:func:`geodata.crs.utm_crs_for`).
        measure: True: lengths in m and widths in mm with each photo's own GSD (a photo
            without one fails at ``"gsd"``); False: in pixel units (``pixel_size_m=1``), for
            the store step to measure once the photo's view is known.
        check_quality: black/blur check and SIFT features for registering the photos
            (:mod:`geodata.registration`); a black frame is not run through the model.
        predict: ``predict(path, rgb) -> (rows, cols) probability`` instead of
            :func:`engine.infer.predict_image` (the Ray workers, :mod:`jobs.executor`).

    Returns:
        :class:`SurveyInference` (``coordinate_space`` ``"image"``) with ``photos``.

    Raises:
        FileNotFoundError: ``photos`` names a path that does not exist.
    """
    from engine.infer import predict_image
    from geodata.crs import utm_crs_for
    from geodata.photos import read_photo_set

    metas, failures = read_photo_set(photos)
    if footprint_crs is None:
        located = [m for m in metas if m.has_gps]
        footprint_crs = utm_crs_for(located[0].lon_deg, located[0].lat_deg) if located else None
    out = SurveyInference("image", footprint_crs=footprint_crs, gsd_m_given=gsd_m,
                          crack_rules=settings.rules_dict())
    out.photos = [PhotoInference(Path(p), failed_at="metadata", problem=why)
                  for p, why in failures]
    pixels, model_s, gate = 0, 0.0, None
    for meta in metas:
        photo, rgb = _open_photo(meta, gsd_m, altitude_m, measure)
        out.photos.append(photo)
        if rgb is None:
            continue
        _photo_extras(photo, rgb, footprint_crs, check_quality)
        if photo.quality is not None and photo.quality.problem == "black":
            continue
        t0 = time.perf_counter()
        prob = predict(meta.path, rgb) if predict else predict_image(rgb, model,
                                                                    **settings.tiling())
        model_s += time.perf_counter() - t0
        pixels += prob.size
        exclude, gate = photo_exclusions(photo, rgb, settings, gate)
        _vectorise_photo(photo, prob, settings, measure, exclude)
    out.megapixels_per_s = pixels / 1e6 / model_s if model_s else None
    return out


def _open_photo(meta: Any, gsd_m: float | None, altitude_m: float | None,
                measure: bool) -> tuple[PhotoInference, np.ndarray | None]:
    """A photo's record with its GSD, and its RGB pixels (None: it failed)."""
    from PIL import Image

    from geodata.errors import GSDError
    from geodata.photos import ground_sample_distance_m

    photo = PhotoInference(Path(meta.path), meta=meta)
    try:
        photo.gsd_m = ground_sample_distance_m(meta, altitude_m=altitude_m, gsd_m=gsd_m)
    except GSDError as exc:
        photo.gsd_error = str(exc)
        if measure:
            photo.failed_at, photo.problem = "gsd", str(exc)
            return photo, None
    try:
        with Image.open(meta.path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as exc:
        photo.failed_at, photo.problem = "pixels", str(exc)
        return photo, None
    photo.height_px, photo.width_px = rgb.shape[:2]
    return photo, rgb


def _photo_extras(photo: PhotoInference, rgb: np.ndarray, footprint_crs: Any,
                  check_quality: bool) -> None:
    """Quality and features (``check_quality``), and the nadir footprint (GPS + GSD)."""
    from geodata.errors import GSDError, PhotoMetadataError
    from geodata.photos import nadir_footprint

    if check_quality:
        from geodata.registration import photo_features, photo_quality

        photo.quality = photo_quality(rgb)
        photo.features = (None if photo.quality.problem else  # refused anyway
                          photo_features(rgb, quality=photo.quality, name=photo.name))
    if photo.meta.has_gps and photo.gsd_m and footprint_crs is not None:
        try:
            photo.footprint = nadir_footprint(photo.meta, photo.gsd_m, footprint_crs)
        except (PhotoMetadataError, GSDError) as exc:
            photo.footprint_error = str(exc)


def _vectorise_photo(photo: PhotoInference, prob: np.ndarray, settings: InferenceSettings,
                     measure: bool, exclude: np.ndarray | None = None) -> None:
    from engine.crack_rules import photo_object_filter
    from geodata.vectorise import vectorise_cracks_and_skeletons

    cracks, skeletons = vectorise_cracks_and_skeletons(
        prob, None, None, threshold=settings.threshold, min_area_px=settings.min_area_px,
        pixel_size_m=photo.gsd_m if measure else 1.0, edge_band_px=settings.edge_band_px,
        exclude_mask=exclude,
        object_filter=photo_object_filter(settings.object_filter, photo.gsd_m, measure))
    cracks["photo"] = photo.name
    photo.cracks, photo.skeletons = cracks, skeletons


# ----------------------------------------------------------------------------- survey


@dataclass
class SurveySource:
    """What :func:`infer_survey` needs of a survey and its site (plain values, no session:
    it travels to Ray workers)."""

    id: int
    site_id: int
    source_path: str
    source_type: str
    pixel_size_m: float | None = None
    site_crs_epsg: int | None = None
    profile: str | None = None
    #: The site's own tile-gate switch (``Site.tile_gate``); None: the profile's rule.
    tile_gate: bool | None = None

    @classmethod
    def of(cls, survey: Any, site: Any) -> SurveySource:
        """From a :class:`geodata.store.models.Survey` and its ``Site``."""
        return cls(id=survey.id, site_id=site.id, source_path=str(survey.source_path),
                   source_type=survey.source_type, pixel_size_m=survey.pixel_size_m,
                   site_crs_epsg=site.crs_epsg, profile=getattr(site, "profile", None),
                   tile_gate=getattr(site, "tile_gate", None))

    @property
    def is_photos(self) -> bool:
        return self.source_type in PHOTO_SOURCE_TYPES


def infer_survey(survey: SurveySource, model: Any, settings: InferenceSettings, *,
                 work_dir: str | Path,
                 predict: Callable[..., PredictionResult] | None = None,
                 model_name: str | None = None) -> SurveyInference:
    """A stored survey's imagery through the step, as the pipeline runs it (no database).

    Orthomosaic: :func:`infer_orthomosaic` into ``<work_dir>/probability/survey<id>_
    probability.tif`` (no progress bar). Photos: :func:`infer_photos` with the survey's
    pixel size as GSD, footprints in the site's CRS, quality and features for registration,
    cracks in pixel units (measured in the store step, once each photo's view is known).

    Args:
        predict: a drop-in for :func:`engine.infer.predict_raster` (orthomosaic only).
        model_name: the model whose crack rules apply (default: ``model.card["name"]``;
            for a ``predict`` that needs no ``model``).

    Raises:
        CRSError: the raster has no CRS (the message says how to fix the survey).
        ValueError: no photo of a photo survey could be processed.
        What :func:`infer_orthomosaic` / :func:`infer_photos` raise.
    """
    src = Path(survey.source_path)
    # the crack rules of the run, else the site's own switch, else its profile and model's
    settings = settings.for_survey(survey, model_name or getattr(model, "card", {}).get("name"))
    if survey.is_photos:
        out = infer_photos(src if src.is_dir() else [src], model, settings,
                           gsd_m=survey.pixel_size_m, footprint_crs=f"EPSG:{survey.site_crs_epsg}",
                           measure=False, check_quality=True)
        if all(p.failed_at for p in out.photos):
            reasons = "; ".join(f"{p.name}: {r}" for p, r in out.photo_failures) or \
                "no JPEG photos found"
            raise ValueError(f"survey {survey.id}: no photo of {src} could be processed "
                             f"({reasons})")
        return out
    prob_path = Path(work_dir) / "probability" / f"survey{survey.id}_probability.tif"
    try:
        return infer_orthomosaic(survey.source_path, model, settings, out_path=prob_path,
                                 progress=False, predict=predict)
    except CRSError as exc:
        if "--crs" not in str(exc):
            raise
        # engine.infer's hint names `crackwatch infer --crs`; a survey has no such option
        raise CRSError(
            f"{survey.source_path} has no CRS, so its cracks cannot be placed or measured: "
            f"assign it (gdal_edit.py -a_srs EPSG:XXXX FILE) or georeference and export it "
            f"again, then `crackwatch survey add` the fixed file and `crackwatch survey skip "
            f"{survey.id}` this one") from exc
