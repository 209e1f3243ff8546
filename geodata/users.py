"""Sign-in users of the dashboard: a YAML credentials file with bcrypt hashes and one role each.

The file is the configuration layout of streamlit-authenticator 0.4 (which signs users in on
the dashboard, :mod:`dashboard.auth`)::

    cookie:                      # the "stay signed in" cookie: a JWT signed with key
      name: crackwatch_auth
      key: <random, made when the file is created>
      expiry_days: 0.5           # 12 hours (files made before issue 30: 7)
    credentials:
      usernames:
        ana:
          name: ana
          password: $2b$12$...   # bcrypt hash (cost 12); never the password itself
          roles: [operator]      # exactly one of ROLES
          email: ana@example.org # optional; matches an identity provider's e-mail (st.login)

Where: ``CRACKWATCH_USERS_FILE``, default ``<data dir>/users.yaml``
(:meth:`geodata.settings.StoreSettings.resolved_users_file`). Written with mode 0600 (it holds the
cookie key) by replacing the file atomically, so a reader never sees half a file. Managed
with ``crackwatch user add|list|passwd|remove`` (:mod:`jobs.cli.users`); the dashboard only
reads it.

Revocation: ``user passwd`` and ``user remove`` draw a new ``cookie.key``, so every
stay-signed-in cookie made before stops working (everyone signs in again: the cookie carries
only a username and an expiry, so one user's cookies cannot be told apart from another's);
an open dashboard session whose user's password hash changed since sign-in
(:func:`credential_fingerprint`) is signed out at its next click.

Roles (:data:`ROLES`), each including the ones before it:

* ``viewer``: sees every page;
* ``operator``: also acknowledges and resolves alerts (recorded with the username);
* ``admin``: everything an operator does; the role for changing settings. Users themselves
  are managed on the command line, by whoever can write the users file.

Usernames are stored in lower case (streamlit-authenticator lower-cases what is typed at
sign-in); passwords are hashed with bcrypt (``bcrypt.hashpw``, cost 12, the library's own
``Hasher`` format) and must be 8 to 72 bytes (bcrypt's limit) without leading or trailing
spaces (the sign-in form strips them).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ROLES",
    "DuplicateUserError",
    "UnknownUserError",
    "User",
    "UsersFileError",
    "add_user",
    "check_role",
    "hash_password",
    "list_users",
    "credential_fingerprint",
    "find_user",
    "load_config",
    "remove_user",
    "set_password",
    "role_at_least",
]

#: The roles, least to most rights.
ROLES = ("viewer", "operator", "admin")
COOKIE_NAME = "crackwatch_auth"
#: Lifetime of the stay-signed-in cookie: 12 hours, one working shift (OWASP Session
#: Management Cheat Sheet: an absolute timeout of 4-8 hours for office-hours applications;
#: the dashboard is also read on night call-outs). Was 7 days before issue 30.
COOKIE_EXPIRY_DAYS = 0.5
BCRYPT_ROUNDS = 12
MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72  # bcrypt uses (and bcrypt >= 5 accepts) at most 72 bytes
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_HEADER = ("# CrackWatch dashboard sign-in users: manage with\n"
           "# `crackwatch user add|list|passwd|remove`.\n"
           "# Passwords are bcrypt hashes; cookie.key signs the stay-signed-in cookie (keep "
           "this file private).\n")


class UsersFileError(ValueError):
    """The users file cannot be read or is not a CrackWatch users file."""


class DuplicateUserError(ValueError):
    """``user add`` of a username that exists."""


class UnknownUserError(LookupError):
    """``user remove`` of a username that does not exist."""


@dataclass(frozen=True)
class User:
    """One sign-in user as listed: no password hash."""

    username: str
    role: str
    email: str | None = None


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`; raises ValueError naming them otherwise."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def role_at_least(role: str | None, minimum: str) -> bool:
    """Whether ``role`` has the rights of ``minimum`` (``viewer < operator < admin``)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(check_role(minimum))


def normalise_username(username: str) -> str:
    """``username`` stripped and lower-cased; raises ValueError for one that cannot be used."""
    name = (username or "").strip().lower()
    if not _USERNAME.match(name):
        raise ValueError(f"username {username!r} is not usable: 1-64 characters, letters, "
                         f"digits and . _ @ - (starting with a letter or digit)")
    return name


def hash_password(password: str) -> str:
    """The bcrypt hash (``$2b$12$...``) of ``password``.

    Raises:
        ValueError: shorter than 8 or longer than 72 bytes (UTF-8), or with leading or
            trailing spaces.
    """
    import bcrypt

    raw = password.encode("utf-8")
    if password != password.strip():
        raise ValueError("the password starts or ends with spaces, which the sign-in form "
                         "strips: leave them out")
    if not MIN_PASSWORD_BYTES <= len(raw) <= MAX_PASSWORD_BYTES:
        raise ValueError(f"the password must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} "
                         f"bytes long (bcrypt's limit), got {len(raw)}")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode("ascii")


def _new_config() -> dict[str, Any]:
    return {"cookie": {"name": COOKIE_NAME, "key": secrets.token_urlsafe(32),
                       "expiry_days": COOKIE_EXPIRY_DAYS},
            "credentials": {"usernames": {}}}


def load_config(path: Path) -> dict[str, Any]:
    """The users file at ``path`` as streamlit-authenticator's config dict, checked.

    Raises:
        FileNotFoundError: no file there (create it with ``crackwatch user add``).
        UsersFileError: unreadable, not YAML, or not the layout in the module docstring
            (a user without a bcrypt hash or with a role not in :data:`ROLES`).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no users file at {path}: create the first admin with "
                                f"`crackwatch user add NAME --role admin` (CRACKWATCH_USERS_FILE "
                                f"chooses another file)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise UsersFileError(f"{path} is not a CrackWatch users file (expected the keys "
                             f"'cookie' and 'credentials')")
    cookie = config.get("cookie")
    if not isinstance(cookie, dict) or not isinstance(cookie.get("key"), str) \
            or len(cookie["key"]) < 16:
        raise UsersFileError(f"{path}: 'cookie' needs a random 'key' of at least 16 characters "
                             f"(it signs the sign-in cookie)")
    cookie.setdefault("name", COOKIE_NAME)
    cookie.setdefault("expiry_days", COOKIE_EXPIRY_DAYS)
    creds = config.get("credentials") or {}
    users = creds.get("usernames") if isinstance(creds, dict) else None
    if users is None:
        users = {}
    if not isinstance(users, dict):
        raise UsersFileError(f"{path}: 'credentials.usernames' must be a mapping of users")
    for name, user in users.items():
        if not isinstance(user, dict):
            raise UsersFileError(f"{path}: user {name!r} must be a mapping")
        if not re.match(r"^\$2[aby]\$\d\d\$.{53}$", str(user.get("password", ""))):
            raise UsersFileError(f"{path}: user {name!r} has no bcrypt password hash (add users "
                                 f"with `crackwatch user add`, which hashes the password)")
        roles = user.get("roles")
        if not (isinstance(roles, list) and len(roles) == 1 and roles[0] in ROLES):
            raise UsersFileError(f"{path}: user {name!r} needs exactly one role of "
                                 f"{', '.join(ROLES)} (got {roles!r})")
    config["credentials"] = {"usernames": {str(k).lower(): v for k, v in users.items()}}
    return config


def _write(path: Path, config: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``config`` (mode 0600)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600 already
            f.write(_HEADER)
            yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_users(path: Path) -> list[User]:
    """Every user of the file, sorted by username (no hashes).

    Raises:
        FileNotFoundError, UsersFileError: as :func:`load_config`.
    """
    users = load_config(path)["credentials"]["usernames"]
    return [User(name, u["roles"][0], u.get("email") or None) for name, u in sorted(users.items())]


def add_user(path: Path, username: str, password: str, role: str, *,
             email: str | None = None) -> User:
    """Add a user; creates the file (and its cookie key) when it does not exist.

    Raises:
        ValueError: unknown role, unusable username or password (see :func:`hash_password`).
        DuplicateUserError: the username exists (remove it first to change it).
        UsersFileError: the existing file is not a users file.
    """
    check_role(role)
    name = normalise_username(username)
    path = Path(path)
    try:
        config = load_config(path)
    except FileNotFoundError:
        config = _new_config()
    users = config["credentials"]["usernames"]
    if name in users:
        raise DuplicateUserError(f"user {name!r} exists already (role {users[name]['roles'][0]})"
                                 f": `crackwatch user remove {name}` first to change it")
    entry: dict[str, Any] = {"name": name, "password": hash_password(password), "roles": [role]}
    if email:
        entry["email"] = email.strip()
    users[name] = entry
    _write(path, config)
    return User(name, role, entry.get("email"))


def credential_fingerprint(user: dict[str, Any]) -> str:
    """A short digest of a users-file entry's password hash: a dashboard session keeps the one
    of its sign-in and is signed out when it changes (``user passwd``, or remove + add)."""
    import hashlib

    return hashlib.sha256(str(user.get("password", "")).encode()).hexdigest()[:16]


def find_user(path: Path, username: str) -> User:
    """The user ``username`` of the file (no hash).

    Raises:
        FileNotFoundError, UsersFileError: as :func:`load_config`.
        UnknownUserError: no such user (the message lists who exists).
    """
    users = load_config(path)["credentials"]["usernames"]
    name = _existing(path, users, username)
    return User(name, users[name]["roles"][0], users[name].get("email") or None)


def _existing(path: Path, users: dict[str, Any], username: str) -> str:
    name = (username or "").strip().lower()
    if name not in users:
        raise UnknownUserError(f"no user {username!r} in {path}; users: "
                               f"{', '.join(sorted(users)) or 'none'}")
    return name


def _rotate_cookie_key(config: dict[str, Any]) -> None:
    config["cookie"]["key"] = secrets.token_urlsafe(32)


def set_password(path: Path, username: str, password: str) -> User:
    """Give an existing user a new password; every stay-signed-in cookie stops working (new
    cookie key) and the user's open sessions end at their next click.

    Raises:
        FileNotFoundError, UsersFileError: as :func:`load_config`.
        UnknownUserError: no such user.
        ValueError: an unusable password (see :func:`hash_password`).
    """
    config = load_config(path)
    users = config["credentials"]["usernames"]
    name = _existing(path, users, username)
    users[name]["password"] = hash_password(password)
    _rotate_cookie_key(config)
    _write(Path(path), config)
    u = users[name]
    return User(name, u["roles"][0], u.get("email") or None)


def remove_user(path: Path, username: str) -> User:
    """Remove a user; their dashboard session ends at their next click and every
    stay-signed-in cookie stops working (new cookie key).

    Raises:
        FileNotFoundError, UsersFileError: as :func:`load_config`.
        UnknownUserError: no such user (the message lists who exists).
    """
    config = load_config(path)
    users = config["credentials"]["usernames"]
    name = _existing(path, users, username)
    gone = users.pop(name)
    _rotate_cookie_key(config)
    _write(Path(path), config)
    return User(name, gone["roles"][0], gone.get("email") or None)
