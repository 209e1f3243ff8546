"""Issue 30, item 7 (the smaller items): a ``.env`` in the current folder is not read, a
store URL with a non-numeric port is one error line that never shows the password, and a
CSV export never holds a live spreadsheet formula."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from geodata import audit, store
from geodata.export import export_audit, export_site
from geodata.store.engine import session_scope
from jobs.cli import app

runner = CliRunner()
FORMULA = '=HYPERLINK("http://evil.example/x","click")'


def test_a_dot_env_in_the_current_folder_is_not_read(tmp_path, monkeypatch):
    from geodata.settings import StoreSettings

    monkeypatch.delenv("CRACKWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / ".env").write_text("CRACKWATCH_DATABASE_URL=sqlite:////tmp/elsewhere.db\n"
                                   "CRACKWATCH_USERS_FILE=/tmp/their-users.yaml\n")
    monkeypatch.chdir(tmp_path)
    s = StoreSettings()
    assert s.database_url is None or "elsewhere" not in str(s.database_url)
    assert "their-users" not in str(getattr(s, "users_file", "") or "")


def test_a_url_with_a_non_numeric_port_is_one_line_without_the_password():
    r = runner.invoke(app, ["site", "list", "--url", "postgresql://cw:s3cret@db:abc/cw"])
    assert r.exit_code == 2
    assert "invalid literal" in r.output and "Traceback" not in r.output
    assert "s3cret" not in r.output and "cw:***@db" in r.output


def test_csv_exports_hold_no_live_formula(engine, tmp_path):
    site = store.add_site(engine, FORMULA, profile="structure", crs_epsg=32633)
    with session_scope(engine, write=True) as s:
        audit.record(s, "alert.acknowledged", actor="-2+3", site_id=site.id,
                     details={"note": FORMULA})
    [out] = export_audit(engine, tmp_path / "audit.csv")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    cells = [v for r in rows for v in r.values() if v]
    assert not any(v.startswith(("=", "+", "-", "@")) for v in cells), cells
    assert any(v == "'" + FORMULA for v in cells) and any(v == "'-2+3" for v in cells)
    paths = export_site(engine, site.id, tmp_path / "site.csv", fmt="csv")
    for p in paths:
        for r in csv.reader(p.open(encoding="utf-8")):
            assert not any(v.startswith(("=", "+", "@")) for v in r), r


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path):
    import os
    import stat

    from geodata.store import connect, sqlite_url, upgrade

    url = sqlite_url(tmp_path / "data" / "crackwatch.db")
    upgrade(url)
    eng = connect(url)
    store.add_site(eng, "wall", profile="structure", crs_epsg=32633)
    for f in (tmp_path / "data").glob("crackwatch.db*"):
        mode = stat.S_IMODE(os.stat(f).st_mode)
        assert mode & 0o077 == 0, f"{f.name} is {oct(mode)}"
    eng.dispose()


def test_terminal_escape_sequences_in_names_are_shown_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRACKWATCH_DATABASE_URL", raising=False)
    name = "evil\x1b]0;pwned\x07\x1b[31mred"
    r = runner.invoke(app, ["site", "add", name, "--profile", "slope", "--crs", "EPSG:32633"])
    assert r.exit_code == 0, r.output
    for args in (["site", "list"], ["survey", "list", "--site", name]):
        out = runner.invoke(app, args, env={"COLUMNS": "250"}).output
        assert "\x1b" not in out and "\x07" not in out, (args, out)
    assert "evil\\x1b]0;pwned\\x07" in runner.invoke(app, ["site", "list"],
                                                      env={"COLUMNS": "250"}).output
