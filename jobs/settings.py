"""CrackWatch settings, read from the environment (and an optional ``.env`` file).

Only ``jobs`` (and the dashboard) read settings; ``engine`` and ``geodata`` take explicit
arguments. Variables (prefix ``CRACKWATCH_``):

* ``CRACKWATCH_DATA_DIR``: where CrackWatch keeps its data; default
  ``$XDG_DATA_HOME/crackwatch`` or ``~/.local/share/crackwatch``.
* ``CRACKWATCH_DATABASE_URL``: the store; default the SQLite file
  ``<data dir>/crackwatch.db``. Teams use PostgreSQL + PostGIS:
  ``postgresql+psycopg://user:password@host:5432/crackwatch``.
* ``CRACKWATCH_EXECUTOR``: where survey inference runs, ``local`` (default) or ``ray``
  (:mod:`jobs.executor`); ``CRACKWATCH_RAY_ADDRESS`` (``auto``, ``HOST:PORT``, ``local``)
  and ``CRACKWATCH_RAY_WORKERS`` go with it. The ``--executor``, ``--ray-address`` and
  ``--ray-workers`` options of ``run``, ``scheduler`` and ``infer`` override them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir", "get_settings"]


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
    executor: str = Field(default="local", description="local | ray (jobs.executor).")
    ray_address: str | None = Field(
        default=None, description="Ray cluster: auto | HOST:PORT | local (jobs.executor).")
    ray_workers: int | None = Field(
        default=None, description="Inference workers on the Ray cluster (default: one per "
                                  "GPU, else per CPU).")

    def resolved_database_url(self) -> str:
        """``database_url`` if set, else the SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir.expanduser() / 'crackwatch.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; ``get_settings.cache_clear()`` re-reads)."""
    return Settings()
