"""Disk and permission failures as one line a user can act on (the CLI and the pipeline).

A full disk, a read-only mount or a folder the user cannot write reach CrackWatch in many
shapes: ``OSError`` with ``errno`` ``ENOSPC``/``EDQUOT``/``EROFS``/``EACCES``/``EPERM``,
SQLite's ``database or disk is full``, ``attempt to write a readonly database``, ``unable
to open database file`` or ``disk I/O error`` (what SQLite reports when it cannot create its
WAL files on a full disk), PostgreSQL's ``DiskFull``, or GDAL's refusal to re-open a file it
could not finish. :func:`storage_problem` recognises them anywhere in an exception's chain and
says what failed, where, and what to do; :func:`clean_storage_errors` wraps every CLI command
so that such a failure is that one ``error:`` line and exit 2, never a traceback.

Nothing is half-written when this happens: store writes are transactions (rolled back),
probability maps are written to a ``.partial`` name and removed on failure, a job run left
``running`` is marked ``abandoned`` by the next run of its site.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["clean_storage_errors", "install", "storage_problem"]

#: Free space (bytes) under which a failed write is put down to a full disk.
LOW_SPACE_BYTES = 64 * 1024 * 1024

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def _sqlite_file(url: str | None) -> Path | None:
    if url and url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    return None


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (for disk usage and write checks)."""
    p = path
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def _free(path: Path) -> int | None:
    try:
        return shutil.disk_usage(_existing(path)).free
    except OSError:
        return None


def _writable(folder: Path) -> bool:
    folder = _existing(folder)
    return os.access(folder, os.W_OK) and not _read_only_fs(folder)


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def _full_line(where: Path, what: str, fix: str, reported: str = "no space left on device"
               ) -> str:
    free = _free(where)
    if free is not None and free >= LOW_SPACE_BYTES:  # a quota or a size limit, not the disk
        lead = (f"writing {what} failed: {reported} ({_size(free)} free on the device of "
                f"{where}; a quota or size limit?)")
    else:
        left = f" ({_size(free)} free)" if free is not None else ""
        lead = f"no space left on the device of {where}{left} while writing {what}"
    return (f"{lead}: free some space there, or {fix}, and run the command again (nothing "
            f"was half-written)")


def _read_only_line(where: Path, what: str, fix: str, read_only: bool = False) -> str:
    why = "is on a read-only file system" if read_only or _read_only_fs(_existing(where)) \
        else "is not writable by this user"
    return (f"{where} {why}, and writing {what} needs it: make it writable, or {fix} "
            f"(listing commands such as `crackwatch site list` still work read-only)")


def storage_problem(exc: BaseException, *, url: str | None = None,
                    work_dir: Path | None = None) -> str | None:
    """One line saying which disk or permission problem ``exc`` is and what to do, or None
    when it is none of them.

    Args:
        url: the store URL the command used (names the SQLite file and its folder).
        work_dir: the folder where the command writes files (probability maps).
    """
    db = _sqlite_file(url)
    store_fix = "point --url (or CRACKWATCH_DATABASE_URL / CRACKWATCH_DATA_DIR) elsewhere"
    work_fix = "choose another --work-dir"
    for e in _chain(exc):
        name = type(e).__name__
        text = str(e)
        if isinstance(e, OSError) and e.errno is not None:
            target = Path(e.filename) if e.filename else (work_dir or (db.parent if db else
                                                                       Path.cwd()))
            in_store = db is not None and target.resolve().is_relative_to(db.parent.resolve())
            what, fix = ("the store", store_fix) if in_store else (f"{target}", work_fix)
            if e.errno in _FULL:
                return _full_line(target if target.is_dir() else target.parent, what, fix)
            if e.errno in _READ_ONLY or e.errno in _DENIED:
                return _read_only_line(target if target.is_dir() else target.parent, what, fix,
                                       read_only=e.errno in _READ_ONLY)
        if name == "DiskFull" or "could not extend file" in text:
            return ("the PostgreSQL server's disk is full: free space on the database server "
                    "and run the command again (the transaction was rolled back)")
        if name == "ReadOnlySqlTransaction":
            return ("the PostgreSQL server is read-only (a standby?): point --url at the "
                    "primary and run the command again")
        if db is not None and name == "OperationalError":
            folder = db.parent
            if "database or disk is full" in text or "disk I/O error" in text:
                free = _free(folder)
                if "database or disk is full" in text or (free is not None
                                                          and free < LOW_SPACE_BYTES):
                    return _full_line(folder, f"the store {db.name}", store_fix,
                                      "the database or disk is full")
            if ("readonly database" in text or "unable to open database file" in text
                    or "disk I/O error" in text) and not _writable(folder):
                return _read_only_line(folder, f"the store {db.name}", store_fix)
    if work_dir is not None:
        free = _free(work_dir)
        if free is not None and free < LOW_SPACE_BYTES and any(
                isinstance(e, OSError) or "not recognized as being in a supported file format"
                in str(e) or "No space left" in str(e) for e in _chain(exc)):
            return _full_line(_existing(work_dir), "the probability map", work_fix)
    return None


def clean_storage_errors(func: Callable[..., Any], *, on_error: Callable[[str], Any]
                         ) -> Callable[..., Any]:
    """``func`` (a CLI command) with disk and permission failures turned into
    ``on_error(line)`` (which prints it and exits); other exceptions pass unchanged."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(("click", "typer")):
                raise
            from jobs.settings import get_settings

            url = kwargs.get("url")
            try:
                url = url or get_settings().resolved_database_url()
            except Exception:  # noqa: BLE001 - settings unreadable: no URL to name
                url = None
            work = kwargs.get("work_dir") or kwargs.get("out")
            line = storage_problem(exc, url=url, work_dir=Path(work) if work else None)
            if line is None:
                raise
            on_error(line)

    wrapper.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return wrapper


def install(app: Any, on_error: Callable[[str], Any]) -> None:
    """Wrap every command of the typer ``app`` and of its sub-apps
    (:func:`clean_storage_errors`)."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_storage_clean", False):
            info.callback = clean_storage_errors(info.callback, on_error=on_error)
            info.callback._storage_clean = True  # type: ignore[attr-defined]
    for group in app.registered_groups:
        if group.typer_instance is not None:
            install(group.typer_instance, on_error)
