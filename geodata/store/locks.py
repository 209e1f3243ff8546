"""One pipeline run per site at a time: a site lock kept in the store.

* **PostgreSQL**: a session-level advisory lock, ``pg_try_advisory_lock(CLASS_ID,
  site_id)``, held on a connection of its own (autocommit, so no transaction stays open).
  The server releases it when that connection ends, so a killed owner never leaves it
  behind. The ``site_lock`` row beside it only says who holds it.
* **SQLite**: the ``site_lock`` row is the lock, taken in a ``BEGIN IMMEDIATE`` transaction
  (writers are serialised, so two takers cannot both see the site free). The owner
  (``host:pid``) refreshes ``heartbeat_at`` every ``heartbeat_s`` seconds from a thread.

A lock whose owner is dead is **stale** and is taken over, and the takeover is recorded
(``taken_over_from`` on the row, a warning in the log): on SQLite the owner is dead when it
ran on this host and its pid is gone, or when its heartbeat is older than ``stale_s`` (an
owner on another host, a reused pid; note that a live owner stopped for longer than that,
e.g. by SIGSTOP, is taken for dead too). On PostgreSQL a row without its advisory lock is
stale by definition, and a live owner always keeps its lock.

Use :func:`site_lock` as a context manager::

    with site_lock(engine, site_id, purpose="crackwatch run") as held:
        ...  # held.taken_over_from says whether a dead owner's lock was taken over
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, text

from geodata.errors import SiteBusyError
from geodata.store import models as m
from geodata.store.engine import session_scope

log = logging.getLogger(__name__)

__all__ = ["CLASS_ID", "HEARTBEAT_S", "STALE_S", "HeldLock", "owner_is_alive", "site_lock"]

#: First key of the PostgreSQL advisory lock (``'CW'``); the second is the site id.
CLASS_ID = 0x4357
#: Seconds between two heartbeats of a held lock.
HEARTBEAT_S = 30.0
#: A lock whose heartbeat is older than this many seconds is stale (owner on another host).
STALE_S = 300.0


@dataclass
class HeldLock:
    """A site lock this process holds.

    Attributes:
        site_id: the locked site.
        owner: ``host:pid`` of this process.
        acquired_at: when it was taken (UTC).
        taken_over_from: the dead owner whose stale lock was taken over, else ``None``.
    """

    site_id: int
    owner: str
    acquired_at: datetime
    taken_over_from: str | None = None


def _me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def owner_is_alive(host: str, pid: int) -> bool | None:
    """Whether process ``pid`` on ``host`` runs: True/False on this host, None elsewhere."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _stale_reason(row: m.SiteLock, now: datetime, stale_s: float) -> str | None:
    alive = owner_is_alive(row.host, row.pid)
    if alive is False:
        return f"its process {row.pid} on {row.host} is gone"
    age = (now - row.heartbeat_at).total_seconds()
    if age > stale_s:
        return f"no heartbeat for {age:.0f} s (more than {stale_s:.0f} s)"
    return None


def _busy(site_id: int, row: m.SiteLock) -> SiteBusyError:
    return SiteBusyError(
        f"site {site_id} is being processed by {row.owner} ({row.purpose or 'a run'}) since "
        f"{row.acquired_at:%Y-%m-%d %H:%M:%S} UTC (last heartbeat "
        f"{row.heartbeat_at:%H:%M:%S} UTC): wait for it to finish, or give --wait SECONDS",
        owner=row.owner, since=row.acquired_at)


def _write_row(engine: Engine, site_id: int, purpose: str | None, *, stale_s: float,
               advisory: bool) -> HeldLock:
    """Take the lock row (SQLite: the lock itself; PostgreSQL: the record of the advisory
    lock just taken). Raises SiteBusyError when a live owner holds it."""
    host, pid = _me()
    owner = f"{host}:{pid}"
    now = m.utcnow()
    with session_scope(engine, write=True) as s:
        row = s.get(m.SiteLock, site_id)
        taken_over = None
        if row is not None:
            reason = ("it held no advisory lock (its connection is gone)" if advisory
                      else _stale_reason(row, now, stale_s))
            if reason is None:
                raise _busy(site_id, row)
            taken_over = (f"{row.owner} (since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC): "
                          f"{reason}")
            log.warning("site %s: took over the stale lock of %s", site_id, taken_over)
            s.delete(row)
            s.flush()
        s.add(m.SiteLock(site_id=site_id, owner=owner, host=host, pid=pid, purpose=purpose,
                         acquired_at=now, heartbeat_at=now, taken_over_from=taken_over))
    return HeldLock(site_id, owner, now, taken_over)


def _heartbeat(engine: Engine, held: HeldLock, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        try:
            with session_scope(engine, write=True) as s:
                row = s.get(m.SiteLock, held.site_id)
                if row is not None and row.owner == held.owner:
                    row.heartbeat_at = m.utcnow()
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried next time
            log.warning("site %s: heartbeat of the site lock failed: %s", held.site_id, exc)


@contextmanager
def site_lock(engine: Engine, site_id: int, *, purpose: str | None = None,
              wait_s: float = 0.0, heartbeat_s: float = HEARTBEAT_S,
              stale_s: float = STALE_S, poll_s: float = 1.0) -> Iterator[HeldLock]:
    """Hold the lock of ``site_id`` for the duration of the ``with`` block.

    Args:
        engine: the store's engine.
        site_id: the site to lock.
        purpose: what the holder does (shown to a process that finds the site busy).
        wait_s: seconds to wait for a busy site (polling every ``poll_s``); 0 refuses at once.
        heartbeat_s: seconds between heartbeats.
        stale_s: heartbeat age (seconds) after which a lock of another host is stale.

    Yields:
        :class:`HeldLock`.

    Raises:
        SiteBusyError: a live process still holds the lock after ``wait_s`` seconds.
    """
    deadline = time.monotonic() + max(0.0, wait_s)
    advisory = engine.dialect.name == "postgresql"
    conn: Connection | None = None
    while True:
        try:
            if advisory:
                conn = _advisory_lock(engine, site_id)
            held = _write_row(engine, site_id, purpose, stale_s=stale_s, advisory=advisory)
            break
        except SiteBusyError:
            if conn is not None:
                _advisory_unlock(conn, site_id)
                conn = None
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())) or 0.01)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, held, stop, heartbeat_s),
                            name=f"site-lock-{site_id}", daemon=True)
    beat.start()
    try:
        yield held
    finally:
        stop.set()
        beat.join(timeout=heartbeat_s + 5)
        try:
            with session_scope(engine, write=True) as s:
                s.execute(delete(m.SiteLock).where(m.SiteLock.site_id == site_id,
                                                   m.SiteLock.owner == held.owner))
        finally:
            if conn is not None:
                _advisory_unlock(conn, site_id)


def _advisory_lock(engine: Engine, site_id: int) -> Connection:
    """A dedicated autocommit connection holding the site's advisory lock.

    Raises SiteBusyError (with the holder from the lock row) when another session has it."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:c, :s)"),
                           {"c": CLASS_ID, "s": int(site_id)}).scalar()
    except Exception:
        conn.close()
        raise
    if got:
        return conn
    conn.close()
    with session_scope(engine) as s:
        row = s.get(m.SiteLock, site_id)
        if row is not None:
            raise _busy(site_id, row)
    now = m.utcnow()
    raise _busy(site_id, m.SiteLock(owner="another session", purpose=None, acquired_at=now,
                                    heartbeat_at=now, host="?", pid=0))


def _advisory_unlock(conn: Connection, site_id: int) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:c, :s)"),
                     {"c": CLASS_ID, "s": int(site_id)})
    finally:
        conn.close()


