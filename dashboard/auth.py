"""Sign-in for every dashboard page, and the signed-in user's role.

:func:`require_sign_in` runs first on every page (from :func:`dashboard.common.page_setup`):
until someone signs in, the page shows only the sign-in form and stops. Sign-in is
streamlit-authenticator 0.4 (``Authenticate.login``) against the users file of
:mod:`geodata.users` (bcrypt hashes, one role per user; ``CRACKWATCH_USERS_FILE``, default
``<data dir>/users.yaml``), which ``crackwatch user add|list|passwd|remove`` manages. The file is
read again on every run, so a removed user is signed out at their next click and a changed
role applies at once. A signed-in browser keeps a cookie (a JWT signed with the file's
``cookie.key``, ``cookie.expiry_days`` days, default 0.5 = 12 hours; 0: no cookie, sign in
again after a reload). The library sets it from JavaScript, so no proxy can make it HttpOnly
(the limits that remain: the short lifetime, the key drawn anew by ``user passwd`` and
``user remove``, which revokes every cookie, and TLS from the proxy, ``deploy/README.md``).

Failed sign-ins are throttled (:mod:`dashboard.signin_throttle`): 5 failures for one
username or 20 from one address within 15 minutes lock it for 15 minutes, during which no
password is even checked. A session whose user's password changed since sign-in is signed
out at its next click.

A fresh install has no users file: every page then says how to create the first admin
(``crackwatch user add NAME --role admin``) and shows nothing else; nobody can sign in
until that is done.

Teams with an identity provider: when Streamlit's own OIDC sign-in is configured (an
``[auth]`` section in ``.streamlit/secrets.toml``, see the README), pages use ``st.login``
instead, and the role is that of the users-file entry whose ``email`` is the provider's
e-mail of the user (``crackwatch user add NAME --role ROLE --email E``); someone signed in
at the provider without such an entry sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.signin_throttle import THROTTLE, client_address, minutes
from dashboard.text import code, md
from geodata.users import ROLES, UsersFileError, credential_fingerprint, load_config, role_at_least

__all__ = ["SESSION_KEY", "SignedIn", "current_user", "require_sign_in", "users_file"]

#: Where the signed-in user of this session is kept (a :class:`SignedIn`).
SESSION_KEY = "cw_signed_in"
_FLASH = "cw_auth_flash"
_FINGERPRINT = "cw_credential_fingerprint"
LOGIN_FIELDS = {"Form name": "Sign in to CrackWatch", "Username": "Username",
                "Password": "Password", "Login": "Sign in"}


@dataclass(frozen=True)
class SignedIn:
    """The user of this session: ``username`` and ``role`` (one of ``geodata.users.ROLES``)."""

    username: str
    role: str

    @property
    def can_act(self) -> bool:
        """Whether this user may acknowledge and resolve alerts (operator or admin)."""
        return role_at_least(self.role, "operator")


def users_file() -> Path:
    """The users file (``CRACKWATCH_USERS_FILE``, else ``<data dir>/users.yaml``)."""
    from geodata.settings import StoreSettings

    return StoreSettings().resolved_users_file()


def current_user() -> SignedIn | None:
    """The signed-in user of this session, or None (set by :func:`require_sign_in`)."""
    user = st.session_state.get(SESSION_KEY)
    return user if isinstance(user, SignedIn) else None


def _first_admin(path: Path, why: str) -> None:
    st.title("CrackWatch")
    st.info(f"**{why}** Nobody can sign in yet. On the machine that serves the dashboard, "
            f"create the first admin:\n\n"
            f"{code('crackwatch user add NAME --role admin')}\n\n"
            f"then reload this page. More users: "
            f"{code('crackwatch user add NAME --role viewer|operator|admin')}. "
            f"The users file is {code(path)} ({code('CRACKWATCH_USERS_FILE')} chooses "
            f"another).")
    st.stop()


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file: not configured
        return False


def role_for_email(users: dict[str, Any], email: str | None) -> tuple[str, str] | None:
    """``(username, role)`` of the users-file entry whose ``email`` is ``email`` (compared
    case-insensitively), or None."""
    if not email:
        return None
    wanted = email.strip().lower()
    for name, user in users.items():
        if str(user.get("email") or "").strip().lower() == wanted:
            return name, user["roles"][0]
    return None


def _oidc_sign_in(users: dict[str, Any]) -> SignedIn:
    if not st.user.get("is_logged_in"):
        st.title("CrackWatch")
        st.button("Sign in with your organisation's account", on_click=st.login,
                  key="cw_oidc_login")
        st.stop()
    found = role_for_email(users, st.user.get("email"))
    if found is None:
        st.title("CrackWatch")
        st.warning(f"You are signed in as {md(st.user.get('email') or '?')}, but that "
                   f"e-mail has no CrackWatch role. Ask an admin to run "
                   f"{code('crackwatch user add NAME --role viewer --email EMAIL')}.")
        st.button("Sign out", on_click=st.logout, key="cw_oidc_logout")
        st.stop()
    user = SignedIn(*found)
    st.session_state[SESSION_KEY] = user
    with st.sidebar:
        st.caption(f"Signed in as **{md(user.username)}** ({user.role})")
        st.button("Sign out", on_click=st.logout, key="cw_oidc_logout")
    return user


def require_sign_in() -> SignedIn:
    """The signed-in user; until there is one, show only the sign-in form and stop the page.

    Also shows "signed in as" and a sign-out button in the sidebar. Stops the page with an
    explanation when there are no users yet or the users file is broken.
    """
    import streamlit_authenticator as stauth
    from streamlit_authenticator.utilities import LoginError

    path = users_file()
    st.session_state.pop(SESSION_KEY, None)
    try:
        config = load_config(path)
    except FileNotFoundError:
        _first_admin(path, "No users yet.")
    except UsersFileError as exc:
        st.error(f"**The users file cannot be used:** {md(exc)}")
        st.stop()
    users = config["credentials"]["usernames"]
    if _oidc_configured():
        return _oidc_sign_in(users)
    if not users:
        _first_admin(path, "The users file has no users.")
    cookie = config["cookie"]
    authenticator = stauth.Authenticate(config["credentials"], cookie["name"], cookie["key"],
                                        float(cookie["expiry_days"]), auto_hash=False)
    attempt = _throttle(authenticator)
    was_signed_in = bool(st.session_state.get("authentication_status"))
    try:
        if not was_signed_in:
            flash = st.session_state.pop(_FLASH, None)
            if flash:
                st.warning(flash)
        authenticator.login(location="main", fields=LOGIN_FIELDS, key="cw_login",
                            clear_on_submit=True)
    except LoginError:  # a cookie of a user who has been removed since
        st.session_state["logout"] = True  # the library then ignores the cookie
        st.rerun()
    status = st.session_state.get("authentication_status")
    name = st.session_state.get("username")
    if status and name not in users:  # removed since signing in
        _sign_out(authenticator, f"User {md(name)} no longer exists: sign in again.")
    if status:
        fingerprint = credential_fingerprint(users[name])
        if st.session_state.setdefault(_FINGERPRINT, fingerprint) != fingerprint:
            _sign_out(authenticator, f"The password of {md(name)} was changed: sign in again.")
    if not status:
        if attempt.get("locked"):
            left, what = attempt["locked"]
            whose = "username" if what == "user" else "address"
            st.error(f"Too many failed sign-ins for this {whose}: sign-in is locked for "
                     f"{minutes(left)}. Ask an admin if you forgot the password"
                     f" ({code('crackwatch user passwd NAME')}).")
        elif status is False:
            st.error("Wrong username or password.")
        st.caption("No account? Ask an admin: accounts are made with "
                   f"{code('crackwatch user add')} on the server.")
        st.stop()
    if not was_signed_in and float(cookie["expiry_days"]) == 0:
        st.rerun()  # no cookie to wait for: redraw without the form now
    role = users[name]["roles"][0]
    assert role in ROLES  # load_config checked it
    user = SignedIn(name, role)
    st.session_state[SESSION_KEY] = user
    with st.sidebar:
        st.caption(f"Signed in as **{md(name)}** ({role})")
        authenticator.logout("Sign out", location="sidebar", key="cw_logout")
    if not st.session_state.get("authentication_status"):  # "Sign out" was clicked
        st.session_state.pop(SESSION_KEY, None)
        st.session_state.pop(_FINGERPRINT, None)
        st.info("Signed out.")
        st.stop()
    return user


def _sign_out(authenticator: Any, why: str) -> None:
    """End this session's sign-in (and its cookie), say why on the sign-in form, redraw."""
    authenticator.logout(location="unrendered")
    st.session_state.pop(_FINGERPRINT, None)
    st.session_state[_FLASH] = why
    st.rerun()


def _client() -> str | None:
    try:
        return client_address(st.context.ip_address, dict(st.context.headers))
    except Exception:  # noqa: BLE001 - no request context (bare script): no address
        return None


def _throttle(authenticator: Any) -> dict[str, Any]:
    """Put :data:`dashboard.signin_throttle.THROTTLE` in front of the library's password check
    of this run; returns what it saw (``locked``: ``(seconds, "user" | "client")`` when a
    submitted sign-in was refused unchecked)."""
    ctrl = authenticator.authentication_controller
    check = ctrl.login
    seen: dict[str, Any] = {}
    client = _client()

    def throttled_login(username: str | None = None, password: str | None = None,
                        *args: Any, **kwargs: Any) -> bool | None:
        if not username:  # a cookie sign-in (token), not a typed password
            return check(username, password, *args, **kwargs)
        name = username.lower().strip()
        left, what = THROTTLE.locked_for(name, client)
        if left > 0:
            seen["locked"] = (left, what)
            st.session_state["authentication_status"] = None
            return False
        ok = check(username, password, *args, **kwargs)
        if ok:
            THROTTLE.record_success(name)
        else:
            THROTTLE.record_failure(name, client)
            left, what = THROTTLE.locked_for(name, client)
            if left > 0:
                seen["locked"] = (left, what)
        return ok

    ctrl.login = throttled_login
    return seen
