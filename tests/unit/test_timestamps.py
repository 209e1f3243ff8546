"""geodata.timestamps: the one aware-UTC check and the duration text of alert messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from geodata.timestamps import duration_text, utc_aware


def test_utc_aware_converts_and_refuses_naive_or_non_datetimes():
    cet = timezone(timedelta(hours=1))
    assert utc_aware(datetime(2026, 1, 1, 12, tzinfo=cet), "t") == datetime(2026, 1, 1, 11,
                                                                             tzinfo=UTC)
    with pytest.raises(ValueError, match="acquired_at=2026-01-01T12:00:00 has no timezone"):
        utc_aware(datetime(2026, 1, 1, 12), "acquired_at")
    with pytest.raises(TypeError, match="t must be a datetime, got str"):
        utc_aware("2026-01-01", "t")


@pytest.mark.parametrize(("seconds", "text"), [
    (60, "1 min"), (119 * 60, "119 min"), (120 * 60, "2.0 h"), (25.5 * 3600, "25.5 h"),
    (48 * 3600, "2.0 days"), (3.2 * 86400, "3.2 days")])
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text
