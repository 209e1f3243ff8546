"""What the chart of an alert draws: the track series its rule reads and the site's level
thresholds of that rule, kept in the alert's ``details["chart"]`` (issue 28: "its series with
the rule's threshold drawn"). The dashboard imports ``geodata`` only, so the thresholds the
rule fired against travel with the alert rather than being recomputed there. Part of
:mod:`jobs.alerts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geodata.severity import BRE251_CATEGORIES
from jobs.alerts.core import Level, Profile
from jobs.alerts.site import _thresholds_of
from jobs.alerts.thresholds import SlopeThresholds, StructureThresholds

#: Rule id -> (track series of :func:`geodata.queries.track_timeseries`, its unit, label).
RULE_SERIES: dict[str, tuple[str, str, str]] = {
    "slope.opening_rate": ("max_width_rate_mm_per_day", "mm/day", "Opening rate (mm/day)"),
    "slope.length_rate": ("length_rate_m_per_day", "m/day", "Length growth rate (m/day)"),
    "structure.bre251": ("max_width_mm", "mm", "Max width (mm)"),
    "structure.width_growth": ("delta_max_width_mm", "mm",
                               "Width change since the previous survey (mm)"),
}


def rule_chart(profile: Profile | str, thresholds: Mapping[str, Any] | None,
               rule: str) -> dict[str, Any] | None:
    """The chart of rule ``rule`` at a site: ``{"series", "unit", "title", "lines"}`` where
    ``lines`` is a list of ``{"level", "value", "label"}`` horizontal threshold lines in the
    series' unit; None for a rule without a per-track series (new cracks, acceleration, the
    inverse-velocity forecast: their numbers are on the alert itself).

    Slope rates: the site's yellow/orange/red thresholds of the rule
    (:class:`~jobs.alerts.thresholds.SlopeThresholds`). BRE Digest 251: the lower width bound
    of the first category that reaches each level (the site's ``category_levels``; bounds
    from :data:`geodata.severity.BRE251_CATEGORIES`). Width growth: the one
    ``width_growth_mm`` line (it raises the level by one).

    Args:
        profile: the site's profile.
        thresholds: the site's stored thresholds of that profile (None: defaults).
        rule: an alert rule id (:data:`jobs.alerts.RULES`).

    Raises:
        ValueError: invalid stored thresholds (as :func:`jobs.alerts.evaluate_site`).
    """
    if rule not in RULE_SERIES:
        return None
    series, unit, title = RULE_SERIES[rule]
    th = _thresholds_of(Profile(str(profile)), thresholds)
    lines: list[dict[str, Any]] = []
    if isinstance(th, SlopeThresholds) and rule.startswith("slope."):
        levels = (th.opening_rate_mm_per_day if rule == "slope.opening_rate"
                  else th.length_rate_m_per_day)
        lines = [{"level": str(lv), "value": v, "label": f"{lv} {v:g} {unit}"}
                 for lv, v in levels.items()]
    elif isinstance(th, StructureThresholds) and rule == "structure.bre251":
        seen: set[Level] = set()
        for category, level in enumerate(th.category_levels):
            if level is Level.GREEN or level in seen or category == 0:
                continue
            seen.add(level)
            lower = BRE251_CATEGORIES[category - 1][2]  # exclusive: wider than this
            lines.append({"level": str(level), "value": lower,
                          "label": f"{level}: BRE 251 category {category} (> {lower:g} mm)"})
    elif isinstance(th, StructureThresholds) and rule == "structure.width_growth":
        lines = [{"level": "yellow", "value": th.width_growth_mm,
                  "label": f"+{th.width_growth_mm:g} mm raises the level by one"}]
    else:
        return None
    return {"series": series, "unit": unit, "title": title, "lines": lines}
