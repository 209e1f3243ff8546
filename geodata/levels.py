"""Alert levels and their display colours: plain constants, no ORM, no I/O.

Below the store (:mod:`geodata.store.models` checks ``alert.level`` against
:data:`ALERT_LEVELS`), the notifiers (:mod:`jobs.notify`: Slack attachment colour) and the
dashboard maps (:mod:`dashboard.maps`: marker colour), so none of those needs the other.
"""

from __future__ import annotations

__all__ = ["ALERT_LEVELS", "LEVEL_COLOURS", "level_rank"]

#: Alert levels in increasing order of severity.
ALERT_LEVELS = ("green", "yellow", "orange", "red")
#: Display colour of each alert level (dashboard map markers, notification attachments):
#: the Material Design 800 shades of green, yellow, orange and red.
LEVEL_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}


def level_rank(level: str | None) -> int:
    """0 (green or unknown) to 3 (red): the order the Overview's status list and map use
    (worst first in the list, drawn on top on the map)."""
    return ALERT_LEVELS.index(level) if level in ALERT_LEVELS else 0
