"""The declarative base of the store's tables, the value sets their check constraints
allow, and the column helpers they share (see :mod:`geodata.store.models`)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

from geodata.levels import ALERT_LEVELS, LEVEL_COLOURS  # the levels the alert table checks

__all__ = [
    "ALERT_LEVELS",
    "COORDINATE_SPACES",
    "JOB_STATUSES",
    "LEVEL_COLOURS",
    "NAMING_CONVENTION",
    "NOTIFICATION_STATUSES",
    "PROFILES",
    "REGISTRATION_STATUSES",
    "RUN_STATUSES",
    "SOURCE_TYPES",
    "TRACK_EVENTS",
    "TRACK_STATUSES",
    "Base",
    "JSONType",
    "check_in",
    "utcnow",
]

#: Site profiles: which alert rules apply.
PROFILES = ("slope", "structure")
#: Survey source types.
SOURCE_TYPES = ("orthomosaic", "photos", "photo", "other")
#: Inference run statuses (``succeeded`` = the survey's current run).
RUN_STATUSES = ("running", "succeeded", "failed", "superseded")
#: Where a crack's geometry lives: the site's projected CRS or a photo's pixel grid.
COORDINATE_SPACES = ("map", "image")
#: Crack track statuses (see :mod:`geodata.tracking`).
TRACK_STATUSES = ("active", "vanished", "merged")
#: What happened to a track in a survey (see :mod:`geodata.tracking`).
TRACK_EVENTS = ("new", "continued", "split", "merged", "vanished")
#: Job run statuses.
#: ``abandoned``: the process running it is gone (killed, crashed); set by the next run.
JOB_STATUSES = ("running", "succeeded", "failed", "skipped", "abandoned")
#: Outbox notification statuses: ``pending`` (never tried), ``sending`` (claimed by a
#: sender), ``delivered``, ``failed`` (last try failed; sent again later).
NOTIFICATION_STATUSES = ("pending", "sending", "delivered", "failed")
#: How a photo relates to its site's views (see :mod:`geodata.views`): the ``reference``
#: of a view, ``registered`` into one, a ``duplicate`` (another photo of the same survey
#: shows that view better; not tracked) or ``refused`` (black, blurred, featureless,
#: ambiguous, unreadable: ``reason`` says which).
REGISTRATION_STATUSES = ("reference", "registered", "duplicate", "refused")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def check_in(column: str, values: tuple[str, ...]) -> str:
    """SQL of a check constraint: ``column`` is one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of all CrackWatch tables (constraint naming convention set)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
