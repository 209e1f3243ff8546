"""``crackwatch user add|list|remove`` (the dashboard's sign-in users) and the masked store
URL in ``crackwatch demo``'s output; run in-process with typer's CliRunner."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jobs.cli import app

runner = CliRunner()


@pytest.fixture
def users_env(tmp_path, monkeypatch) -> Iterator[Path]:
    """CRACKWATCH_DATA_DIR in tmp_path, no CRACKWATCH_USERS_FILE: the default file."""
    from jobs.settings import get_settings

    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRACKWATCH_USERS_FILE", raising=False)
    get_settings.cache_clear()  # an earlier test's settings must not be reused
    yield tmp_path / "data" / "users.yaml"
    get_settings.cache_clear()


def test_user_add_asks_twice_hidden_stores_only_a_bcrypt_hash(users_env):
    from streamlit_authenticator.utilities import Hasher

    r = runner.invoke(app, ["user", "add", "Ana", "--role", "operator"],
                      input="correct horse\ncorrect horse\n")
    assert r.exit_code == 0, r.output
    assert "correct horse" not in r.output  # hidden input is not echoed
    assert r.output.count("Password") == 1 and "Repeat for confirmation" in r.output
    assert f"added user ana (operator) to {users_env}" in r.output
    assert stat.S_IMODE(users_env.stat().st_mode) == 0o600  # it holds the cookie key
    text = users_env.read_text()
    assert "correct horse" not in text
    config = yaml.safe_load(text)
    ana = config["credentials"]["usernames"]["ana"]
    assert ana["roles"] == ["operator"] and Hasher.is_hash(ana["password"])
    assert Hasher.check_pw("correct horse", ana["password"])  # what sign-in checks
    assert len(config["cookie"]["key"]) >= 32 and config["cookie"]["name"] == "crackwatch_auth"

    r = runner.invoke(app, ["user", "add", "bob", "--role", "viewer", "--password-stdin",
                            "--email", "bob@example.org"], input="bobs password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["user", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "$2b$" not in r.output and "password" not in r.output.lower()
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in r.output.splitlines()
            if line.startswith("│")]
    assert rows == [["ana", "operator", "-"], ["bob", "viewer", "bob@example.org"]]
    # the cookie key stays when users are added: signed-in browsers stay signed in
    assert yaml.safe_load(users_env.read_text())["cookie"]["key"] == config["cookie"]["key"]


def test_user_add_errors_are_clear_and_change_nothing(users_env):
    r = runner.invoke(app, ["user", "add", "ana", "--role", "boss"])
    assert r.exit_code == 2 and "unknown role 'boss': choose one of viewer, operator, admin" \
        in r.output
    assert "Password" not in r.output  # said before asking for a password
    r = runner.invoke(app, ["user", "add", "ana", "--role", "admin"], input="one-pass\nother\n")
    assert r.exit_code != 0 and "do not match" in r.output
    assert not users_env.exists()
    r = runner.invoke(app, ["user", "add", "ana", "--role", "admin", "--password-stdin"],
                      input="short\n")
    assert r.exit_code == 2 and "8 to 72 bytes" in r.output and not users_env.exists()
    r = runner.invoke(app, ["user", "add", "ana", "--role", "admin", "--password-stdin"],
                      input="")
    assert r.exit_code == 2 and "standard input is empty" in r.output
    r = runner.invoke(app, ["user", "add", "bad name!", "--role", "admin"])
    assert r.exit_code == 2 and "not usable" in r.output
    ok = runner.invoke(app, ["user", "add", "ana", "--role", "admin", "--password-stdin"],
                       input="first-pass\n")
    assert ok.exit_code == 0, ok.output
    before = users_env.read_bytes()
    r = runner.invoke(app, ["user", "add", "ANA", "--role", "viewer", "--password-stdin"],
                      input="second-pass\n")
    assert r.exit_code == 2 and "user 'ana' exists already (role admin)" in r.output
    assert "crackwatch user remove ana" in r.output
    assert users_env.read_bytes() == before


def test_user_list_and_remove(users_env, tmp_path, monkeypatch):
    r = runner.invoke(app, ["user", "list"])
    assert r.exit_code == 2 and f"no users file at {users_env}" in r.output.replace("\n", "")
    assert "crackwatch user add NAME --role admin" in r.output.replace("\n", " ")
    r = runner.invoke(app, ["user", "remove", "ana"])
    assert r.exit_code == 2 and "no users file" in r.output
    for name in ("ana", "bob"):
        assert runner.invoke(app, ["user", "add", name, "--role", "viewer",
                                   "--password-stdin"], input=f"{name}-password\n").exit_code == 0
    r = runner.invoke(app, ["user", "remove", "carl"])
    assert r.exit_code == 2 and "no user 'carl'" in r.output and "users: ana, bob" in r.output
    r = runner.invoke(app, ["user", "remove", "Ana"])
    assert r.exit_code == 0 and "removed user ana (viewer)" in r.output
    assert list(yaml.safe_load(users_env.read_text())["credentials"]["usernames"]) == ["bob"]
    runner.invoke(app, ["user", "remove", "bob"])
    r = runner.invoke(app, ["user", "list"])
    assert r.exit_code == 0 and "No users in" in r.output

    # CRACKWATCH_USERS_FILE and --users-file choose another file; a broken one is one line
    other = tmp_path / "etc" / "cw-users.yaml"
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(other))
    assert runner.invoke(app, ["user", "add", "ops", "--role", "admin", "--password-stdin"],
                         input="ops-password\n").exit_code == 0
    assert other.is_file()
    broken = tmp_path / "broken.yaml"
    broken.write_text("- just\n- a list\n")
    r = runner.invoke(app, ["user", "list", "--users-file", str(broken)])
    assert r.exit_code == 2 and "not a CrackWatch users file" in r.output
    assert "Traceback" not in r.output


def test_user_passwd_changes_the_hash_and_revokes_every_cookie(users_env):
    """Issue 30, item 6: `user passwd` (and `user remove`) draw a new cookie key, so a
    stay-signed-in cookie signed with the old one no longer verifies; an unknown user is one
    error line before any password is asked for; a new file's cookie lasts 12 hours."""
    import bcrypt

    def state() -> tuple[str, str]:
        c = yaml.safe_load(users_env.read_text())
        return c["cookie"]["key"], c["credentials"]["usernames"]["ana"]["password"]

    for name in ("ana", "bob"):
        assert runner.invoke(app, ["user", "add", name, "--role", "viewer",
                                   "--password-stdin"], input=f"{name}-password\n").exit_code == 0
    assert yaml.safe_load(users_env.read_text())["cookie"]["expiry_days"] == 0.5
    key, old_hash = state()
    r = runner.invoke(app, ["user", "passwd", "nobody"])
    assert r.exit_code == 2 and "no user 'nobody'" in r.output and "Password" not in r.output
    r = runner.invoke(app, ["user", "passwd", "ANA", "--password-stdin"],
                      input="short\n")
    assert r.exit_code == 2 and "8 to 72 bytes" in r.output
    assert state() == (key, old_hash)  # a refused change changes nothing
    r = runner.invoke(app, ["user", "passwd", "ANA", "--password-stdin"],
                      input="ana-new-password\n")
    assert r.exit_code == 0 and "cookies were revoked" in r.output
    new_key, new_hash = state()
    assert new_key != key and len(new_key) >= 32
    assert bcrypt.checkpw(b"ana-new-password", new_hash.encode())
    assert not bcrypt.checkpw(b"ana-password", new_hash.encode())
    assert stat.S_IMODE(users_env.stat().st_mode) == 0o600
    assert runner.invoke(app, ["user", "remove", "bob"]).exit_code == 0
    assert state()[0] != new_key


def test_demo_prints_the_store_url_with_the_password_masked(users_env, monkeypatch):
    from jobs import demo

    seen = []

    def fake_run_demo(url, data_dir, **kwargs):
        seen.append(url)
        return demo.DemoResult(url, [], [])

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    url = "postgresql+psycopg://crackwatch:Demo-S3cret@db.example:5432/cw"
    r = runner.invoke(app, ["demo", "--url", url], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert seen == [url]  # the demo itself gets the real URL
    assert "Demo-S3cret" not in r.output
    assert "store postgresql+psycopg://crackwatch:***@db.example:5432/cw" in r.output
    assert "crackwatch dashboard --url postgresql+psycopg://crackwatch:***@db.example" \
        in r.output
    assert "the password is masked here" in r.output
    # no users yet: the next step is the first admin
    assert "crackwatch user add NAME --role admin" in r.output
    runner.invoke(app, ["user", "add", "ana", "--role", "admin", "--password-stdin"],
                  input="ana-password\n")
    r = runner.invoke(app, ["demo", "--url", url], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "crackwatch user add" not in r.output
