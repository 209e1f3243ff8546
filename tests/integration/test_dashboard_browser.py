"""The dashboard in a real headless Chromium, with the network cut at the browser.

Starts ``streamlit run dashboard/app.py`` exactly as ``crackwatch dashboard`` does (static
serving on; and once with it off, where the map inlines Leaflet) on a free local port
against a seeded SQLite store, opens the Site page, finds
the Leaflet map and its crack polygons (SVG paths) over the survey imagery, opens a crack's
popup, acknowledges an alert on the Alerts page, and saves screenshots under the test's
tmp dir. Every request the browser makes to anything but this machine is aborted and
recorded; the test fails if there was any.

Every page needs a sign-in (users of :data:`tests.integration.test_dashboard.USERS` in a
users file): the tests sign in through the form, and the browser's cookie keeps them signed
in on the pages they open next. Further tests: a page without sign-in shows only the form, a
viewer cannot acknowledge, and a Markdown/HTML site name renders as text.

Needs Debian's ``chromium`` (``apt-get install chromium chromium-driver``; ``.ci/run`` does)
and the ``playwright`` package (dev extra); browsers are not downloaded
(``playwright install`` is not needed). Without ``/usr/bin/chromium`` the test skips, except
in CI (env ``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy.orm import Session

from geodata import store
from jobs.cli.dashboard import streamlit_command
from tests.integration.test_dashboard import EVIL_NAME, SITE, USERS, seed_store, write_users

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _unavailable(reason: str) -> None:
    msg = (f"the browser test needs {reason}: apt-get install -y chromium chromium-driver "
           f"and pip install -e '.[dev]' (playwright)")
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set: this test never skips in CI)")
    pytest.skip(msg)


def _wait_idle(page, timeout_ms: int = 15_000) -> None:
    """Wait until Streamlit has finished the current script run (no "running" widget) and
    has dropped the elements left from the previous run (marked ``data-stale``)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=timeout_ms)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, timeout_s: float = 45) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}: "
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {base} within {timeout_s} s")


def _need_browser() -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The dashboard's environment: the test users, a data dir under ``tmp_path``, and this
    checkout's packages, not another install's (Streamlit puts only the script's folder on
    sys.path)."""
    users = write_users(tmp_path / "users.yaml")
    return {**os.environ, "CRACKWATCH_DATA_DIR": str(tmp_path / "data"),
            "CRACKWATCH_USERS_FILE": str(users),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
            **extra}


def _serve(tmp_path: Path, env: dict[str, str], mode: str = "static"):
    """Run the dashboard as ``crackwatch dashboard`` does (``inline``: static serving off)
    until the generator is closed; yields its base URL."""
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w+")  # noqa: SIM115 - closed below
    cmd = streamlit_command(port, "127.0.0.1")
    if mode == "inline":
        cmd[cmd.index("--server.enableStaticServing") + 1] = "false"
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _start(request, tmp_path: Path, mode: str):
    _need_browser()
    seeded = seed_store(tmp_path / "store")
    env = _env(tmp_path, CRACKWATCH_DATABASE_URL=seeded["url"])
    for base in _serve(tmp_path, env, mode):
        yield base, seeded, mode


@pytest.fixture
def static_dashboard(request, tmp_path: Path):
    """A running dashboard as ``crackwatch dashboard`` runs it: ``(base_url, seeded,
    "static")``."""
    yield from _start(request, tmp_path, "static")


@pytest.fixture(params=["static", "inline"])
def dashboard(request, tmp_path: Path):
    """A running dashboard on a seeded store: ``(base_url, seeded, mode)``.

    ``static``: as ``crackwatch dashboard`` runs it (Leaflet from /app/static/);
    ``inline``: static serving off (plain ``streamlit run``), Leaflet inlined in the map.
    """
    yield from _start(request, tmp_path, request.param)


class Browser:
    """Headless Chromium with the network cut at the browser: every request to anything
    but this machine is aborted and recorded in ``outside``."""

    def __init__(self, pw) -> None:
        self.outside: list[str] = []
        self.browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage"])
        # tall: Streamlit scrolls inside the page, so a screenshot shows the viewport only
        self.context = self.browser.new_context(viewport={"width": 1400, "height": 2200})
        self.context.route("**/*", self._guard)

    def _guard(self, route, request) -> None:
        host = urlparse(request.url).hostname or ""
        if urlparse(request.url).scheme in ("data", "blob", "about") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(request.url)
            route.abort()

    def page(self, timeout_ms: int | None = None):
        """A new page; ``timeout_ms`` (e.g. 60 s on the demo store) for its actions and for
        ``expect``, else 30 s for actions."""
        from playwright.sync_api import expect

        page = self.context.new_page()
        page.set_default_timeout(timeout_ms or 30_000)
        if timeout_ms:
            expect.set_options(timeout=timeout_ms)
        page.on("websocket", lambda ws: None if (urlparse(ws.url).hostname or "")
                in LOCAL_HOSTS else self.outside.append(ws.url))
        return page


def sign_in(page, base: str, user: str) -> None:
    """Sign in through the form on the Overview; the page then shows the overview."""
    from playwright.sync_api import expect

    page.goto(base)
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password", exact=True).fill(USERS[user][0])
    page.get_by_role("button", name="Sign in").click()
    # .first: during the rerun after sign-in Streamlit briefly shows the old and new title
    expect(page.get_by_text("Sites overview").first).to_be_visible()
    expect(page.get_by_text("Sign in to CrackWatch")).to_have_count(0)
    _wait_idle(page)


def test_site_map_and_alert_acknowledge_offline(dashboard, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    base, seeded, mode = dashboard
    outside: list[str] = []
    static_js: list[tuple[str, int, str]] = []

    def guard(route, request):
        host = urlparse(request.url).hostname or ""
        if urlparse(request.url).scheme in ("data", "blob", "about") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage"])
        # tall: Streamlit scrolls inside the page, so a screenshot shows the viewport only
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        context.route("**/*", guard)
        page = context.new_page()
        page.set_default_timeout(30_000)
        # assertions wait as long as actions: on a loaded 2-core machine the first render of
        # the map iframe took over expect's default 5 s (2 failures in 4 runs)
        expect.set_options(timeout=30_000)
        page.on("websocket", lambda ws: None if (urlparse(ws.url).hostname or "")
                in LOCAL_HOSTS else outside.append(ws.url))
        page.on("response", lambda r: static_js.append(
            (r.url, r.status, r.headers.get("content-type", "")))
            if "/app/static/" in r.url else None)

        # ---- sign in (the cookie keeps the browser signed in on the pages opened next)
        sign_in(page, base, "olga")
        # ---- Overview: both sites on the map, coloured by level
        page.goto(base)
        sites_map = page.frame_locator('iframe[title="map of the sites coloured by alert level"]')
        markers = sites_map.locator(".cw-site")
        expect(markers).to_have_count(2)
        expect(sites_map.locator('.cw-site[data-level="red"]')).to_have_count(1)
        # the offline basemap: land drawn from the vendored Natural Earth layer
        expect(sites_map.locator("path").first).to_be_attached()

        # ---- Site page: the map, its crack layer over the imagery, a popup
        page.goto(f"{base}/Site")
        expect(page.get_by_text("Survey date (UTC)")).to_be_visible()
        frame = page.frame_locator('iframe[title="crack map of the survey"]')
        cracks = frame.locator("path.leaflet-interactive")
        expect(cracks.first).to_be_attached()
        # three cracks of the latest survey and the dashed survey footprint
        assert cracks.count() == 4
        expect(frame.locator("img.leaflet-image-layer")).to_have_count(1)
        expect(frame.locator(".cw-legend")).to_contain_text("crack severity")
        expect(page.get_by_text("before: survey of 2024-05-01 08:00")).to_be_visible()
        _wait_idle(page)
        page.screenshot(path=str(tmp_path / "site.png"))
        # click the chosen (widest, outlined white) crack: its popup has the growth
        widest = frame.locator('path.leaflet-interactive[stroke="#ffffff"]')
        expect(widest).to_have_count(1)
        box = widest.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        popup = frame.locator(".leaflet-popup-content")
        expect(popup).to_contain_text("growth since previous survey")
        expect(popup).to_contain_text("+400 mm length")
        page.wait_for_timeout(400)  # the popup fades in
        page.screenshot(path=str(tmp_path / "site_popup.png"))
        # our sidebar navigation, not Streamlit's default (which would say "app")
        nav = page.get_by_test_id("stSidebar")
        expect(nav.get_by_role("link", name="Overview")).to_be_visible()
        expect(nav.get_by_role("link", name="app", exact=True)).to_have_count(0)

        # ---- Alerts page: acknowledge the first open alert through the form
        page.goto(f"{base}/Alerts")
        expect(page.get_by_text("Open alerts (2)")).to_be_visible()
        expect(page.get_by_text("Recorded as olga.")).to_be_visible()
        expect(page.get_by_label("Your name")).to_have_count(0)
        page.get_by_label("Note").fill("seen in the browser test")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("acknowledged.", exact=False)).to_be_visible()
        _wait_idle(page)
        page.screenshot(path=str(tmp_path / "alerts.png"))
        browser.close()

    assert outside == [], f"requests left this machine: {outside}"
    leaflet = [r for r in static_js if r[0].endswith("/vendor/leaflet/leaflet.js")]
    if mode == "static":
        assert leaflet and leaflet[0][1] in (200, 304) and "javascript" in leaflet[0][2]
    else:
        assert static_js == []  # nothing fetched: Leaflet came inside the map HTML
    assert (tmp_path / "site.png").stat().st_size > 10_000
    eng = store.connect(seeded["url"])
    with Session(eng) as s:
        acked = [a for a in (s.get(store.Alert, i) for i in seeded["alert_ids"])
                 if a.acknowledged_at is not None]
    eng.dispose()
    assert len(acked) == 1 and acked[0].acknowledged_by == "olga"  # the signed-in user
    assert acked[0].acknowledge_note == "seen in the browser test"


PAGE_PATHS = ["", "/Site", "/Defect_history", "/Alerts", "/Runs", "/Models"]


def test_without_sign_in_pages_show_only_the_form_and_a_viewer_cannot_acknowledge(
        static_dashboard, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    base, seeded, _ = static_dashboard
    with sync_playwright() as pw:
        b = Browser(pw)
        expect.set_options(timeout=30_000)
        page = b.page()
        # ---- nobody signed in: every page is the sign-in form and nothing else
        for path in PAGE_PATHS:
            page.goto(base + path)
            expect(page.get_by_text("Sign in to CrackWatch")).to_be_visible()
            _wait_idle(page)
            main = page.get_by_test_id("stMain")
            expect(main.get_by_role("textbox")).to_have_count(2)  # username, password
            for absent in ("Sites overview", "Open alerts", "Job runs", "Defect history",
                           "north-slope"):
                expect(page.get_by_text(absent)).to_have_count(0)
            expect(page.locator("iframe[title*='map']")).to_have_count(0)
            expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
            expect(page.get_by_test_id("stSidebar").get_by_role("link")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "sign_in.png"))
        # ---- a wrong password is refused
        page.get_by_label("Username").fill("vic")
        page.get_by_label("Password", exact=True).fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong username or password.")).to_be_visible()
        expect(page.get_by_text("Open alerts")).to_have_count(0)
        # ---- the viewer sees the alerts but no form to act on them
        sign_in(page, base, "vic")
        page.goto(f"{base}/Alerts")
        expect(page.get_by_text("Open alerts (2)")).to_be_visible()
        expect(page.get_by_text("needs the operator or admin role")).to_be_visible()
        _wait_idle(page)
        expect(page.get_by_role("button", name="Save")).to_have_count(0)
        expect(page.get_by_label("Note")).to_have_count(0)
        expect(page.get_by_test_id("stSidebar")).to_contain_text("Signed in as vic (viewer)")
        page.screenshot(path=str(tmp_path / "alerts_viewer.png"))
        # ---- signing out ends it: the next page is the form again
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("Signed out.")).to_be_visible()
        _wait_idle(page)
        page.goto(f"{base}/Alerts")
        expect(page.get_by_text("Sign in to CrackWatch")).to_be_visible()
        expect(page.get_by_text("Open alerts")).to_have_count(0)
        b.browser.close()
    assert b.outside == [], f"requests left this machine: {b.outside}"
    eng = store.connect(seeded["url"])
    with Session(eng) as s:
        assert all(s.get(store.Alert, i).acknowledged_at is None for i in seeded["alert_ids"])
    eng.dispose()


def _shown(locator) -> str:
    """The text a reader sees (without the invisible word joiners that stop autolinks)."""
    return locator.inner_text().replace("\u2060", "")


def _no_markup(page) -> None:
    """Nothing of the name became an image, a link, bold text, a colour or math."""
    from playwright.sync_api import expect

    main = page.get_by_test_id("stMain")
    expect(main.locator("img")).to_have_count(0)
    expect(main.locator("a[href*='evil']")).to_have_count(0)
    expect(main.locator("b", has_text="hi")).to_have_count(0)
    expect(main.locator(".katex")).to_have_count(0)
    expect(main.get_by_text("alarm", exact=True)).to_have_count(0)  # :red[alarm]


def test_a_markdown_html_site_name_renders_as_text(static_dashboard, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    base, seeded, _ = static_dashboard
    eng = store.connect(seeded["url"])
    unplaced = store.add_site(eng, EVIL_NAME, profile="slope", crs_epsg=32633)
    store.add_site(eng, EVIL_NAME + " on the map", profile="slope", crs_epsg=32633,
                   lon=15.02, lat=46.02)
    eng.dispose()
    with sync_playwright() as pw:
        b = Browser(pw)
        expect.set_options(timeout=30_000)
        page = b.page()
        sign_in(page, base, "vic")
        # Overview: the caption of sites without a location names it, as typed
        caption = page.get_by_text("Not on the map (no location):")
        expect(caption).to_have_count(1)  # a rerun after sign-in can briefly show it twice
        expect(caption).to_be_visible()
        assert _shown(caption) == f"Not on the map (no location): {EVIL_NAME}"
        _no_markup(page)
        # the map's label and popup of the placed one: text too
        frame = page.frame_locator('iframe[title="map of the sites coloured by alert level"]')
        expect(frame.locator(".leaflet-tooltip", has_text="![x]")).to_have_count(1)
        expect(frame.locator(".leaflet-tooltip img, .leaflet-tooltip b")).to_have_count(0)
        _wait_idle(page)
        page.screenshot(path=str(tmp_path / "evil_overview.png"))
        # Site page of the unplaced one: "Site NAME has no surveys yet", as typed
        page.goto(f"{base}/Site?site={unplaced.id}")
        info = page.get_by_text("has no surveys yet")
        expect(info).to_be_visible()
        assert f"Site {EVIL_NAME} has no surveys yet." in _shown(info)
        _no_markup(page)
        _wait_idle(page)
        page.screenshot(path=str(tmp_path / "evil_site.png"))
        b.browser.close()
    assert b.outside == [], f"requests left this machine: {b.outside}"


@pytest.fixture
def demo_dashboard(tmp_path: Path):
    """``crackwatch demo`` into a fresh data dir, then the dashboard on its store."""
    import sys

    _need_browser()
    env = _env(tmp_path)
    env.pop("CRACKWATCH_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "demo"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    yield from _serve(tmp_path, env)


@pytest.mark.slow
def test_demo_photo_site_defect_history_shows_tracked_cracks(demo_dashboard, tmp_path: Path):
    """After ``crackwatch demo``: the SIMULATED photo-inspection site's Defect history lists
    its photo tracks, charts width and length per view and shows before/after crops; the
    Site page lists its views; the Overview flags the Mt Agung and WebODM sites and their
    Site pages say why (issue 25). (Runs the whole demo first: minutes on 2 cores.)"""
    from urllib.parse import quote

    from playwright.sync_api import expect, sync_playwright

    base = demo_dashboard
    site = "SIMULATED photo inspections (UAV75 wall re-projected, crack grown)"

    with sync_playwright() as pw:
        b = Browser(pw)
        page = b.page(timeout_ms=60_000)

        sign_in(page, base, "vic")
        page.goto(f"{base}/Defect_history?site={quote(site)}")
        expect(page.get_by_text("Photo views: cracks over time")).to_be_visible()
        expect(page.get_by_text("No cracks recorded")).to_have_count(0)
        expect(page.get_by_text("Max width (mm) per crack")).to_be_visible()
        expect(page.get_by_text("Length (m) per crack")).to_be_visible()
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        expect(charts.first).to_be_visible()
        assert charts.count() >= 2
        # before / after crops of the first and the last inspection of one crack, from the
        # photos registered into the view
        images = page.locator('[data-testid="stImage"]')
        expect(images.filter(has_text="before: SIMULATED_crack_wall.jpg of 2026-03-02")
               ).to_have_count(1)
        expect(images.filter(has_text="after: SIMULATED_crack_wall.jpg of 2026-05-25")
               ).to_have_count(1)
        expect(page.get_by_text("Crack (track) for before / after")).to_be_visible()
        _wait_idle(page, 60_000)
        page.screenshot(path=str(tmp_path / "defect_history_photo_site.png"))

        page.goto(f"{base}/Site?site={quote(site)}")
        expect(page.get_by_text("Views (2)")).to_be_visible()
        expect(page.get_by_text("Photo registration")).to_be_visible()
        _wait_idle(page, 60_000)
        page.screenshot(path=str(tmp_path / "site_photo_views.png"))

        # issue 25: untrusted surveys said loudly, on the Overview and on their Site pages
        page.goto(base)
        _wait_idle(page, 60_000)
        for name in ("Mt Agung slope (real DJI photo)", "WebODM park (real orthophoto)"):
            expect(page.locator('[data-testid="stAlert"]').filter(has_text=name)
                   ).to_have_count(1)
        page.goto(f"{base}/Site?site={quote('WebODM park (real orthophoto)')}")
        expect(page.get_by_text("no crack width is resolved")).to_be_visible()
        page.goto(f"{base}/Site?site={quote('Mt Agung slope (real DJI photo)')}")
        expect(page.get_by_text("of the ground is observable")).to_be_visible()
        expect(page.get_by_text("refused by the photo check")).to_be_visible()
        _wait_idle(page, 60_000)
        page.screenshot(path=str(tmp_path / "site_agung_warnings.png"))
        b.browser.close()
    assert b.outside == [], f"requests left this machine: {b.outside}"
    assert (tmp_path / "defect_history_photo_site.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_morning_review_starts_at_the_worst_site_and_one_click_opens_its_crack(
        demo_dashboard, tmp_path: Path):
    """Issue 28, done-when: on the demo store the worst site (the SIMULATED growth site,
    the only one with an open alert) is the first row of the Overview's status list and the
    top marker at its place on the offline map; its alert's crack link opens the Site page on
    that crack with the rule's threshold lines drawn; no request leaves this machine."""
    from playwright.sync_api import expect, sync_playwright

    base = demo_dashboard
    with sync_playwright() as pw:
        b = Browser(pw)
        page = b.page(timeout_ms=60_000)
        sign_in(page, base, "olga")
        _wait_idle(page, 60_000)
        # st.dataframe draws on a canvas; its accessible table holds the rows in order
        status = page.locator('[data-testid="stDataFrame"]').first.locator("tr")
        expect(status.nth(1)).to_contain_text("SIMULATED growth")
        level = "orange" if "orange" in status.nth(1).text_content() else "yellow"
        # on the map: its cluster (three sites within 13 km) takes the colour of the worst
        sites_map = page.frame_locator(
            'iframe[title="map of the sites coloured by alert level"]')
        expect(sites_map.locator("path").first).to_be_attached()  # the offline basemap
        clusters = sites_map.locator(".cw-cluster")
        colours = {"orange": "rgb(239, 108, 0)", "yellow": "rgb(249, 168, 37)"}
        expect(clusters.filter(has_text="3")).to_have_css("background-color", colours[level])
        # one click from the alert opens its crack
        alert_row = page.locator('[data-testid="stDataFrame"]').nth(1).locator("tr").nth(1)
        href = re.search(r"Site\?site=\d+&survey=\d+&track=(\d+)&alert=\d+&crack=track\+\d+",
                         alert_row.text_content())
        assert href, alert_row.text_content()
        track = f"track {href.group(1)}"
        page.goto(f"{base}/{href.group(0)}")
        expect(page.get_by_text("Opened from alert")).to_be_visible()
        expect(page.get_by_text(f"Crack {track} (crack #")).to_be_visible()
        expect(page.get_by_text("the rule that fired")).to_be_visible()
        _wait_idle(page, 60_000)
        page.screenshot(path=str(tmp_path / "site_on_alert.png"))
        b.browser.close()
    assert b.outside == [], f"requests left this machine: {b.outside}"


@pytest.fixture
def change_dashboard(request, tmp_path: Path):
    """The seeded store with a site baseline fitted on the first survey (issue 29): the
    second survey has a "surface change (unsupervised)" layer. ``(base_url, seeded)``."""
    from jobs.site_baseline import fit_site_baseline

    _need_browser()
    seeded = seed_store(tmp_path / "store")
    eng = store.connect(seeded["url"])
    try:
        fitted = fit_site_baseline(eng, seeded["site_id"], tmp_path / "work",
                                   [seeded["survey_ids"][0]])
    finally:
        eng.dispose()
    assert fitted["layers"] and fitted["layers"][0]["changed_m2"] > 0, fitted
    env = _env(tmp_path, CRACKWATCH_DATABASE_URL=seeded["url"])
    for base in _serve(tmp_path, env):
        yield base, seeded


def test_the_site_page_draws_the_surface_change_layer(change_dashboard, tmp_path: Path):
    """Issue 29: the Site page draws a survey's unsupervised surface change as its own layer
    (legend, layer control, tooltip), apart from the cracks, and says what it is not."""
    from playwright.sync_api import expect, sync_playwright

    base, _seeded = change_dashboard
    with sync_playwright() as pw:
        b = Browser(pw)
        page = b.page(timeout_ms=60_000)
        sign_in(page, base, "vic")
        page.goto(f"{base}/Site?site={SITE}")
        expect(page.get_by_text("Survey date (UTC)")).to_be_visible()
        expect(page.get_by_text("surface change (unsupervised) since the site baseline")
               ).to_be_visible()
        expect(page.get_by_text("Not a crack map; never sets alert levels.")).to_be_visible()
        frame = page.frame_locator('iframe[title="crack map of the survey"]')
        expect(frame.locator(".cw-legend")).to_contain_text("surface change (unsupervised)")
        expect(frame.locator(".leaflet-control-layers-overlays")).to_contain_text(
            "surface change (unsupervised)")
        # the layer's outline: the blue dashed path, beside the crack paths
        expect(frame.locator('path[stroke="#2979ff"]').first).to_be_attached()
        _wait_idle(page, 60_000)
        page.screenshot(path=str(tmp_path / "site_surface_change.png"))
        b.browser.close()
    assert b.outside == [], f"requests left this machine: {b.outside}"
