"""The smallest change the imagery resolves and the warnings for thresholds finer than that. Part
of :mod:`jobs.alerts` (see its docstring for the rules, levels and lifecycle).
"""


from __future__ import annotations

from geodata.severity import BRE251_CATEGORIES
from jobs.alerts.core import _finite
from jobs.alerts.thresholds import LevelThresholds, SlopeThresholds, StructureThresholds


def min_detectable_opening_rate_mm_per_day(pixel_size_m: float, interval_days: float) -> float:
    """Smallest opening rate the imagery resolves: one pixel of width change per interval.

    ``pixel_size_m * 1000 / interval_days`` (mm/day). Widths measured on a raster are
    quantised to whole pixels (:mod:`geodata.vectorise`), so a smaller change is
    indistinguishable from noise.

    Raises:
        ValueError: a non-positive or non-finite argument.
    """
    px = _finite("pixel_size_m", pixel_size_m, positive=True)
    days = _finite("interval_days", interval_days, positive=True)
    return px * 1000.0 / days


def min_detectable_length_rate_m_per_day(pixel_size_m: float, interval_days: float) -> float:
    """Smallest length growth rate the imagery resolves: one pixel per interval (m/day).

    Raises:
        ValueError: a non-positive or non-finite argument.
    """
    px = _finite("pixel_size_m", pixel_size_m, positive=True)
    days = _finite("interval_days", interval_days, positive=True)
    return px / days


def _below(thresholds: LevelThresholds, floor: float, what: str, unit: str,
           detail: str) -> list[str]:
    return [
        f"{what} {level} threshold {value:g} {unit} is below the smallest {what} this imagery "
        f"resolves (~{floor:.3g} {unit}, one pixel per interval: {detail}); the {level} level "
        "from it is not backed by the imagery: use finer imagery, longer survey intervals, or "
        "raise the threshold"
        for level, value in thresholds.items() if value < floor
    ]


#: Key of the warnings that concern every rule of a profile (the pixel size is unknown).
ALL_RULES = "*"


def slope_resolution_warnings_by_rule(thresholds: SlopeThresholds, pixel_size_m: float | None,
                                      interval_days: float) -> dict[str, list[str]]:
    """:func:`slope_resolution_warnings` keyed by the rule id they concern
    (``slope.opening_rate``, ``slope.length_rate``; :data:`ALL_RULES` for every rule), so a
    rule takes its own warnings by id (:data:`jobs.alerts.rules.RULES`), not by matching text.

    Raises:
        ValueError: a non-positive or non-finite pixel size or interval.
    """
    if pixel_size_m is None:
        return {ALL_RULES: ["pixel size unknown: the rate thresholds could not be checked "
                            "against the imagery resolution; record the survey's pixel size"]}
    detail = f"{pixel_size_m:g} m pixels over {interval_days:.3g} days"
    return {
        "slope.opening_rate": _below(
            thresholds.opening_rate_mm_per_day,
            min_detectable_opening_rate_mm_per_day(pixel_size_m, interval_days),
            "opening rate", "mm/day", detail),
        "slope.length_rate": _below(
            thresholds.length_rate_m_per_day,
            min_detectable_length_rate_m_per_day(pixel_size_m, interval_days),
            "length growth rate", "m/day", detail),
    }


def slope_resolution_warnings(thresholds: SlopeThresholds, pixel_size_m: float | None,
                              interval_days: float) -> list[str]:
    """Warnings for every slope rate threshold finer than one pixel per ``interval_days``.

    See :func:`min_detectable_opening_rate_mm_per_day` and
    :func:`min_detectable_length_rate_m_per_day`. ``pixel_size_m=None`` gives one warning
    that the resolution could not be checked.

    Raises:
        ValueError: a non-positive or non-finite pixel size or interval.
    """
    by_rule = slope_resolution_warnings_by_rule(thresholds, pixel_size_m, interval_days)
    return [w for warns in by_rule.values() for w in warns]


def structure_resolution_warnings_by_rule(thresholds: StructureThresholds,
                                          pixel_size_m: float | None) -> dict[str, list[str]]:
    """:func:`structure_resolution_warnings` keyed by rule id (``structure.bre251``,
    ``structure.width_growth``; :data:`ALL_RULES` for every rule).

    Raises:
        ValueError: a non-positive or non-finite pixel size.
    """
    if pixel_size_m is None:
        return {ALL_RULES: ["pixel size unknown: the width thresholds could not be checked "
                            "against the imagery resolution; record the survey's pixel size"]}
    px_mm = _finite("pixel_size_m", pixel_size_m, positive=True) * 1000.0
    out: dict[str, list[str]] = {"structure.bre251": [], "structure.width_growth": []}
    bounds = [upper for _c, _n, upper in BRE251_CATEGORIES[:-2] if upper < px_mm]
    if bounds:
        last = max(c for c, _n, upper in BRE251_CATEGORIES if upper in bounds) + 1
        out["structure.bre251"].append(
            f"BRE 251 width bound(s) {', '.join(f'{b:g}' for b in bounds)} mm are below one "
            f"pixel ({px_mm:.3g} mm): categories 0..{last} cannot be told apart in this imagery "
            "(widths are whole pixels); use closer photos for a category below "
            f"{last + 1}"
        )
    if thresholds.width_growth_mm < px_mm:
        out["structure.width_growth"].append(
            f"width growth threshold {thresholds.width_growth_mm:g} mm is below one pixel "
            f"({px_mm:.3g} mm): growth alerts from it are not backed by the imagery; raise it "
            "to at least one pixel or use closer photos"
        )
    return out


def structure_resolution_warnings(thresholds: StructureThresholds,
                                  pixel_size_m: float | None) -> list[str]:
    """Warnings for BRE 251 width bounds and the growth threshold finer than one pixel.

    Raises:
        ValueError: a non-positive or non-finite pixel size.
    """
    by_rule = structure_resolution_warnings_by_rule(thresholds, pixel_size_m)
    return [w for warns in by_rule.values() for w in warns]
