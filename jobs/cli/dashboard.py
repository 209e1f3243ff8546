"""``crackwatch dashboard``: start the Streamlit dashboard (registered in :mod:`jobs.cli.main`).

    crackwatch dashboard [--port 8501] [--address 127.0.0.1] [--url DB_URL]

Runs ``python -m streamlit run dashboard/app.py`` headless, without usage statistics, with
static file serving on (the map's Leaflet is served from ``dashboard/static``, so maps draw
with no internet). It listens on 127.0.0.1 (this machine only) unless ``--address`` says
otherwise: other machines reach it through a TLS reverse proxy (``deploy/README.md``). The
store URL reaches the app through ``CRACKWATCH_DATABASE_URL``; without ``--url`` the app
uses that variable or the default SQLite file (see :mod:`jobs.settings`). Every page asks
for a sign-in (users: ``crackwatch user add``, :mod:`geodata.users`). URLs are printed with
their password masked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

__all__ = ["APP_PATH", "dashboard_cmd", "register", "streamlit_command"]

#: The Streamlit entry script.
APP_PATH = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
#: Where the dashboard listens unless told otherwise: this machine only.
DEFAULT_ADDRESS = "127.0.0.1"


def streamlit_command(port: int = 8501, address: str | None = DEFAULT_ADDRESS) -> list[str]:
    """The command line that serves the dashboard (``python -m streamlit run ...``) on
    ``address`` (default 127.0.0.1; ``None``: Streamlit's default, all interfaces)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    if address:
        cmd += ["--server.address", address]
    return cmd + ["--server.port", str(port),
                  "--server.headless", "true",
                  "--server.enableStaticServing", "true",
                  "--browser.gatherUsageStats", "false",
                  "--client.showSidebarNavigation", "false",
                  "--client.toolbarMode", "minimal"]


def dashboard_cmd(
    port: int = typer.Option(8501, min=1, max=65535, help="Port to serve on."),
    address: str = typer.Option(
        DEFAULT_ADDRESS, help="Address to listen on. Default 127.0.0.1: this machine only "
                              "(put a TLS reverse proxy in front, deploy/README.md); 0.0.0.0: "
                              "every interface."),
    url: str | None = typer.Option(
        None, help="Database URL (default: CRACKWATCH_DATABASE_URL, else "
                   "sqlite:///<CRACKWATCH_DATA_DIR>/crackwatch.db)."),
) -> None:
    """Start the dashboard: sites map, crack growth, defect history, alerts (Ctrl-C stops)."""
    from jobs.cli.common import _fail

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
    from jobs.settings import Settings, hide_password

    settings = Settings(**({"database_url": url} if url else {}))
    typer.echo(f"CrackWatch dashboard on http://{address}:{port}, store: "
               f"{hide_password(settings.resolved_database_url())}", err=True)
    users = settings.resolved_users_file()
    if not users.is_file():
        typer.echo(f"No sign-in users yet ({users}): create the first admin with "
                   f"`crackwatch user add NAME --role admin`; until then the dashboard shows "
                   f"only how to do that.", err=True)
    try:
        code = subprocess.call(streamlit_command(port, address), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add ``crackwatch dashboard`` to the main app."""
    app.command("dashboard")(dashboard_cmd)
