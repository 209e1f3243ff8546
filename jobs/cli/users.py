"""``crackwatch user``: the dashboard's sign-in users (registered in :mod:`jobs.cli.main`).

    crackwatch user add NAME --role viewer|operator|admin [--email E] [--password-stdin]
    crackwatch user list
    crackwatch user remove NAME

The users file is ``CRACKWATCH_USERS_FILE``, default ``<data dir>/users.yaml``
(``--users-file`` overrides both); see :mod:`geodata.users` for its layout and the roles. The
password is asked twice without echo, or read from the first line of standard input with
``--password-stdin`` (scripts); it is never an argument (shell history, ``ps``) and never
printed: only its bcrypt hash is stored, and ``user list`` shows no hashes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobs.cli.common import _fail

__all__ = ["register", "user_app"]

console = Console()
user_app = typer.Typer(help="Dashboard sign-in users and their roles (viewer, operator, admin).",
                       no_args_is_help=True)

FILE_HELP = "Users file (default: CRACKWATCH_USERS_FILE, else <data dir>/users.yaml)."


def _path(users_file: Path | None) -> Path:
    from jobs.settings import Settings

    return users_file.expanduser() if users_file else Settings().resolved_users_file()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            _fail(ValueError("--password-stdin: standard input is empty; pipe the password "
                             "in, e.g. `printf '%s\\n' \"$PW\" | crackwatch user add ...`"))
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="Username (stored in lower case)."),
    role: str = typer.Option(..., help="viewer (sees everything), operator (also acknowledges "
                                       "and resolves alerts) or admin."),
    email: str | None = typer.Option(None, help="E-mail (matches an identity provider's "
                                                "sign-in, see README)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of "
                                             "standard input instead of asking."),
    users_file: Path | None = typer.Option(None, help=FILE_HELP),
) -> None:
    """Add a sign-in user with a role (the password is asked twice, hidden)."""
    from geodata.users import add_user, check_role, normalise_username

    path = _path(users_file)
    try:  # say what is wrong before asking for a password
        check_role(role)
        normalise_username(name)
    except ValueError as exc:
        _fail(exc)
    password = _read_password(password_stdin)
    try:
        user = add_user(path, name, password, role, email=email)
    except (ValueError, OSError) as exc:
        _fail(exc)
    console.print(f"added user [bold]{escape(user.username)}[/] ({user.role}) to "
                  f"{escape(str(path))}", soft_wrap=True)


@user_app.command("list")
def user_list(users_file: Path | None = typer.Option(None, help=FILE_HELP)) -> None:
    """The users and their roles (no password hashes)."""
    from geodata.users import list_users

    path = _path(users_file)
    try:
        users = list_users(path)
    except (ValueError, OSError) as exc:
        _fail(exc)
    if not users:
        console.print(f"No users in {escape(str(path))}: `crackwatch user add NAME --role admin`.",
                      soft_wrap=True)
        return
    t = Table(title=f"users ({path})")
    for col in ("user", "role", "email"):
        t.add_column(col)
    for u in users:
        t.add_row(escape(u.username), u.role, escape(u.email or "-"))
    console.print(t)


@user_app.command("passwd")
def user_passwd(
    name: str = typer.Argument(..., help="Username whose password changes."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the new password from the first line of "
                                             "standard input instead of asking."),
    users_file: Path | None = typer.Option(None, help=FILE_HELP),
) -> None:
    """Change a user's password; every stay-signed-in cookie stops working (everyone signs in
    again) and the user's open dashboard sessions end at their next click."""
    from geodata.users import find_user, set_password

    path = _path(users_file)
    try:  # say that the user is unknown before asking for a password
        find_user(path, name)
    except (LookupError, ValueError, OSError) as exc:
        _fail(exc)
    password = _read_password(password_stdin)
    try:
        user = set_password(path, name, password)
    except (LookupError, ValueError, OSError) as exc:
        _fail(exc)
    console.print(f"new password for [bold]{escape(user.username)}[/] ({user.role}); "
                  f"stay-signed-in cookies were revoked")


@user_app.command("remove")
def user_remove(
    name: str = typer.Argument(..., help="Username to remove."),
    users_file: Path | None = typer.Option(None, help=FILE_HELP),
) -> None:
    """Remove a user (their dashboard session ends at their next click; every stay-signed-in
    cookie is revoked)."""
    from geodata.users import remove_user

    path = _path(users_file)
    try:
        user = remove_user(path, name)
    except (LookupError, ValueError, OSError) as exc:
        _fail(exc)
    console.print(f"removed user [bold]{escape(user.username)}[/] ({user.role})")


def register(app: typer.Typer) -> None:
    """Add ``crackwatch user`` to the main app."""
    app.add_typer(user_app, name="user")
