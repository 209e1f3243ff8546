"""Levels (:class:`Level`), profiles, confirmation modes and the observations the rules read
(:class:`Observation`). Part of :mod:`jobs.alerts` (see its docstring for the rules, levels and
lifecycle).
"""


from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from geodata.timestamps import utc_aware

SECONDS_PER_DAY = 86_400.0


class Level(IntEnum):
    """Alert level, ordered ``GREEN < YELLOW < ORANGE < RED`` (ints 0..3, so ``<``, ``max``
    and sorting work). ``str(level)`` is the lower-case name used in the database and UI."""

    GREEN = 0
    YELLOW = 1
    ORANGE = 2
    RED = 3

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:  # f"{level}" -> "red" on every Python version
        return format(str(self), spec)

    @property
    def label(self) -> str:
        """Lower-case name: ``'green'``, ``'yellow'``, ``'orange'`` or ``'red'``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: Level | str | int) -> Level:
        """A :class:`Level` from a level, its name (any case) or its int 0..3.

        Raises:
            ValueError: ``value`` names no level.
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(
            f"unknown alert level {value!r}: use one of 'green', 'yellow', 'orange', 'red' "
            "(or 0..3)"
        )


class Profile(StrEnum):
    """A site's monitoring profile: which rule set :func:`evaluate_site` applies."""

    SLOPE = "slope"
    STRUCTURE = "structure"


class Confirmation(StrEnum):
    """How a slope growth-rate exceedance is confirmed (:func:`confirm_slope_candidates`)."""

    EITHER = "either"  # consecutive surveys OR several cracks (default)
    CONSECUTIVE = "consecutive"  # the crack exceeds in N consecutive surveys of its lineage
    MULTI_CRACK = "multi_crack"  # N cracks of the site exceed in the same survey
    NONE = "none"  # no confirmation: every exceedance alerts at once


def _finite(name: str, value: Any, *, minimum: float | None = None,
            positive: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and out <= 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


@dataclass(frozen=True)
class Observation:
    """One survey's measurement of one crack track.

    Attributes:
        surveyed_at: survey acquisition time, timezone-aware (stored converted to UTC).
        length_m: skeleton length, metres.
        max_width_mm: maximum width, millimetres.
        area_m2: area, square metres.
        pixel_size_m: ground pixel size of that survey, metres; ``None`` to use the site-level
            ``pixel_size_m`` given to :func:`evaluate_site`.

    Raises:
        ValueError: a naive datetime, a negative or non-finite measurement, or a non-positive
            pixel size.
    """

    surveyed_at: datetime
    length_m: float
    max_width_mm: float
    area_m2: float = 0.0
    pixel_size_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "surveyed_at", utc_aware(self.surveyed_at, "surveyed_at"))
        for name in ("length_m", "max_width_mm", "area_m2"):
            object.__setattr__(self, name, _finite(name, getattr(self, name), minimum=0.0))
        if self.pixel_size_m is not None:
            object.__setattr__(
                self, "pixel_size_m", _finite("pixel_size_m", self.pixel_size_m, positive=True)
            )

    @classmethod
    def from_any(cls, value: Observation | Mapping[str, Any]) -> Observation:
        """An observation from itself or a mapping with the same keys (extra keys ignored).

        Raises:
            ValueError: a required key is missing or a value is invalid.
        """
        if isinstance(value, Observation):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(
                f"an observation must be an Observation or a mapping, got {type(value).__name__}"
            )
        missing = [k for k in ("surveyed_at", "length_m", "max_width_mm") if k not in value]
        if missing:
            raise ValueError(
                f"observation {dict(value)!r} lacks {', '.join(missing)}: give surveyed_at "
                "(aware datetime), length_m, max_width_mm and optionally area_m2, pixel_size_m"
            )
        return cls(
            surveyed_at=value["surveyed_at"],
            length_m=value["length_m"],
            max_width_mm=value["max_width_mm"],
            area_m2=value.get("area_m2", 0.0),
            pixel_size_m=value.get("pixel_size_m"),
        )


def _sorted_observations(track: Hashable, observations: Iterable[Any]) -> list[Observation]:
    obs = sorted((Observation.from_any(o) for o in observations), key=lambda o: o.surveyed_at)
    for a, b in zip(obs, obs[1:], strict=False):
        if a.surveyed_at == b.surveyed_at:
            raise ValueError(
                f"track {track!r} has two observations at {a.surveyed_at.isoformat()}: keep one "
                "observation per survey (a rate over zero days is undefined)"
            )
    return obs


def _days(a: datetime, b: datetime) -> float:
    """``b - a`` in days (float)."""
    return (b - a).total_seconds() / SECONDS_PER_DAY
