"""Errors raised by ``geodata``.

One root, :class:`GeodataError`, as ``rasterio.errors.RasterioError`` is rasterio's: ``except
GeodataError`` catches every error geodata raises on purpose. Each error also subclasses a
builtin so callers can catch broadly (``ValueError``, ``LookupError``...). Messages say what
was expected, what was found, and what to do.

:class:`CRSError` is CrackWatch's only CRS error; :mod:`engine.errors` re-exports it.
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "GSDError",
    "GeodataError",
    "PhotoMetadataError",
    "RecordNotFoundError",
    "SiteBusyError",
    "StoreError",
]


class GeodataError(Exception):
    """Root of geodata's errors."""


class CRSError(GeodataError, ValueError):
    """A CRS is missing (a raster without one and none given), unsuitable for measuring
    (geographic, not projected), unknown, or does not match the site's."""


class PhotoMetadataError(GeodataError, ValueError):
    """A photo's EXIF/XMP is missing or corrupt where it is needed."""


class GSDError(GeodataError, ValueError):
    """A ground sample distance cannot be derived and none was given."""


class StoreError(GeodataError, RuntimeError):
    """The crack store cannot do what was asked (no schema yet, unreachable, bad record)."""


class RecordNotFoundError(GeodataError, LookupError):
    """A site, survey, run or track that was asked for is not in the store."""


class SiteBusyError(StoreError):
    """Another live process is running the site's pipeline (the site lock is held).

    ``owner`` is ``host:pid`` of the holder, ``since`` when it took the lock (UTC).
    """

    def __init__(self, message: str, *, owner: str | None = None, since: object = None) -> None:
        super().__init__(message)
        self.owner, self.since = owner, since
