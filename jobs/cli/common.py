"""What every ``crackwatch`` command shares: the consoles, the one error printer (exit code 2),
the common option help texts, the store a command opens (``--url``, else the settings), and
the site a command names.

Below every other module of :mod:`jobs.cli` (issue 17: the command modules import this one,
never :mod:`jobs.cli.main` or each other's helpers, so there is no import circle).
"""

from __future__ import annotations

import getpass
import shlex
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["BY_HELP", "SITE_HELP", "SITE_ID_HELP", "URL_HELP", "cli_actor", "command_line",
           "console", "err_console", "fail", "notifiers", "open_store", "profile_of", "site_ref",
           "visible"]

#: C0 and C1 control characters but newline and tab: a terminal runs them (issue 30: a site
#: or file named with ``ESC ] 0 ; ... BEL`` retitled the terminal, ``ESC [ 31 m`` recoloured it).
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
            if c not in (0x09, 0x0A)}


def visible(text: str) -> str:
    """``text`` with every terminal control character shown as ``\\xNN`` (never run)."""
    return text.translate(_CONTROL)


class SafeConsole(Console):
    """A Rich console that shows control characters in what it prints (``\\x1b``) instead
    of sending them to the terminal: every string it renders, table cells included, goes
    through :func:`visible` (Rich's own styles are added after, so colours still work)."""

    def render_str(self, text: str, **kwargs):  # noqa: D102 - Console's
        return super().render_str(visible(text), **kwargs)


console = SafeConsole()
err_console = SafeConsole(stderr=True)


def fail(exc: Exception) -> NoReturn:
    """Print ``error: <exc>`` on stderr (Rich markup escaped) and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, markup=True)
    raise typer.Exit(code=2)


_fail = fail  # the name the command modules use


URL_HELP = "Store URL (default: CRACKWATCH_DATABASE_URL or the SQLite file in the data dir)."


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code=2)


def open_store(url: str | None, *, read_only: bool = False):
    """The store at ``url`` (default: settings), schema upgraded; a bad, unreachable or
    unwritable store is one error line and exit 2, not a traceback.

    ``read_only`` (listing commands): never creates or migrates the store, so a read-only
    data folder still lists; a missing store or a schema behind this CrackWatch's is one
    error line saying which command fixes it.
    """
    from geodata.errors import StoreError
    from geodata.store import connect, upgrade
    from jobs.settings import get_settings

    url = url or get_settings().resolved_database_url()
    if read_only:
        return _open_store_read_only(url)
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        upgrade(url)
        return connect(url)
    except StoreError as exc:
        from jobs.storage_errors import storage_problem

        _fail(StoreError(storage_problem(exc, url=url) or
                         f"{str(exc).strip().splitlines()[0]} (check --url or "
                         f"CRACKWATCH_DATABASE_URL)"))
    except OSError as exc:
        _fail(OSError(f"cannot create the store's folder for {url}: {exc}; choose a writable "
                      f"place with --url or CRACKWATCH_DATA_DIR"))


def _open_store_read_only(url: str):
    """:func:`open_store` for listing commands: connect and check the schema, migrate nothing."""
    from geodata.errors import StoreError
    from geodata.store import connect
    from geodata.store.migrate import current_revision, head_revision

    where = url
    try:
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            rev, engine = None, None
        else:
            engine = connect(url, read_only=True)
            where = url if engine.url.get_backend_name() == "sqlite" else \
                engine.url.render_as_string(hide_password=True)
            try:
                rev = current_revision(engine)
            except Exception as exc:  # noqa: BLE001 - driver errors: one line, not a traceback
                raise StoreError(f"cannot read the database {where}: "
                                 f"{str(exc).strip().splitlines()[0]}") from exc
    except StoreError as exc:
        _fail(StoreError(f"{str(exc).strip().splitlines()[0]} (check --url or "
                         f"CRACKWATCH_DATABASE_URL)"))
    head = head_revision()
    if rev == head:
        return engine
    if engine is not None:
        engine.dispose()
    if rev is None:
        _fail(StoreError(f"there is no CrackWatch store at {where} yet: `crackwatch site add` "
                         f"or `crackwatch demo` creates one (check --url or "
                         f"CRACKWATCH_DATABASE_URL)"))
    _fail(StoreError(f"the store at {where} has schema {rev}, this CrackWatch needs {head}: "
                     f"run `crackwatch db upgrade` (with --url if you gave one) where the store "
                     f"is writable; listing commands never migrate it"))


SITE_HELP = "Site name (see `crackwatch site list`)."
SITE_ID_HELP = "Site id instead of --site (see `crackwatch site list`)."


def site_ref(site: str | None, site_id: int | None) -> int | str:
    """The site a command names: ``--site-id`` (an id) or ``--site`` (a name); exactly one."""
    if (site is None) == (site_id is None):
        _fail(ValueError("give the site as --site NAME or --site-id ID (one of them)"))
    return site_id if site_id is not None else site


BY_HELP = "Who makes the change, for the audit trail (default: your login name)."


def cli_actor(by: str | None) -> str:
    """The actor of a command: ``--by``, else the login name, else ``cli``."""
    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser() or "cli"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli"


def notifiers() -> list:
    """:func:`jobs.notify.notifiers_from_env`, imported when a command needs it (the store
    stack it pulls in would slow every ``crackwatch`` start)."""
    from jobs.notify import notifiers_from_env

    return notifiers_from_env()


def command_line() -> str:
    """The running command as a user would type it: ``crackwatch <sub> --opt value ...``.

    Rebuilt from click's context (the parameters given explicitly, or that differ from their
    defaults), so it is right however the command was invoked (shell, test runner, another
    program).
    """
    try:  # typer >= 0.2x vendors its own click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on upstream click
        from click import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return "crackwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    # The sub-command names from the context chain, not ``command_path``: under
    # ``python -m jobs.cli`` the root's name is ``python -m jobs.cli``, not one word.
    names, c = [], ctx
    while c.parent is not None:
        names.append(c.info_name)
        c = c.parent
    words = ["crackwatch", *reversed(names)]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        source = ctx.get_parameter_source(param.name)
        given = source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
        if (value == param.default and not given) or value is None or value in ((), []):
            continue
        if getattr(param, "param_type_name", "") == "argument":
            words += [str(v) for v in (value if isinstance(value, list | tuple) else [value])]
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            words.append(flag if value else (param.secondary_opts or [flag])[0])
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            words += [flag, str(v)]
    return " ".join(shlex.quote(w) for w in words)


def profile_of(model_name: str, profile: str | None) -> str:
    """``profile`` if given, else the site profile the model is the default of, else the one
    its card says it serves (``site_profile``: a former default such as ``-slope2``), else
    ``structure``."""
    from engine.cards import find_card
    from engine.errors import ModelCardError, ModelNotFoundError
    from engine.registry import PROFILE_MODELS

    if profile:
        return profile
    default = next((p for p, m in PROFILE_MODELS.items() if m == model_name), None)
    if default:
        return default
    try:
        served = find_card(model_name).get("site_profile")
    except (ModelNotFoundError, ModelCardError):
        served = None
    return served if served in PROFILE_MODELS else "structure"


RUNTIME_HELP = ("What runs the crack model on the CPU: auto (the fastest installed: OpenVINO, "
                "else ONNX Runtime, else PyTorch; always PyTorch on CUDA) | openvino | "
                "onnxruntime | torch. Default: CRACKWATCH_RUNTIME, else auto.")


def runtime_option():
    """The ``--runtime`` option of ``infer``, ``run``, ``scheduler`` and ``bench``."""
    return typer.Option(None, "--runtime", help=RUNTIME_HELP)


def runtime_choice(runtime: str | None, device: str) -> str:
    """``--runtime`` (else ``CRACKWATCH_RUNTIME``) checked for ``device``: the name as given
    (``auto`` stays ``auto``, resolved where the model loads); an unknown or uninstalled
    runtime is one ``error:`` line."""
    from engine.runtime import RuntimeUnavailableError, resolve_runtime
    from jobs.settings import get_settings

    choice = runtime or get_settings().runtime
    try:
        resolve_runtime(choice, device)
    except RuntimeUnavailableError as exc:
        _fail(exc)
    return choice.strip().lower()
