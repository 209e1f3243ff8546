"""CrackWatch settings, read from the environment (and an optional ``.env`` file).

Only ``jobs`` (and the dashboard) read settings; ``engine`` and ``geodata`` take explicit
arguments. Variables (prefix ``CRACKWATCH_``):

* ``CRACKWATCH_DATA_DIR``: where CrackWatch keeps its data; default
  ``$XDG_DATA_HOME/crackwatch`` or ``~/.local/share/crackwatch``.
* ``CRACKWATCH_DATABASE_URL``: the store; default the SQLite file
  ``<data dir>/crackwatch.db``. Teams use PostgreSQL + PostGIS:
  ``postgresql+psycopg://user:password@host:5432/crackwatch``. Printed and logged only
  through :func:`hide_password`.
* ``CRACKWATCH_USERS_FILE``: the dashboard's sign-in users (YAML, bcrypt hashes, one role
  each; see :mod:`jobs.users`); default ``<data dir>/users.yaml``.
* ``CRACKWATCH_SMTP_SECURITY``: how e-mail reaches the SMTP server: ``starttls`` (default,
  port 587), ``ssl`` (implicit TLS, port 465) or ``none`` (plain SMTP, only for a relay on
  this machine or a trusted network, port 25). See :class:`jobs.notify.EmailNotifier`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir", "get_settings", "hide_password"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/crackwatch``, else ``~/.local/share/crackwatch``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crackwatch"


class Settings(BaseSettings):
    """Settings from ``CRACKWATCH_*`` environment variables (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CRACKWATCH_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Folder for the SQLite store and other data.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default sqlite:///<data_dir>/crackwatch.db.")

    users_file: Path | None = Field(
        default=None,
        description="Sign-in users of the dashboard (YAML); default <data_dir>/users.yaml.")
    smtp_security: str = Field(
        default="starttls",
        description="SMTP transport security: starttls (587), ssl (465) or none (25); "
                    "checked by jobs.notify.EmailNotifier.")

    def resolved_users_file(self) -> Path:
        """``users_file`` if set, else ``<data_dir>/users.yaml`` (``~`` expanded)."""
        return (self.users_file or self.data_dir / "users.yaml").expanduser()

    def resolved_database_url(self) -> str:
        """``database_url`` if set, else the SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir.expanduser() / 'crackwatch.db').resolve()}"


def hide_password(url: str) -> str:
    """``url`` with its password masked as ``***`` (SQLAlchemy
    ``URL.render_as_string(hide_password=True)``), for anything printed or logged; a URL
    that cannot be parsed comes back as ``<database URL hidden>``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<database URL hidden>"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; ``get_settings.cache_clear()`` re-reads)."""
    return Settings()
