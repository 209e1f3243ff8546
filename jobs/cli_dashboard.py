"""``crackwatch dashboard``: start the Streamlit dashboard (registered in ``jobs/cli.py``).

    crackwatch dashboard [--port 8501] [--address HOST] [--url DB_URL]

Runs ``python -m streamlit run dashboard/app.py`` headless, without usage statistics, with
static file serving on (the map's Leaflet is served from ``dashboard/static``, so maps draw
with no internet). The store URL reaches the app through ``CRACKWATCH_DATABASE_URL``;
without ``--url`` the app uses that variable or the default SQLite file (see
:mod:`jobs.settings`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

__all__ = ["APP_PATH", "dashboard_cmd", "register", "streamlit_command"]

#: The Streamlit entry script.
APP_PATH = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def streamlit_command(port: int = 8501, address: str | None = None) -> list[str]:
    """The command line that serves the dashboard (``python -m streamlit run ...``)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
           "--server.port", str(port),
           "--server.headless", "true",
           "--server.enableStaticServing", "true",
           "--browser.gatherUsageStats", "false",
           "--client.showSidebarNavigation", "false",
           "--client.toolbarMode", "minimal"]
    if address:
        cmd += ["--server.address", address]
    return cmd


def dashboard_cmd(
    port: int = typer.Option(8501, min=1, max=65535, help="Port to serve on."),
    address: str | None = typer.Option(
        None, help="Address to listen on, e.g. 127.0.0.1 (default: Streamlit's, all "
                   "interfaces)."),
    url: str | None = typer.Option(
        None, help="Database URL (default: CRACKWATCH_DATABASE_URL, else "
                   "sqlite:///<CRACKWATCH_DATA_DIR>/crackwatch.db)."),
) -> None:
    """Start the dashboard: sites map, crack growth, defect history, alerts (Ctrl-C stops)."""
    from jobs.cli import _fail

    try:
        import streamlit  # noqa: F401
    except ImportError:
        _fail(RuntimeError('the dashboard needs Streamlit: pip install "crackwatch" '
                           "(streamlit and folium are dependencies) or pip install streamlit "
                           "folium"))
    if not APP_PATH.is_file():
        _fail(FileNotFoundError(f"the dashboard app is missing at {APP_PATH}; reinstall "
                                f"crackwatch"))
    env = dict(os.environ)
    if url:
        from geodata.errors import StoreError
        from geodata.store.engine import normalise_url

        try:
            normalise_url(url)
        except StoreError as exc:
            _fail(exc)
        env["CRACKWATCH_DATABASE_URL"] = url
    shown = env.get("CRACKWATCH_DATABASE_URL") or "the default store (jobs.settings)"
    typer.echo(f"CrackWatch dashboard on port {port}, store: "
               f"{_hide_password(shown)}", err=True)
    try:
        code = subprocess.call(streamlit_command(port, address), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)


def _hide_password(url: str) -> str:
    try:
        from geodata.store.engine import normalise_url

        return normalise_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url


def register(app: typer.Typer) -> None:
    """Add ``crackwatch dashboard`` to the main app."""
    app.command("dashboard")(dashboard_cmd)
