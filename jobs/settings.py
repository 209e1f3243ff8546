"""CrackWatch settings, read from the environment only (never from a ``.env`` file in the
current folder: :mod:`geodata.settings`).

Only ``jobs`` (and the dashboard) read settings; ``engine`` and ``geodata`` take explicit
arguments. The settings the dashboard reads too (``CRACKWATCH_DATA_DIR``,
``CRACKWATCH_DATABASE_URL``, ``CRACKWATCH_USERS_FILE``) are
:class:`geodata.settings.StoreSettings`; :class:`Settings` extends them with what only the
jobs need:

* ``CRACKWATCH_SMTP_SECURITY``: how e-mail reaches the SMTP server: ``starttls`` (default,
  port 587), ``ssl`` (implicit TLS, port 465) or ``none`` (plain SMTP, only for a relay on
  this machine or a trusted network, port 25). See :class:`jobs.notify.EmailNotifier`.
* ``CRACKWATCH_EXECUTOR``: where survey inference runs, ``local`` (default) or ``ray``
  (:mod:`jobs.executor`); ``CRACKWATCH_RAY_ADDRESS`` (``auto``, ``HOST:PORT``, ``local``)
  and ``CRACKWATCH_RAY_WORKERS`` go with it. The ``--executor``, ``--ray-address`` and
  ``--ray-workers`` options of ``run``, ``scheduler`` and ``infer`` override them.
* ``CRACKWATCH_RUNTIME``: what runs the crack model on the CPU, ``auto`` (default: the fastest
  installed), ``openvino``, ``onnxruntime`` or ``torch`` (:mod:`engine.runtime`); the
  ``--runtime`` option of ``run``, ``scheduler``, ``infer`` and ``bench`` overrides it.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from geodata.settings import StoreSettings, default_data_dir, hide_password

__all__ = ["Settings", "default_data_dir", "get_settings", "hide_password"]


class Settings(StoreSettings):
    """Settings from ``CRACKWATCH_*`` environment variables: the store's
    (:class:`geodata.settings.StoreSettings`) and the jobs' own."""

    smtp_security: str = Field(
        default="starttls",
        description="SMTP transport security: starttls (587), ssl (465) or none (25); "
                    "checked by jobs.notify.EmailNotifier.")
    executor: str = Field(default="local", description="local | ray (jobs.executor).")
    ray_address: str | None = Field(
        default=None, description="Ray cluster: auto | HOST:PORT | local (jobs.executor).")
    runtime: str = Field(
        default="auto",
        description="What runs the crack model on the CPU: auto (the fastest installed: "
                    "OpenVINO, else ONNX Runtime, else PyTorch) | openvino | onnxruntime | "
                    "torch (engine.runtime).")
    ray_workers: int | None = Field(
        default=None, description="Inference workers on the Ray cluster (default: one per "
                                  "GPU, else per CPU).")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; ``get_settings.cache_clear()`` re-reads)."""
    return Settings()
