"""Timestamps: every time CrackWatch stores or compares is a timezone-aware datetime in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["duration_text", "utc_aware"]


def utc_aware(value: Any, name: str) -> datetime:
    """``value`` converted to UTC.

    Raises:
        TypeError: ``value`` is not a datetime.
        ValueError: ``value`` has no timezone (naive): the message says how to give one.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}={value.isoformat()} has no timezone; pass an aware datetime, e.g. "
            f"value.replace(tzinfo=ZoneInfo(site timezone)), or tzinfo=UTC when it is UTC")
    return value.astimezone(UTC)


def duration_text(seconds: float) -> str:
    """A duration for people: whole minutes below 2 h (``"45 min"``), hours to one decimal
    below 48 h (``"25.5 h"``), else days (``"3.2 days"``)."""
    minutes = int(round(seconds / 60.0))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60.0
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
