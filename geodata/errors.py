"""Errors raised by ``geodata``. Each subclasses a builtin so callers can catch broadly.

Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations


class CRSError(ValueError):
    """A CRS is missing, unsuitable for measuring (geographic), or does not match."""


class PhotoMetadataError(ValueError):
    """A photo's EXIF/XMP is missing or corrupt where it is needed."""


class GSDError(ValueError):
    """A ground sample distance cannot be derived and none was given."""


class StoreError(RuntimeError):
    """The crack store cannot do what was asked (no schema yet, unreachable, bad record)."""


class RecordNotFoundError(LookupError):
    """A site, survey, run or track that was asked for is not in the store."""


class SiteBusyError(StoreError):
    """Another live process is running the site's pipeline (the site lock is held).

    ``owner`` is ``host:pid`` of the holder, ``since`` when it took the lock (UTC).
    """

    def __init__(self, message: str, *, owner: str | None = None, since: object = None) -> None:
        super().__init__(message)
        self.owner, self.since = owner, since
