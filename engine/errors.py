"""Exceptions of the engine package.

Each subclasses a builtin so callers can catch broadly (``OSError``, ``ValueError``), and each
message says what was expected, what was found, and what to do.
"""


class DataNotFoundError(FileNotFoundError):
    """A data folder or file the caller named does not exist."""


class PairingError(ValueError):
    """An image has no mask (or a mask has no image) with the same file stem."""


class ImageReadError(OSError):
    """An image or mask file could not be decoded (corrupt, truncated, not an image)."""


class MaskShapeError(ValueError):
    """A mask's size differs from its image's size."""


class ModelNotFoundError(FileNotFoundError):
    """No shipped or user model of that name exists."""


class WeightsIntegrityError(ValueError):
    """A weights file's SHA-256 does not match the one recorded in its model card."""


class ModelCardError(ValueError):
    """A model card is missing a field or describes an unknown architecture."""


class RasterReadError(OSError):
    """A raster cannot be read: missing, not a raster, truncated or zero-size."""


class BandLayoutError(ValueError):
    """A raster's bands or data type cannot be turned into RGB for the model."""


class CRSError(ValueError):
    """A raster has no CRS (and none was given) or a CRS unsuitable for measuring."""


class PretrainedWeightsError(ImportError):
    """ImageNet-pretrained encoder weights are unavailable (package missing, file changed) or
    were asked for an encoder that has none."""
