"""Where the store is: the settings both the jobs and the dashboard read.

Variables (prefix ``CRACKWATCH_``) come from the environment only: a ``.env`` file in the
current folder is *not* read (issue 30: one left in a folder silently moved the store and
the users file). Services set them with systemd's ``EnvironmentFile=``
(``deploy/crackwatch.env.example``); a shell can ``set -a; . FILE; set +a``.

* ``CRACKWATCH_DATA_DIR``: where CrackWatch keeps its data; default
  ``$XDG_DATA_HOME/crackwatch`` or ``~/.local/share/crackwatch``.
* ``CRACKWATCH_DATABASE_URL``: the store; default the SQLite file
  ``<data dir>/crackwatch.db``. Teams use PostgreSQL + PostGIS:
  ``postgresql+psycopg://user:password@host:5432/crackwatch``. Printed and logged only
  through :func:`hide_password`.
* ``CRACKWATCH_USERS_FILE``: the dashboard's sign-in users (YAML, bcrypt hashes, one role
  each; see :mod:`geodata.users`); default ``<data dir>/users.yaml``.

It lives here, below ``jobs`` and ``dashboard``, so that the dashboard does not import
``jobs`` (DESIGN.md: imports flow one way). Only those two read it; the rest of ``geodata``
and ``engine`` take explicit arguments (a test checks that nothing else imports it).
:class:`jobs.settings.Settings` extends :class:`StoreSettings` with what only the jobs need.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StoreSettings", "default_data_dir", "hide_password"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/crackwatch``, else ``~/.local/share/crackwatch``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crackwatch"


class StoreSettings(BaseSettings):
    """The data folder and store URL from ``CRACKWATCH_*`` variables (see the module
    docstring)."""

    model_config = SettingsConfigDict(env_prefix="CRACKWATCH_", env_file=None,
                                      extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Folder for the SQLite store and other data.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default sqlite:///<data_dir>/crackwatch.db.")
    users_file: Path | None = Field(
        default=None,
        description="Sign-in users of the dashboard (YAML); default <data_dir>/users.yaml.")

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
