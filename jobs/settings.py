"""CrackWatch settings, read from the environment (and an optional ``.env`` file).

Only ``jobs`` (and the dashboard) read settings; ``engine`` and ``geodata`` take explicit
arguments. The store's settings (``CRACKWATCH_DATA_DIR``, ``CRACKWATCH_DATABASE_URL``) are
:class:`geodata.settings.StoreSettings`, which the dashboard reads too; :class:`Settings`
extends them with what only the jobs need (nothing yet).
"""

from __future__ import annotations

from functools import lru_cache

from geodata.settings import StoreSettings, default_data_dir

__all__ = ["Settings", "default_data_dir", "get_settings"]


class Settings(StoreSettings):
    """Settings from ``CRACKWATCH_*`` environment variables: the store's
    (:class:`geodata.settings.StoreSettings`) and the jobs' own."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; ``get_settings.cache_clear()`` re-reads)."""
    return Settings()
