"""The webhook notifier: a Slack-compatible JSON POST, retried with backoff.

``urllib.request`` only (no extra dependency). The URL (a Slack URL is itself a secret) may
be given or read from ``CRACKWATCH_WEBHOOK_URL`` at send time; logs and errors show only its
scheme and host.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from geodata.levels import LEVEL_COLOURS  # Slack attachment colour per level
from jobs.notify.core import AlertMessage, NotificationError, NotifierConfigError
from jobs.notify.retry import backoff_delay, check_retry, redact

__all__ = ["DEFAULT_WEBHOOK_URL_ENV", "WebhookNotifier"]

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_URL_ENV = "CRACKWATCH_WEBHOOK_URL"



def _safe_url(url: str) -> str:
    """``scheme://host[:port]/...``: enough to say where, never the token in the path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..."


@dataclass
class WebhookNotifier:
    """POST the alert as JSON to a webhook (Slack incoming webhooks and similar).

    Payload: ``{"text": summary, "attachments": [{"color", "title", "fields": [...]}],
    "crackwatch": {full alert}}``; Slack shows ``text`` and the attachment fields, other
    receivers read ``crackwatch``.

    Retries: up to ``attempts`` tries; after a failed try ``n`` it waits
    ``min(max_delay_s, base_delay_s * 2**(n-1))`` (or the server's ``Retry-After`` seconds if
    longer, still capped) through ``sleep`` (injectable for tests). Retried: HTTP 5xx, 429,
    connection errors and timeouts. Not retried: other HTTP errors (4xx: fix the URL/payload).

    Attributes:
        url: webhook URL (http or https); ``None`` to read the environment variable
            ``url_env`` (default ``CRACKWATCH_WEBHOOK_URL``) at send time. Never logged.
        timeout_s: per-request socket timeout, seconds.

    Raises (from the constructor):
        NotifierConfigError: a URL that is not http(s), bad retry settings.
    """

    url: str | None = field(default=None, repr=False)
    url_env: str = DEFAULT_WEBHOOK_URL_ENV
    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    name: str = "webhook"
    last_attempts: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        check_retry(self.attempts, self.base_delay_s, self.max_delay_s)
        if self.url is not None:
            self._validate(self.url)

    @staticmethod
    def _validate(url: str) -> str:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotifierConfigError(
                f"webhook URL must be http(s)://host/..., got scheme {parts.scheme!r}: check "
                "the configured URL"
            )
        return url.strip()

    def resolved_url(self) -> str:
        """The URL to POST to. Raises: NotifierConfigError when none is configured."""
        if self.url is not None:
            return self._validate(self.url)
        env = os.environ.get(self.url_env, "").strip()
        if not env:
            raise NotifierConfigError(
                f"no webhook URL: pass url= or set the environment variable {self.url_env}"
            )
        return self._validate(env)

    def payload(self, alert: AlertMessage | Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body sent for ``alert`` (Slack-compatible)."""
        msg = AlertMessage.from_any(alert)
        fields = [
            {"title": "Level", "value": msg.level, "short": True},
            {"title": "Site", "value": str(msg.site), "short": True},
            {"title": "Rule", "value": msg.rule, "short": True},
        ]
        if msg.track is not None:
            fields.append({"title": "Crack track", "value": str(msg.track), "short": True})
        if msg.measured_value is not None:
            fields.append({"title": "Measured", "value": f"{msg.measured_value:.4g} {msg.unit}",
                           "short": True})
        if msg.threshold is not None:
            fields.append({"title": "Threshold", "value": f"{msg.threshold:.4g} {msg.unit}",
                           "short": True})
        if msg.forecast and msg.forecast.get("message"):
            fields.append({"title": "Forecast", "value": msg.forecast["message"],
                           "short": False})
        for w in msg.resolution_warnings:
            fields.append({"title": "Resolution warning", "value": w, "short": False})
        return {
            "text": msg.summary(),
            "attachments": [{"color": LEVEL_COLOURS[msg.level], "title": msg.subject,
                             "text": msg.message, "fields": fields}],
            "crackwatch": msg.to_dict(),
        }

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None:
        """POST ``alert``, retrying as described in the class docstring.

        Sets ``last_attempts``.

        Raises:
            NotifierConfigError: no or invalid URL (nothing was sent).
            NotificationError: every allowed try failed, or a non-retryable HTTP status;
                ``attempts`` says how many tries were made.
            ValueError: a malformed alert.
        """
        self.last_attempts = 0
        body = json.dumps(self.payload(alert), default=str).encode("utf-8")
        key = AlertMessage.from_any(alert).idempotency_key
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "crackwatch-notify",
                   **({"Idempotency-Key": key} if key else {})}
        url = self.resolved_url()
        where = _safe_url(url)
        opener = urllib.request.build_opener()
        for attempt in range(1, self.attempts + 1):
            self.last_attempts = attempt
            request = urllib.request.Request(url, data=body, method="POST", headers=headers)
            retry_after = None
            try:
                with opener.open(request, timeout=self.timeout_s) as response:
                    response.read(65536)
                log.info("webhook %s accepted the alert (attempt %d)", where, attempt)
                return
            except urllib.error.HTTPError as e:
                status = e.code
                error = f"HTTP {status} {e.reason}"
                retryable = status >= 500 or status == 429
                retry_after = _retry_after_s(e.headers.get("Retry-After") if e.headers else None)
                e.close()
            except (urllib.error.URLError, OSError) as e:  # refused, reset, DNS, timeout
                reason = getattr(e, "reason", e)
                error = f"connection error: {type(reason).__name__}: {reason}"
                retryable = True
            error = redact(error, [url])
            if not retryable or attempt == self.attempts:
                raise NotificationError(
                    f"webhook POST to {where} failed after {attempt} attempt(s): {error}"
                    + ("" if retryable else " (not retried: check the URL and the receiver)"),
                    attempts=attempt,
                )
            delay = backoff_delay(attempt, self.base_delay_s, self.max_delay_s)
            if retry_after is not None:
                delay = min(self.max_delay_s, max(delay, retry_after))
            log.warning("webhook %s attempt %d/%d failed (%s); retrying in %.3g s", where,
                        attempt, self.attempts, error, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after_s(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: use our own backoff
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None
