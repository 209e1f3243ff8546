"""The collar of an orthomosaic or photo: saturated white or black pixels that are valid by
the file's mask but hold no ground, at the edge of the data.

Photogrammetry exports (WebODM/ODM, Metashape, Pix4D) often blend the footprint's edge into
a white or black fringe that the alpha band still marks opaque (the WebODM fixture
orthophoto has a 1-20 px white fringe of RGB 255 with alpha 255); orthomosaics exported
without nodata have a whole black or white collar; photos can carry a black frame. The step
from ground to the collar is the strongest edge in the image, and crack models fire on it
(issue 25: all cracks of the WebODM park ran along it). Such pixels are treated as nodata:
a pixel is collar when every band is >= :data:`WHITE_MIN` or every band is <= :data:`BLACK_MAX`
*and* it is 8-connected, through such pixels, to invalid data or to the frame of the image.
A white wall or a black gap inside the image is never collar: it does not reach the edge of
the data.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["BLACK_MAX", "WHITE_MIN", "collar_mask"]

#: A pixel with every band at or above this (uint8) is saturated white.
WHITE_MIN = 250
#: A pixel with every band at or below this (uint8) is saturated black.
BLACK_MAX = 5

_EIGHT = np.ones((3, 3), bool)


def collar_mask(rgb: np.ndarray, valid: np.ndarray | None = None,
                frame: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> np.ndarray:
    """Collar pixels of ``rgb`` (see the module docstring).

    Args:
        rgb: ``(3, rows, cols)`` uint8 (bands first, as rasterio reads them).
        valid: ``(rows, cols)`` bool, True where the file's mask holds data; None: all valid.
        frame: which sides of the array are the frame of the whole image (top, bottom, left,
            right); a window inside an orthomosaic passes False for its inner sides, whose
            pixels continue in the next window.

    Returns:
        ``(rows, cols)`` bool, True on collar pixels (never on invalid ones).

    Raises:
        ValueError: ``rgb`` is not ``(3, rows, cols)`` uint8 or ``valid`` has another shape.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (3, rows, cols) uint8, got {rgb.shape} {rgb.dtype}")
    rows, cols = rgb.shape[1:]
    valid = np.ones((rows, cols), bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != (rows, cols):
        raise ValueError(f"valid must be {(rows, cols)}, got {valid.shape}")
    lo, hi = rgb.min(axis=0), rgb.max(axis=0)
    saturated = valid & ((lo >= WHITE_MIN) | (hi <= BLACK_MAX))
    if not saturated.any():
        return saturated
    # seeds: saturated pixels next to invalid data or on a frame side
    seed = saturated & ndimage.binary_dilation(~valid, _EIGHT)
    top, bottom, left, right = frame
    for on, index in ((top, np.s_[0, :]), (bottom, np.s_[-1, :]), (left, np.s_[:, 0]),
                      (right, np.s_[:, -1])):
        if on:
            seed[index] |= saturated[index]
    if not seed.any():
        return seed
    return ndimage.binary_propagation(seed, structure=_EIGHT, mask=saturated)
