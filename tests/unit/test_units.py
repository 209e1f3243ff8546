"""Units a person reads (issue 28, item 6)."""

import math

from dashboard.units import area_text, length_text, width_text


def test_lengths_in_m_or_mm_by_size():
    assert length_text(1.2449) == "1.24 m"
    assert length_text(0.085) == "85 mm"
    assert length_text(0.005) == "5 mm"
    assert length_text(None) == "-" and length_text(math.nan) == "-"


def test_widths_in_mm():
    assert width_text(5.0) == "5.0 mm"
    assert width_text(0.35) == "0.35 mm"


def test_areas_in_m2_or_cm2_by_size():
    assert area_text(0.000008) == "0.1 cm²"
    assert area_text(0.0123) == "123.0 cm²"
    assert area_text(2.5) == "2.50 m²"


def test_changes_are_signed():
    assert length_text(0.4, signed=True) == "+400 mm"
    assert length_text(-1.5, signed=True) == "-1.50 m"
    assert width_text(2.0, signed=True) == "+2.0 mm"
    assert width_text(0.0, signed=True) == "+0.00 mm"
