"""Figures of the per-site surface-change layer (issue 29): ``crackwatch evaluate --suite
site-change``.

* **SIMULATED growth site** (:func:`growth_site_figures`): the demo's five nights
  (:func:`jobs.demo.make_simulated_growth`: a real UAV75 crack, earlier nights with part of it
  inpainted away, ASSIGNED geotransform) in a fresh SQLite store; a baseline fitted on night 1
  (``crackwatch site baseline``'s code path); for each later night, the share of the *grown*
  crack length (skeleton of the labelled crack between night 1's and that night's extent)
  inside the layer's polygons, and the share of the unchanged surface they cover (pixels
  identical to night 1 and more than :data:`UNCHANGED_MARGIN_PX` from any pixel that is not).
* **brighton_beach** (:func:`brighton_pair_figures`): real nadir photos of one shore park
  taken seconds apart (nothing changed but viewpoint, parallax, sway and exposure): baseline
  photo and a second baseline photo registered to it (SIFT + MAGSAC++ homography,
  :mod:`geodata.registration`) set the threshold; a third registered photo is compared and the
  flagged share of its overlap with the baseline reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: Unchanged surface: pixels this far (px) or farther from any changed pixel (the search
#: radius of :mod:`engine.site_change`: patches this close share features with the change).
UNCHANGED_MARGIN_PX = 16
#: The brighton_beach photos: baseline, second baseline photo (threshold), compared photo.
BRIGHTON_PHOTOS = ("DJI_0020.JPG", "DJI_0019.JPG", "DJI_0021.JPG")


def growth_site_figures(work_dir: Path | None = None, progress=None) -> dict[str, Any]:
    """Baseline on night 1 of the SIMULATED growth site; per later night the grown-length
    coverage and the unchanged-surface share flagged (module docstring)."""
    import rasterio
    from PIL import Image
    from rasterio.features import rasterize
    from scipy import ndimage
    from skimage.morphology import skeletonize

    from geodata.queries import survey_surface_change
    from geodata.store import add_site, connect, upgrade
    from geodata.store.engine import sqlite_url
    from jobs.demo import (
        DEMO_DATA,
        GROWTH_EPSG,
        GROWTH_FRACTIONS,
        GROWTH_SOURCE_STEM,
        _crack_order,
        make_simulated_growth,
    )
    from jobs.inbox import ingest
    from jobs.site_baseline import fit_site_baseline

    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="crackwatch-site-change-")
        work_dir = Path(tmp.name)
    src = DEMO_DATA / "uav75" / "growth_source"
    nights = make_simulated_growth(src / f"{GROWTH_SOURCE_STEM}.jpg",
                                   src / f"{GROWTH_SOURCE_STEM}.png", work_dir / "growth")
    url = sqlite_url(work_dir / "store.sqlite")
    upgrade(url)
    engine = connect(url)
    try:
        add_site(engine, "SIMULATED growth", profile="slope", crs_epsg=GROWTH_EPSG,
                 exist_ok=True)
        ids = [ingest(engine, "SIMULATED growth", p, acquired_at=when,
                      metadata={"simulated": True}).id for p, when in nights]
        fitted = fit_site_baseline(engine, "SIMULATED growth", work_dir, [ids[0]],
                                   progress=progress)
        mask = np.asarray(Image.open(src / f"{GROWTH_SOURCE_STEM}.png").convert("L")) > 127
        order = _crack_order(mask)
        skel = skeletonize(mask)
        with rasterio.open(nights[0][0]) as ds:
            night1 = ds.read()
            transform = ds.transform
        rows = []
        for k, sid in enumerate(ids[1:], start=1):
            geom = survey_surface_change(engine, sid).geometry.iloc[0]
            flagged = rasterize([(geom, 1)], out_shape=mask.shape, transform=transform,
                                fill=0, dtype="uint8").astype(bool) if geom is not None \
                else np.zeros(mask.shape, bool)
            grown = skel & (np.nan_to_num(order, nan=-1) > GROWTH_FRACTIONS[0]) \
                & (np.nan_to_num(order, nan=2) <= GROWTH_FRACTIONS[k])
            with rasterio.open(nights[k][0]) as ds:
                differs = np.any(ds.read() != night1, 0)
            unchanged = ~ndimage.binary_dilation(differs, iterations=UNCHANGED_MARGIN_PX)
            rows.append({"night": k + 1, "survey_id": sid,
                         "grown_length_px": int(grown.sum()),
                         "grown_length_covered_pct": 100 * float(flagged[grown].mean())
                         if grown.any() else None,
                         "unchanged_flagged_pct": 100 * float(flagged[unchanged].mean()),
                         "changed_pct_of_compared": next(
                             (lay["changed_pct"] for lay in fitted["layers"]
                              if lay and lay["survey_id"] == sid), None)})
    finally:
        engine.dispose()
        if tmp is not None:
            tmp.cleanup()
    return {"threshold": fitted["threshold"], "threshold_rule": fitted["threshold_rule"],
            "nights": rows}


def brighton_pair_figures(data_root: Path | None = None) -> dict[str, Any]:
    """Flagged share of the overlap of a registered brighton_beach photo with the baseline
    photo (module docstring).

    Raises:
        DataNotFoundError: the brighton_beach photos are missing.
    """
    from PIL import Image

    from engine.data import default_data_root
    from engine.errors import DataNotFoundError
    from engine.site_change import change_scores, fit_baseline
    from geodata.registration import photo_features, register_pair

    folder = (data_root or default_data_root()) / "geo" / "brighton_beach"
    paths = [folder / n for n in BRIGHTON_PHOTOS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataNotFoundError(f"brighton_beach photos {missing} not found in {folder}.")
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    feats = [photo_features(im) for im in imgs]
    regs = [register_pair(feats[k], feats[0]) for k in (1, 2)]
    for name, r in zip(BRIGHTON_PHOTOS[1:], regs, strict=True):
        if not r.accepted:
            raise ValueError(f"{name} does not register to {BRIGHTON_PHOTOS[0]}: {r.reason}")
    base = fit_baseline([(BRIGHTON_PHOTOS[0], imgs[0]), (BRIGHTON_PHOTOS[1], imgs[1])],
                        pairs=[(1, 0, regs[0].homography)])
    scores = change_scores(imgs[2], base.images[0], regs[1].homography)
    overlap = np.isfinite(scores)
    flagged = overlap & (scores >= base.threshold)
    return {"baseline": list(BRIGHTON_PHOTOS[:2]), "compared": BRIGHTON_PHOTOS[2],
            "threshold": base.threshold, "threshold_rule": base.card["threshold_rule"],
            "registration_rms_px": regs[1].rms_px, "overlap_px": int(overlap.sum()),
            "flagged_pct_of_overlap": 100 * float(flagged.sum() / max(overlap.sum(), 1))}


__all__ = ["BRIGHTON_PHOTOS", "brighton_pair_figures", "growth_site_figures"]
