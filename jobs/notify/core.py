"""The notification core: the message, the notifier protocol, delivery and its results.

:class:`AlertMessage` is what a notification says about one alert; a :class:`Notifier` sends
one (``send`` raises on failure); :func:`deliver` calls every notifier, never raises, and
returns one :class:`DeliveryResult` per notifier. :class:`LogNotifier` is the notifier that
always works. The webhook and e-mail notifiers are :mod:`jobs.notify.webhook` and
:mod:`jobs.notify.smtp`; import them all from :mod:`jobs.notify`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from geodata.levels import ALERT_LEVELS
from jobs.errors import JobsError

__all__ = ["AlertMessage", "DeliveryResult", "LogNotifier", "NotificationError", "Notifier",
           "NotifierConfigError", "deliver"]

log = logging.getLogger(__name__)

_LEVELS = ALERT_LEVELS


class NotificationError(JobsError, OSError):
    """Sending a notification failed; ``attempts`` says how many tries were made."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class NotifierConfigError(JobsError, ValueError):
    """A notifier is misconfigured (missing URL or password variable, bad option)."""


# --------------------------------------------------------------------------------------------
# the message
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertMessage:
    """What a notification says about one alert (JSON-friendly, no secrets).

    Built from a mapping such as :meth:`jobs.alerts.AlertCandidate.to_dict` (plus, from the
    database layer, ``action`` = ``"raise"``/``"escalate"``/``"unacknowledged"`` and
    ``alert_id``) with :meth:`from_any`. ``measured_value`` and ``threshold`` are in ``unit``.
    ``recipients``: addresses that replace a notifier's own for this message (the
    second-level list of an escalation notice, :mod:`jobs.escalation`); empty: its own.
    ``idempotency_key``: the same for every try of one outbox row
    (:func:`jobs.outbox.idempotency_key`): a webhook sends it as the ``Idempotency-Key``
    header, an e-mail as its ``Message-ID``, so a receiver that got a message twice (a
    sender killed between sending and recording it) can drop the second.
    """

    site: Any
    level: str
    rule: str
    message: str
    track: Any = None
    measured_value: float | None = None
    unit: str = ""
    threshold: float | None = None
    forecast: Mapping[str, Any] | None = None
    resolution_warnings: tuple[str, ...] = ()
    observed_at: str | None = None
    action: str | None = None
    alert_id: Any = None
    recipients: tuple[str, ...] = ()
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        level = str(self.level).strip().lower()
        if level not in _LEVELS:
            raise ValueError(
                f"alert level {self.level!r} is not one of {', '.join(_LEVELS)}: build the "
                "message from an AlertCandidate or give a valid level"
            )
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "resolution_warnings", tuple(self.resolution_warnings or ()))
        recipients = self.recipients or ()
        if isinstance(recipients, str):
            recipients = (recipients,)
        object.__setattr__(self, "recipients",
                           tuple(str(r).strip() for r in recipients if str(r).strip()))

    @classmethod
    def from_any(cls, alert: AlertMessage | Mapping[str, Any] | Any) -> AlertMessage:
        """From an :class:`AlertMessage`, a mapping, or any object with ``to_dict()``.

        Unknown mapping keys are ignored; ``level`` and ``message`` are required.

        Raises:
            ValueError: not one of those, a missing key or an invalid level.
        """
        if isinstance(alert, AlertMessage):
            return alert
        if not isinstance(alert, Mapping) and callable(getattr(alert, "to_dict", None)):
            alert = alert.to_dict()
        if not isinstance(alert, Mapping):
            raise ValueError(
                f"an alert must be an AlertMessage, a mapping or have to_dict(), got "
                f"{type(alert).__name__}"
            )
        missing = [k for k in ("level", "message") if k not in alert]
        if missing:
            raise ValueError(f"alert mapping lacks {', '.join(missing)}: got keys {sorted(alert)}")
        known = cls.__dataclass_fields__
        data = {k: v for k, v in alert.items() if k in known}
        data.setdefault("site", None)
        data.setdefault("rule", "")
        if data.get("observed_at") is not None and not isinstance(data["observed_at"], str):
            data["observed_at"] = data["observed_at"].isoformat()
        return cls(**data)

    @property
    def subject(self) -> str:
        """One-line subject, e.g. ``CrackWatch RED alert at site 'hill': slope.opening_rate``."""
        verb = {"escalate": " (escalated)",
                "unacknowledged": " NOT ACKNOWLEDGED (escalation)"}.get(self.action or "", "")
        where = f" at site {self.site!r}" if self.site is not None else ""
        track = f", crack {self.track!r}" if self.track is not None else ""
        return f"CrackWatch {self.level.upper()} alert{verb}{where}{track}: {self.rule}"

    def summary(self) -> str:
        """The ``text`` of a webhook and the first paragraph of an e-mail."""
        parts = [f"[{self.level.upper()}] {self.subject.split(': ', 1)[0]}"]
        if self.measured_value is not None:
            unit = f" {self.unit}" if self.unit else ""
            value = f"{self.rule}: {self.measured_value:.4g}{unit}"
            if self.threshold is not None:
                value += f" (threshold {self.threshold:.4g}{unit})"
            parts.append(value)
        parts.append(self.message)
        if self.forecast and self.forecast.get("message"):
            parts.append(f"Forecast: {self.forecast['message']}")
        if self.resolution_warnings:
            parts.append(
                f"Warning: {len(self.resolution_warnings)} threshold(s) finer than the imagery "
                "resolves (see details)"
            )
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site, "track": self.track, "level": self.level, "rule": self.rule,
            "measured_value": self.measured_value, "unit": self.unit,
            "threshold": self.threshold, "message": self.message,
            "forecast": dict(self.forecast) if self.forecast else None,
            "resolution_warnings": list(self.resolution_warnings),
            "observed_at": self.observed_at, "action": self.action, "alert_id": self.alert_id,
            "recipients": list(self.recipients), "idempotency_key": self.idempotency_key,
        }


# --------------------------------------------------------------------------------------------
# protocol and results
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Notifier(Protocol):
    """Sends one alert. ``send`` returns on success and raises (any exception) on failure.

    An implementation may set ``last_attempts`` (int) after ``send`` to report retries, and
    raise :class:`NotificationError` with ``attempts``; :func:`deliver` records both.
    """

    name: str

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of sending one alert through one notifier.

    Attributes:
        notifier: the notifier's ``name``.
        ok: True when it was sent.
        attempts: tries made (0 when it failed before trying, e.g. misconfigured).
        error: ``"ExceptionType: message"`` when it failed (secrets redacted), else ``None``.
        at: UTC time the delivery finished.
        duration_s: seconds it took, retries and backoff included.
    """

    notifier: str
    ok: bool
    attempts: int
    error: str | None
    at: datetime
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"notifier": self.notifier, "ok": self.ok, "attempts": self.attempts,
                "error": self.error, "at": self.at.isoformat(), "duration_s": self.duration_s}


def deliver(alert: AlertMessage | Mapping[str, Any] | Any, notifiers: Iterable[Notifier], *,
            now: Callable[[], datetime] | None = None) -> list[DeliveryResult]:
    """Send ``alert`` through every notifier; never raises (except ``KeyboardInterrupt`` and
    ``SystemExit``), one result per notifier in order.

    A failure is returned as ``ok=False`` with its error text for the database layer to record
    and retry later; it does not stop the other notifiers. A malformed alert fails every
    notifier with ``attempts=0``.

    Args:
        alert: an :class:`AlertMessage`, mapping or ``AlertCandidate``.
        notifiers: objects following :class:`Notifier`.
        now: clock returning an aware UTC datetime (tests); default ``datetime.now(UTC)``.
    """
    clock = now or (lambda: datetime.now(UTC))
    notifiers = list(notifiers)
    try:
        msg: AlertMessage | None = AlertMessage.from_any(alert)
        bad = None
    except Exception as e:  # a bad alert is a recorded failure, not a crash
        msg, bad = None, f"{type(e).__name__}: {e}"
    results = []
    for notifier in notifiers:
        name = str(getattr(notifier, "name", type(notifier).__name__))
        start = time.monotonic()
        if msg is None:
            results.append(DeliveryResult(name, False, 0, bad, clock(), 0.0))
            continue
        try:
            notifier.send(msg)
        except Exception as e:  # never lose the result of one notifier
            attempts = getattr(e, "attempts", None)
            if attempts is None:
                attempts = 0 if isinstance(e, NotifierConfigError) else 1
            error = f"{type(e).__name__}: {e}"
            log.warning("notification via %s failed after %d attempt(s): %s", name, attempts,
                        error)
            results.append(DeliveryResult(name, False, int(attempts), error, clock(),
                                          time.monotonic() - start))
        else:
            attempts = int(getattr(notifier, "last_attempts", None) or 1)
            results.append(DeliveryResult(name, True, attempts, None, clock(),
                                          time.monotonic() - start))
    return results


# --------------------------------------------------------------------------------------------
# log
# --------------------------------------------------------------------------------------------


@dataclass
class LogNotifier:
    """Writes the alert to a logger: ``WARNING`` for yellow and above, ``INFO`` for green.

    Attributes:
        logger: logger to use (default ``logging.getLogger("crackwatch.alerts")``).
    """

    logger: logging.Logger = field(
        default_factory=lambda: logging.getLogger("crackwatch.alerts")
    )
    name: str = "log"

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None:
        """Log the alert's summary. Raises: ValueError for a malformed alert."""
        msg = AlertMessage.from_any(alert)
        level = logging.INFO if msg.level == "green" else logging.WARNING
        self.logger.log(level, "%s", msg.summary().replace("\n", " | "),
                        extra={"crackwatch_alert": msg.to_dict()})
        self.last_attempts = 1
