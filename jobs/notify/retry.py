"""What the webhook and e-mail notifiers share: retry settings, backoff, redaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs.notify.core import NotifierConfigError

__all__ = ["backoff_delay", "check_retry", "redact"]


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return min(max_s, base_s * 2 ** (attempt - 1))


def check_retry(attempts: Any, base_delay_s: Any, max_delay_s: Any) -> None:
    """Check a notifier's retry settings. Raises: NotifierConfigError when out of range."""
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
        raise NotifierConfigError(f"attempts must be an integer in 1..20, got {attempts!r}")
    for name, v in (("base_delay_s", base_delay_s), ("max_delay_s", max_delay_s)):
        if not isinstance(v, int | float) or not 0 <= v <= 3600:
            raise NotifierConfigError(f"{name} must be seconds in [0, 3600], got {v!r}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
