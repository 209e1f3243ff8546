"""GSD of a photo in a view and the user's view scale (rules in :mod:`geodata.views`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geodata.registration import local_scale
from geodata.store.models import PhotoView
from geodata.views.common import SurveyPhoto

__all__ = ["photo_gsd", "set_view_scale"]


def photo_gsd(photo: SurveyPhoto, view: PhotoView, h: np.ndarray
              ) -> tuple[float | None, str, float | None]:
    """(GSD at the photo centre, its source, the view scale it follows or None)."""
    centre = ((photo.width_px - 1) / 2.0, (photo.height_px - 1) / 2.0)
    k = local_scale(h, centre)
    through = "" if abs(k - 1.0) < 1e-9 else f" x homography scale {k:.3f}"
    user = view.scale_m_per_px is not None and (view.scale_source or "").startswith("user")
    if user:
        return (view.scale_m_per_px * k,
                f"view {view.id} scale set by the user ({view.scale_m_per_px * 1000:g} mm/px)"
                f"{through}", view.scale_m_per_px)
    if photo.gsd_given and photo.own_gsd_m:
        return photo.own_gsd_m, photo.own_gsd_source, None
    if view.scale_m_per_px is not None:
        return (view.scale_m_per_px * k,
                f"view {view.id} scale ({view.scale_m_per_px * 1000:g} mm/px, "
                f"{view.scale_source}){through}", view.scale_m_per_px)
    if photo.own_gsd_m:
        return photo.own_gsd_m, photo.own_gsd_source, None
    return None, photo.own_gsd_source or "no GSD", None


def set_view_scale(bind: Any, view_id: int, scale_m_per_px: float | None) -> PhotoView:
    """Set (or with None clear) a view's scale, metres per reference pixel, as given by the
    user (e.g. from a ruler or a known dimension in the reference photo). It wins over every
    other GSD of photos in that view from the next run of their surveys on.

    Raises:
        RecordNotFoundError: no such view. ValueError: not a positive finite number.
    """
    from geodata.errors import RecordNotFoundError
    from geodata.store.engine import session_scope

    if scale_m_per_px is not None and not (isinstance(scale_m_per_px, int | float)
                                           and math.isfinite(scale_m_per_px)
                                           and scale_m_per_px > 0):
        raise ValueError(f"a view scale is a positive number of metres per pixel, got "
                         f"{scale_m_per_px!r} (0.25 mm/px is 0.00025)")
    with session_scope(bind, write=True) as s:
        v = s.get(PhotoView, int(view_id))
        if v is None:
            raise RecordNotFoundError(f"no photo view with id {view_id}; list them with "
                                      f"`crackwatch view list --site NAME`")
        v.scale_m_per_px = None if scale_m_per_px is None else float(scale_m_per_px)
        v.scale_source = None if scale_m_per_px is None else "user"
        s.flush()
        s.expunge(v)
        return v
