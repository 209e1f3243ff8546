"""Cached imagery for the dashboard pages: orthomosaic overviews and chips, photos with
their cracks outlined, crops of a view's frame from registered photos.

Each loader finds the survey's file on this machine (:func:`imagery_path`) and caches its
result with ``st.cache_data`` keyed by the path and the file's modification time, so a
replaced file is read again. Loaders that may fail return ``(result or None, why not)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.common import engine, load_survey_cracks
from dashboard.imagery import (
    Overview,
    orthomosaic_chip,
    orthomosaic_overview,
    photo_chip,
    photo_with_cracks,
    registered_photo_chip,
    resolve_source,
)
from geodata import views
from geodata.settings import StoreSettings

__all__ = [
    "imagery_path",
    "load_chip",
    "load_overview",
    "load_photo_with_cracks",
    "load_view_chip",
]


def _search_dirs() -> list[Path]:
    dirs = []
    try:
        dirs.append(StoreSettings().data_dir.expanduser())
    except Exception:  # noqa: BLE001 - settings are optional for finding imagery
        pass
    return dirs


def imagery_path(source_path: str, image_name: str | None = None) -> Path | None:
    """The survey's imagery file on this machine, or None."""
    return resolve_source(source_path, image_name, search=_search_dirs())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def _overview(path: str, mtime: float, max_size_px: int) -> Overview:
    return orthomosaic_overview(path, max_size_px=max_size_px)


def load_overview(path: Path, max_size_px: int = 1024) -> tuple[Overview | None, str | None]:
    """A cached imagery overview (keyed by path and modification time) or an error text."""
    try:
        return _overview(str(path), _mtime(path), max_size_px), None
    except Exception as exc:  # noqa: BLE001 - any unreadable raster: explain, draw no overlay
        return None, f"cannot draw the imagery {path.name}: {exc}"


@st.cache_data(show_spinner=False, max_entries=16)
def _photo_with_cracks(path: str, mtime: float, url: str, survey_id: int, image_name: str
                       ) -> bytes:
    from dashboard.maps import SEVERITY_COLOURS

    cracks = load_survey_cracks(url, survey_id, "image")
    on_photo = cracks[cracks["image_name"] == image_name]
    colours = [SEVERITY_COLOURS.get(v, "#ffffff") for v in on_photo["severity"]]
    return photo_with_cracks(path, list(on_photo.geometry), colours=colours)


def load_photo_with_cracks(path: Path, url: str, survey_id: int, image_name: str) -> bytes:
    """A photo with its image-space cracks outlined in their severity colour, as on the map
    (cached)."""
    return _photo_with_cracks(str(path), _mtime(path), url, survey_id, image_name)


@st.cache_data(show_spinner=False, max_entries=64)
def _chip(path: str, mtime: float, bounds: tuple[float, float, float, float],
          crs_epsg: int | None, outlines_wkb: tuple[bytes, ...]) -> bytes:
    import shapely

    outlines = [shapely.from_wkb(b) for b in outlines_wkb]
    if crs_epsg is None:
        return photo_chip(path, bounds, outlines=outlines)
    return orthomosaic_chip(path, bounds, crs_epsg=crs_epsg, outlines=outlines)


def load_chip(path: Path, bounds: tuple[float, float, float, float], crs_epsg: int | None,
              outlines: list[Any]) -> tuple[bytes | None, str | None]:
    """A before/after image chip (cached) or an error text. ``crs_epsg`` None: a photo."""
    import shapely

    try:
        return _chip(str(path), _mtime(path), tuple(float(v) for v in bounds), crs_epsg,
                     tuple(shapely.to_wkb(g) for g in outlines if g is not None)), None
    except Exception as exc:  # noqa: BLE001 - unreadable imagery: explain, no chip
        return None, f"cannot crop {path.name}: {exc}"


@st.cache_data(show_spinner=False, max_entries=64)
def _view_chip(url: str, survey_id: int, image_name: str, path: str, mtime: float,
               bounds: tuple[float, float, float, float], crack_ids: tuple[int, ...]) -> bytes:
    found = views.photo_in_view(engine(url), survey_id, image_name)
    assert found is not None
    _stored, h, polys = found
    return registered_photo_chip(path, h, bounds,
                                 outlines=[polys[i] for i in crack_ids if i in polys])


def load_view_chip(url: str, survey_id: int, image_name: str,
                   bounds: tuple[float, float, float, float], crack_ids: list[int]
                   ) -> tuple[bytes | None, str | None]:
    """A crop of a view's frame from one registered photo (cached), with the given cracks
    outlined, or (None, why not)."""
    found = views.photo_in_view(engine(url), survey_id, image_name)
    if found is None:
        return None, f"{image_name} is in no view"
    path, _h, _p = found
    local = imagery_path(str(path.parent), path.name) or (path if path.is_file() else None)
    if local is None:
        return None, f"photo {image_name} not found on this machine ({path})"
    try:
        return _view_chip(url, survey_id, image_name, str(local), _mtime(local),
                          tuple(float(v) for v in bounds), tuple(int(i) for i in crack_ids)
                          ), None
    except Exception as exc:  # noqa: BLE001 - unreadable photo: explain, no chip
        return None, f"cannot crop {image_name}: {exc}"
