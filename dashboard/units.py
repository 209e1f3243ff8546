"""Measurements as a person reads them (issue 28, item 6: "a 5 mm crack shows as 0.005 m
and areas as 0.000008 m2"): widths in mm, lengths in m or mm by size, areas in m2 or cm2 by
size, the same on every page. The store keeps SI values with the unit in the column name
(``length_m``, ``max_width_mm``, ``area_m2``); these only format them."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["area_text", "length_text", "width_text"]


def _missing(value: Any) -> bool:
    try:
        return value is None or not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def length_text(length_m: Any, signed: bool = False) -> str:
    """``"1.24 m"`` from 1 m up, ``"85 mm"`` below (``"-"`` for no value); ``signed``: a
    change, ``"+85 mm"``."""
    if _missing(length_m):
        return "-"
    v = float(length_m)
    sign = "+" if signed else ""
    return f"{v:{sign},.2f} m" if abs(v) >= 1.0 else f"{v * 1000:{sign},.0f} mm"


def width_text(width_mm: Any, signed: bool = False) -> str:
    """``"3.4 mm"`` (one decimal; two below 1 mm: ``"0.35 mm"``); ``signed``: a change,
    ``"+0.40 mm"``."""
    if _missing(width_mm):
        return "-"
    v = float(width_mm)
    sign = "+" if signed else ""
    return f"{v:{sign},.2f} mm" if abs(v) < 1.0 else f"{v:{sign},.1f} mm"


def area_text(area_m2: Any) -> str:
    """``"1.20 m²"`` from 0.1 m² up, ``"8.0 cm²"`` below (1 m² = 10,000 cm²)."""
    if _missing(area_m2):
        return "-"
    v = float(area_m2)
    return f"{v:,.2f} m²" if abs(v) >= 0.1 else f"{v * 1e4:,.1f} cm²"
