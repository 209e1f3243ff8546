"""Failed sign-in throttling: temporary lockout per username and per client address.

Policy (OWASP Authentication Cheat Sheet, "Account lockout"; NIST SP 800-63B section 5.2.2,
which asks verifiers to limit failed attempts on an account):

* a **username** with :data:`USER_MAX_FAILURES` failed sign-ins within :data:`WINDOW_S` is
  locked for :data:`LOCKOUT_S` after its last failure: during the lockout no password is
  checked for it, right or wrong (guessing one account);
* a **client** (IP address) with :data:`CLIENT_MAX_FAILURES` failures within the window is
  locked the same way, whatever usernames it tries (spraying one password over many accounts);
* a successful sign-in clears the username's failures, not the client's.

Attempts made during a lockout are not counted, so a lockout ends :data:`LOCKOUT_S` after the
last real failure (an attacker cannot keep an account locked for longer by hammering it).

The counts live in the memory of the dashboard's process (one Streamlit server serves every
browser session), shared by all sessions; restarting the dashboard clears them.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

USER_MAX_FAILURES = 5
CLIENT_MAX_FAILURES = 20
WINDOW_S = 15 * 60
LOCKOUT_S = 15 * 60


class SignInThrottle:
    """Failure counts by ``("user", name)`` and ``("client", address)``; thread-safe.

    ``clock``: seconds, monotonic (tests pass their own).
    """

    def __init__(self, *, user_max: int = USER_MAX_FAILURES,
                 client_max: int = CLIENT_MAX_FAILURES, window_s: float = WINDOW_S,
                 lockout_s: float = LOCKOUT_S, clock: Callable[[], float] = time.monotonic):
        self.user_max, self.client_max = user_max, client_max
        self.window_s, self.lockout_s = window_s, lockout_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _remaining(self, key: tuple[str, str], limit: int, now: float) -> float:
        q = self._failures.get(key)
        if not q:
            return 0.0
        while q and q[0] < now - self.window_s - self.lockout_s:
            q.popleft()
        if not q:
            self._failures.pop(key, None)
            return 0.0
        last = q[-1]
        recent = sum(1 for t in q if t >= last - self.window_s)
        return max(0.0, last + self.lockout_s - now) if recent >= limit else 0.0

    def locked_for(self, user: str | None, client: str | None) -> tuple[float, str]:
        """``(seconds, what)``: how long sign-in stays refused for this username / client and
        which of the two is locked (``"user"``, ``"client"``); ``(0.0, "")`` when neither."""
        now = self.clock()
        with self._lock:
            for kind, name, limit in (("client", client, self.client_max),
                                      ("user", user, self.user_max)):
                if name:
                    left = self._remaining((kind, name), limit, now)
                    if left > 0:
                        return left, kind
        return 0.0, ""

    def record_failure(self, user: str | None, client: str | None) -> None:
        now = self.clock()
        with self._lock:
            for kind, name in (("user", user), ("client", client)):
                if name:
                    self._failures.setdefault((kind, name), deque()).append(now)

    def record_success(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user), None)


#: The dashboard process's throttle.
THROTTLE = SignInThrottle()


def client_address(peer: str | None, headers: Mapping[str, str] | None) -> str | None:
    """The address a sign-in comes from: the connection's peer, or, when the peer is this
    machine (the reverse proxy of ``deploy/``), the client address the proxy passed on
    (``X-Real-IP``, else the last ``X-Forwarded-For`` entry, which the proxy appended).
    Headers from a non-local peer are ignored: anyone can send them."""
    try:
        local = peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    if local and headers:
        h = {k.lower(): v for k, v in headers.items()}
        real = (h.get("x-real-ip") or "").strip()
        forwarded = [x.strip() for x in (h.get("x-forwarded-for") or "").split(",") if x.strip()]
        return real or (forwarded[-1] if forwarded else peer)
    return peer


def minutes(seconds: float) -> str:
    m = max(1, round(seconds / 60))
    return f"{m} minute{'s' if m != 1 else ''}"
