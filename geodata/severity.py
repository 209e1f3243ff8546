"""BRE Digest 251 damage categories of a crack from its width: the one severity table.

Used by the store (``Crack.severity``) and by the structure alert rules (jobs.alerts).
"""

from __future__ import annotations

import math

__all__ = ["BRE251_CATEGORIES", "MAX_RESOLVED_PIXEL_M", "UNRESOLVED", "bre251_category",
           "bre251_name"]

#: Coarsest pixel (m) at which a crack width is resolved. The shipped models learned cracks
#: from imagery of roughly 0.1-5 mm per pixel (DeepCrack, UAV75, masonry patches); at 5 cm per
#: pixel a crack narrower than 5 cm is below one pixel and every BRE Digest 251 width class
#: (the widest bound is 25 mm) is unresolved. ``jobs.pipeline.MAX_ALERT_PIXEL_SIZE_M`` (no
#: alert rule on coarser surveys) is this value.
MAX_RESOLVED_PIXEL_M = 0.05

#: ``Crack.severity`` of a crack found on pixels too coarse to resolve a crack width (coarser
#: than :data:`MAX_RESOLVED_PIXEL_M`). Its
#: width columns then hold only the pixel-quantised size of the blob (at least one pixel),
#: never a crack width: the dashboard and exports say "not resolved" instead of a category.
UNRESOLVED = "unresolved"

#: BRE Digest 251 ("Assessment of damage in low-rise buildings", Building Research
#: Establishment), damage category by crack width: (category, name, upper width bound in mm,
#: inclusive; ``inf`` for the last). Category 0 is "hairline cracks of less than about 0.1 mm".
BRE251_CATEGORIES: tuple[tuple[int, str, float], ...] = (
    (0, "negligible", 0.1),
    (1, "very slight", 1.0),
    (2, "slight", 5.0),
    (3, "moderate", 15.0),
    (4, "severe", 25.0),
    (5, "very severe", math.inf),
)


def bre251_category(max_width_mm: float) -> int:
    """BRE Digest 251 damage category (0..5) of a crack of width ``max_width_mm`` (mm).

    Source: BRE Digest 251, "Assessment of damage in low-rise buildings", Building Research
    Establishment (Table 1, classification of visible damage by ease of repair, with typical
    crack widths): 0 negligible, width < 0.1 mm; 1 very slight, up to 1 mm; 2 slight, up to
    5 mm; 3 moderate, 5 to 15 mm; 4 severe, 15 to 25 mm; 5 very severe, over 25 mm. Upper
    bounds are inclusive (1.0 mm is category 1, 5.0 mm category 2, ...), the 0.1 mm bound is
    exclusive ("less than 0.1 mm" is 0). The Digest also weighs the number of cracks and
    other damage; width alone is what imagery gives, so this is the width-only category.

    Raises:
        ValueError: ``max_width_mm`` is negative or not finite.
    """
    w = float(max_width_mm)
    if not (math.isfinite(w) and w >= 0):
        raise ValueError(f"max_width_mm must be a finite width >= 0 mm, got {max_width_mm!r}")
    if w < 0.1:
        return 0
    for category, _name, upper in BRE251_CATEGORIES[1:]:
        if w <= upper:
            return category
    return 5  # pragma: no cover - inf bound catches all


def bre251_name(max_width_mm: float) -> str:
    """The category name (``"negligible"`` ... ``"very severe"``) of :func:`bre251_category`."""
    return BRE251_CATEGORIES[bre251_category(max_width_mm)][1]
