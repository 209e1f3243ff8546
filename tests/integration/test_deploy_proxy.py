"""``crackwatch dashboard`` behind the TLS reverse proxies of ``deploy/`` (nginx, Caddy).

Starts the dashboard with the real command (default address: 127.0.0.1 only, checked from
this machine's other address), then nginx with ``deploy/nginx/crackwatch.conf`` and Caddy
with ``deploy/caddy/Caddyfile`` (ports, name and certificate paths replaced by a test
certificate), and signs in through each with headless Chromium: the page, its websocket,
the static Leaflet and the sign-in cookie all pass through the proxy. Skips without the
``nginx`` / ``caddy`` binaries (``apt-get install nginx caddy``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_dashboard import USERS, seed_store, write_users
from tests.integration.test_dashboard_browser import (
    CHROMIUM,
    ROOT,
    _free_port,
    _unavailable,
    _wait_healthy,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _nginx_conf(folder: Path, port: int, dash_port: int) -> Path:
    conf = (ROOT / "deploy" / "nginx" / "crackwatch.conf").read_text()
    conf = re.sub(r"\n\s*listen \[::\].*", "", conf)
    conf = (conf.replace("listen 80;", f"listen 127.0.0.1:{_free_port()};")
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
            .replace("crackwatch.example.org;", "localhost;")
            .replace("/etc/letsencrypt/live/crackwatch.example.org/fullchain.pem",
                     str(folder / "cert.pem"))
            .replace("/etc/letsencrypt/live/crackwatch.example.org/privkey.pem",
                     str(folder / "key.pem"))
            .replace("127.0.0.1:8501", f"127.0.0.1:{dash_port}"))
    path = folder / "nginx.conf"
    path.write_text(f"pid {folder}/nginx.pid; error_log {folder}/nginx-error.log;\n"
                    f"events {{}}\nhttp {{ access_log {folder}/nginx-access.log;\n{conf}\n}}\n")
    return path


def _caddyfile(folder: Path, port: int, dash_port: int) -> Path:
    cf = (ROOT / "deploy" / "caddy" / "Caddyfile").read_text()
    cf = (cf.replace("crackwatch.example.org {",
                     f"localhost:{port} {{\n\ttls {folder}/cert.pem {folder}/key.pem")
          .replace("127.0.0.1:8501", f"127.0.0.1:{dash_port}"))
    path = folder / "Caddyfile"
    path.write_text("{\n\tadmin off\n\tauto_https disable_redirects\n}\n" + cf)
    return path


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the proxy exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout_s} s")


def test_dashboard_behind_nginx_and_caddy_with_tls(tmp_path: Path):
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM}")
    missing = [b for b in ("nginx", "caddy", "openssl") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install nginx caddy openssl)")
    from playwright.sync_api import expect, sync_playwright

    seeded = seed_store(tmp_path / "store")
    users = write_users(tmp_path / "users.yaml")
    dash_port = _free_port()
    env = {**os.environ, "CRACKWATCH_USERS_FILE": str(users),
           "CRACKWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "jobs.cli", "dashboard", "--port",
                               str(dash_port), "--url", seeded["url"]], env=env, cwd=tmp_path,
                              stdout=(tmp_path / "dash.log").open("w"),
                              stderr=subprocess.STDOUT)]
    try:
        _wait_healthy(f"http://127.0.0.1:{dash_port}", procs[0])
        # 127.0.0.1 only: this machine's other addresses get no answer
        for addr in subprocess.check_output(["hostname", "-I"], text=True).split():
            with pytest.raises(OSError):
                socket.create_connection((addr, dash_port), timeout=3).close()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                       check=True, capture_output=True)
        nginx_port, caddy_port = _free_port(), _free_port()
        conf = _nginx_conf(tmp_path, nginx_port, dash_port)
        subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(conf)], check=True,
                       capture_output=True)
        procs.append(subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(conf), "-g",
                                       "daemon off;"]))
        caddy_env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "x"),
                     "XDG_CONFIG_HOME": str(tmp_path / "xc")}
        procs.append(subprocess.Popen(["caddy", "run", "--config",
                                       str(_caddyfile(tmp_path, caddy_port, dash_port)),
                                       "--adapter", "caddyfile"], env=caddy_env,
                                      stdout=(tmp_path / "caddy.log").open("w"),
                                      stderr=subprocess.STDOUT))
        _wait_port(nginx_port, procs[1])
        _wait_port(caddy_port, procs[2])
        expect.set_options(timeout=30_000)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-dev-shm-usage"])
            for port in (nginx_port, caddy_port):
                base = f"https://localhost:{port}"
                context = browser.new_context(ignore_https_errors=True)
                page = context.new_page()
                page.set_default_timeout(30_000)
                resp = page.goto(base)
                # issue 30: no framing by other sites; the maps (same-origin iframes) still show
                assert resp.headers.get("x-frame-options") == "SAMEORIGIN", resp.headers
                assert resp.headers.get("content-security-policy") == "frame-ancestors 'self'"
                assert resp.headers.get("x-content-type-options") == "nosniff"
                page.get_by_label("Username").fill("olga")
                page.get_by_label("Password", exact=True).fill(USERS["olga"][0])
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_text("Sites overview").first).to_be_visible()
                sites = page.frame_locator(
                    'iframe[title="map of the sites coloured by alert level"]')
                expect(sites.locator("path.leaflet-interactive")).to_have_count(2)
                page.wait_for_timeout(1500)  # the cookie component answers
                page.goto(f"{base}/Alerts")  # a new session, signed in by the cookie
                expect(page.get_by_text("Open alerts (2)")).to_be_visible()
                assert "crackwatch_auth" in {c["name"] for c in context.cookies()}
                context.close()
            browser.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
