"""Exceptions of the engine package.

One root, :class:`EngineError`, as ``rasterio.errors.RasterioError`` is rasterio's: ``except
EngineError`` catches every error the engine raises on purpose. Each error also subclasses a
builtin so callers can catch broadly (``OSError``, ``ValueError``), and each message says what
was expected, what was found, and what to do.

:class:`CRSError` is the one CRS error of CrackWatch, :class:`geodata.errors.CRSError` (a
:class:`geodata.errors.GeodataError`), re-exported here because the engine raises it too.
"""

from geodata.errors import CRSError

__all__ = [
    "BandLayoutError",
    "CRSError",
    "DataNotFoundError",
    "EngineError",
    "ImageReadError",
    "MaskShapeError",
    "ModelCardError",
    "ModelNotFoundError",
    "PairingError",
    "PretrainedWeightsError",
    "RasterReadError",
    "RasterRefusedError",
    "WeightsIntegrityError",
]


class EngineError(Exception):
    """Root of the engine's errors."""


class DataNotFoundError(EngineError, FileNotFoundError):
    """A data folder or file the caller named does not exist."""


class PairingError(EngineError, ValueError):
    """An image has no mask (or a mask has no image) with the same file stem."""


class ImageReadError(EngineError, OSError):
    """An image or mask file could not be decoded (corrupt, truncated, not an image)."""


class MaskShapeError(EngineError, ValueError):
    """A mask's size differs from its image's size."""


class ModelNotFoundError(EngineError, FileNotFoundError):
    """No shipped or user model of that name exists."""


class WeightsIntegrityError(EngineError, ValueError):
    """A weights file's SHA-256 does not match the one recorded in its model card."""


class ModelCardError(EngineError, ValueError):
    """A model card is missing a field or describes an unknown architecture."""


class RasterReadError(EngineError, OSError):
    """A raster cannot be read: missing, not a raster, truncated or zero-size."""


class RasterRefusedError(RasterReadError):
    """A raster is refused on purpose, not because it is broken: a format that can reference
    other files or URLs (VRT, HFA), or an absurd declared size (issue 30). Copying it again
    does not help; the message says what to do."""


class BandLayoutError(EngineError, ValueError):
    """A raster's bands or data type cannot be turned into RGB for the model."""


class PretrainedWeightsError(EngineError, ImportError):
    """ImageNet-pretrained encoder weights are unavailable (package missing, file changed) or
    were asked for an encoder that has none."""
