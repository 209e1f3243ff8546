"""Why a survey's cracks should not be trusted as they stand (issue 25): the warnings the
Overview and the Site page show next to the numbers.

A processed survey is *untrusted* when

* its pixels are coarser than :data:`geodata.severity.MAX_RESOLVED_PIXEL_M` (5 cm): no crack
  width is resolved, its cracks are stored as ``unresolved`` and no alert rule ran;
* some of its photos were refused by the photo check as blurred or black
  (:func:`geodata.registration.photo_quality`): their cracks are stored but not tracked, and
  a blurred photo's cracks are mostly texture;
* less than :data:`MIN_OBSERVABLE_FRACTION` of its ground is observable (the rest is
  vegetation, :mod:`engine.observable`): absence of cracks there means nothing;
* its model is the shipped model of another site profile (``engine/profile_models.json``):
  e.g. the concrete-trained structure model on a slope, where its accuracy was never measured.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.severity import MAX_RESOLVED_PIXEL_M
from geodata.store.engine import session_scope
from geodata.store.models import Crack, InferenceRun, PhotoRegistration, Site, Survey

__all__ = ["MIN_OBSERVABLE_FRACTION", "survey_trust_warnings"]

#: A survey with less observable ground than this (share of valid pixels not vegetation) is
#: flagged: most of what it covers cannot show a crack.
MIN_OBSERVABLE_FRACTION = 0.5
#: The profile -> shipped model table (the file :mod:`engine.profiles` reads; read here as
#: JSON so that the store does not import the engine).
PROFILE_MODELS_FILE = Path(__file__).resolve().parents[2] / "engine" / "profile_models.json"


def _profile_models() -> dict[str, str]:
    try:
        table = json.loads(PROFILE_MODELS_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}

_BAD_PHOTO_WORDS = ("blurred", "black")


def survey_trust_warnings(bind: Engine | Session, site_id: int | None = None
                          ) -> dict[int, list[str]]:
    """Warnings per processed survey (those with a succeeded inference run) of ``site_id``
    (every site when None): ``{survey_id: [sentence, ...]}``; a survey without warnings is
    absent. Sentences are plain text (no Markdown)."""
    with session_scope(bind) as s:
        q = (select(Survey.id, Survey.pixel_size_m, InferenceRun.id,
                    InferenceRun.observable_fraction, InferenceRun.model_name, Site.profile)
             .join(InferenceRun, InferenceRun.survey_id == Survey.id)
             .join(Site, Site.id == Survey.site_id)
             .where(InferenceRun.status == "succeeded")
             .order_by(InferenceRun.id))
        if site_id is not None:
            q = q.where(Survey.site_id == site_id)
        surveys = s.execute(q).all()
        refused = s.execute(
            select(PhotoRegistration.survey_id, PhotoRegistration.image_name,
                   PhotoRegistration.reason)
            .where(PhotoRegistration.status == "refused",
                   *([PhotoRegistration.site_id == site_id] if site_id is not None else []))
        ).all()
        crack_counts = {(run, name): n for run, name, n in s.execute(
            select(Crack.run_id, Crack.image_name, func.count(Crack.id))
            .where(Crack.image_name.is_not(None),
                   *([Crack.site_id == site_id] if site_id is not None else []))
            .group_by(Crack.run_id, Crack.image_name)).all()}
    bad: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for survey_id, name, reason in refused:
        if reason and any(w in reason for w in _BAD_PHOTO_WORDS):
            bad[survey_id].append((name, reason))
    shipped = {model: profile for profile, model in _profile_models().items()}
    out: dict[int, list[str]] = {}
    for survey_id, pixel_m, run_id, observable, model_name, profile in surveys:
        warnings = []
        if pixel_m and pixel_m > MAX_RESOLVED_PIXEL_M:
            warnings.append(
                f"Pixels of {pixel_m:.3g} m are coarser than {MAX_RESOLVED_PIXEL_M * 100:g} cm: "
                f"no crack width is resolved. Its cracks are marked 'unresolved' (no BRE 251 "
                f"category) and no alert rule ran; what the model marks at this scale is more "
                f"likely a path, kerb or shadow than a crack.")
        photos = bad.get(survey_id, [])
        if photos:
            n_cracks = sum(crack_counts.get((run_id, name), 0) for name, _ in photos)
            names = ", ".join(f"{name} ({'blurred' if 'blurred' in why else 'black'})"
                              for name, why in photos[:5])
            warnings.append(
                f"{len(photos)} photo(s) refused by the photo check: {names}. Their "
                f"{n_cracks} crack(s) are stored but not tracked and are not to be trusted "
                f"(a blurred photo's cracks are mostly texture).")
        if observable is not None and observable < MIN_OBSERVABLE_FRACTION:
            warnings.append(
                f"Only {observable:.0%} of the ground is observable; the rest is vegetation, "
                f"where no crack can be seen and none is reported. No crack there is not "
                f"evidence of no crack.")
        other = shipped.get(model_name)
        if other and profile and other != profile:
            warnings.append(
                f"Model {model_name} is the {other} profile's model, run on a {profile} site: "
                f"its accuracy was measured on {other} imagery only.")
        if warnings:
            out[survey_id] = warnings  # the latest run's (runs in id order)
        else:
            out.pop(survey_id, None)
    return out
