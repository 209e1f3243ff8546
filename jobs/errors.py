"""The root of the errors ``jobs`` raises on purpose, as ``rasterio.errors.RasterioError`` is
rasterio's.

The errors themselves live beside the code that raises them and keep their import paths:
:class:`jobs.notify.NotificationError` (``OSError``), :class:`jobs.notify.NotifierConfigError`
(``ValueError``), :class:`jobs.bench_peer.PeerUnavailableError` (``RuntimeError``). Each also
subclasses that builtin, so callers can catch broadly. The errors of the layers below have
roots of their own: :class:`engine.errors.EngineError`, :class:`geodata.errors.GeodataError`.
"""

from __future__ import annotations

__all__ = ["JobsError"]


class JobsError(Exception):
    """Root of the errors raised by ``jobs`` (the pipeline, notifiers, benchmarks)."""
