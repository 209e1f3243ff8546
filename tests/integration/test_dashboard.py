"""The Streamlit dashboard, page by page, with ``streamlit.testing.v1.AppTest``.

Every page needs a sign-in: the tests use a users file with one user per role
(:data:`USERS`) and start signed in as the operator unless a test says otherwise; the
sign-in gate, roles and escaping of user text have tests of their own.

A seeded SQLite store (two sites; two surveys of one with a real little orthomosaic each, so
cracks, tracks, growth, imagery overlays and before/after chips exist; alerts; job runs)
and an empty store. Also the dashboard's own helpers: offline map HTML (no resource outside
this machine), imagery overviews, and the geodata functions the dashboard added
(:mod:`geodata.alerts_store`, the new :mod:`geodata.queries` reads).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import builders
import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.alert_view import alert_link
from engine.cards import list_cards
from geodata import alerts_store, queries, store
from geodata.errors import RecordNotFoundError, StoreError
from jobs.alerts.chart import rule_chart

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
EPSG = 32633
LON, LAT = 15.0, 46.0
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PIXEL_M = 0.01
RUN = {"model_name": "crackwatch-unet-mnv2", "model_version": "1", "tiling": {"tile": 512},
       "megapixels_per_s": 3.5}
SITE = "north-slope"
EMPTY_SITE = "quay-wall"
#: Sign-in users of the tests: username -> (password, role).
USERS = {"ada": ("ada-admin-pw", "admin"), "olga": ("olga-operator-pw", "operator"),
         "vic": ("vic-viewer-pw", "viewer")}
#: A site name that Markdown / HTML would render as an external image and bold text.
EVIL_NAME = "![x](http://evil.example/x.png) <b>hi</b> :red[alarm] $x^2$"


# --------------------------------------------------------------------------- seeding


def site_origin() -> tuple[float, float]:
    """UTM 33N coordinates of the site marker (the raster's lower-left corner)."""
    x, y = pyproj.Transformer.from_crs(4326, EPSG, always_xy=True).transform(LON, LAT)
    return round(x, 2), round(y, 2)


def strip(x0: float, x1: float, y: float, width_m: float) -> shapely.MultiPolygon:
    """A horizontal crack from x0 to x1 m east of the site origin, y m north of it."""
    ox, oy = site_origin()
    return shapely.MultiPolygon([shapely.box(ox + x0, oy + y, ox + x1, oy + y + width_m)])


def crack_frame(geoms: list[shapely.Geometry]) -> gpd.GeoDataFrame:
    """A crack frame at the site (see builders.crack_frame)."""
    return builders.crack_frame(geoms, crs=EPSG, pixel_size_m=PIXEL_M)


def write_orthomosaic(path: Path, cracks: list[shapely.Geometry]) -> Path:
    """A 4 m x 3 m RGB GeoTIFF (1 cm pixels) at the site, cracks drawn dark, a nodata
    corner (alpha 0)."""
    ox, oy = site_origin()
    cols, rows = 400, 300
    transform = from_origin(ox, oy + rows * PIXEL_M, PIXEL_M, PIXEL_M)
    rng = np.random.default_rng(0)
    rgb = np.empty((3, rows, cols), np.uint8)
    rgb[0], rgb[1], rgb[2] = 150, 140, 120
    rgb = np.clip(rgb + rng.integers(-15, 15, size=rgb.shape), 0, 255).astype(np.uint8)
    burnt = rasterize([(g, 1) for g in cracks], out_shape=(rows, cols), transform=transform,
                      all_touched=True, dtype="uint8")
    rgb[:, burnt == 1] = 25
    alpha = np.full((rows, cols), 255, np.uint8)
    alpha[:40, :40] = 0
    return builders.write_geotiff(path, np.concatenate([rgb, alpha[None]]),
                                  crs=f"EPSG:{EPSG}", transform=transform, photometric="RGB",
                                  alpha="YES")


#: Survey 1: A (1.0 m, 4 mm), B (0.8 m, 2 mm). Survey 2: A grew (1.4 m, 6 mm), B, new C.
SURVEY_CRACKS = [
    [strip(0.5, 1.5, 1.0, 0.004), strip(2.0, 2.8, 2.0, 0.002)],
    [strip(0.5, 1.9, 1.0, 0.006), strip(2.0, 2.8, 2.0, 0.002), strip(1.0, 2.0, 0.5, 0.003)],
]


def seed_store(folder: Path, *, with_imagery: bool = True, url: str | None = None) -> dict:
    """A store (SQLite under ``folder``, or the empty database at ``url``) with two sites,
    two surveys, cracks, tracks, alerts and job runs.

    Returns ``{"url", "site_id", "survey_ids", "alert_ids", "orthos"}``.
    """
    url = url or store.sqlite_url(folder / "crackwatch.db")
    store.upgrade(url)
    eng = store.connect(url)
    site = store.add_site(eng, SITE, profile="slope", crs_epsg=EPSG, lon=LON, lat=LAT,
                          timezone="Europe/Vienna", thresholds={"opening_rate_mm_per_day": 0.5})
    store.add_site(eng, EMPTY_SITE, profile="structure", crs_epsg=EPSG, lon=LON + 0.01,
                   lat=LAT + 0.01, model_name="crackwatch-unet-mnv2")
    ox, oy = site_origin()
    footprint = shapely.box(ox, oy, ox + 4, oy + 3)
    survey_ids, orthos = [], []
    for i, geoms in enumerate(SURVEY_CRACKS):
        ortho = folder / f"ortho_{i}.tif"
        if with_imagery:
            write_orthomosaic(ortho, geoms)
        sv = store.ingest_survey(eng, site.id, ortho, acquired_at=T0 + timedelta(days=30 * i),
                                 source_type="orthomosaic", sha256=f"{i + 1:x}" * 64,
                                 pixel_size_m=PIXEL_M, footprint=footprint)
        store.store_run(eng, sv.id, crack_frame(geoms), None, RUN)
        survey_ids.append(sv.id)
        orthos.append(ortho)
    with Session(eng) as s, s.begin():
        track_a = s.scalar(select(store.Crack.track_id).where(
            store.Crack.survey_id == survey_ids[1]).order_by(store.Crack.length_m.desc()))
        alerts = [
            store.Alert(site_id=site.id, track_id=track_a, survey_id=survey_ids[1],
                        level="orange", rule="slope.opening_rate", measured_value=0.067,
                        threshold=0.05, message="crack opening 0.067 mm/day >= 0.05",
                        raised_at=T0 + timedelta(days=30, hours=1),
                        details={"unit": "mm/day", "chart": rule_chart(
                            "slope", {"opening_rate_mm_per_day": [0.05, 0.5, 2.0]},
                            "slope.opening_rate")}),
            store.Alert(site_id=site.id, track_id=track_a, survey_id=survey_ids[1],
                        level="red", rule="slope.inverse_velocity", measured_value=5.2,
                        threshold=7.0, message="time of failure forecast within 7 days",
                        raised_at=T0 + timedelta(days=30, hours=2),
                        details={"unit": "days", "forecast": {
                            "status": "forecast", "failure_time": "2024-06-05T12:00:00+00:00",
                            "r_squared": 0.93, "n_points": 4, "days_after_last": 5.2}}),
        ]
        s.add_all(alerts)
        s.add_all([
            store.JobRun(job="nightly", site_id=site.id, survey_id=survey_ids[1],
                         status="succeeded", started_at=T0 + timedelta(days=30),
                         finished_at=T0 + timedelta(days=30, seconds=42),
                         steps={"ingest": "ok", "infer": "ok"}),
            store.JobRun(job="nightly", site_id=site.id, status="failed",
                         started_at=T0 + timedelta(days=31),
                         finished_at=T0 + timedelta(days=31, seconds=3),
                         error="Traceback...\nRasterReadError: inbox/broken.tif is truncated"),
        ])
        s.flush()
        alert_ids = [a.id for a in alerts]
    eng.dispose()
    return {"url": url, "site_id": site.id, "survey_ids": survey_ids, "alert_ids": alert_ids,
            "orthos": orthos}


def write_users(path: Path) -> Path:
    """The users file of :data:`USERS` (as ``crackwatch user add`` writes it)."""
    from geodata.users import add_user

    for name, (password, role) in USERS.items():
        add_user(path, name, password, role)
    return path


@pytest.fixture(scope="module")
def users_path(tmp_path_factory) -> Path:
    return write_users(tmp_path_factory.mktemp("users") / "users.yaml")


@pytest.fixture(autouse=True)
def _users_file(users_path, monkeypatch):
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(users_path))


def write_card(folder: Path) -> Path:
    """A model card like engine.train writes (JSON beside the weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = {"name": "crackwatch-unet-mnv2", "version": "1", "task": "binary crack segmentation",
            "architecture": {"name": "unet", "encoder": "mobilenet_v2"},
            "weights": {"file": "crackwatch-unet-mnv2.safetensors", "sha256": "ab" * 32,
                        "bytes": 13_000_000},
            "normalisation": {"scale": "1/255", "mean": [0.485, 0.456, 0.406]},
            "training_data": [{"dataset": "deepcrack", "license": "CC BY-NC 4.0"}],
            "metrics": {"validation": {"f1": 0.81, "iou": 0.68},
                        "uav75-test": {"at_0.5": {"f1": 0.74}}},
            "command": "crackwatch train --config unet.json"}
    path = folder / "crackwatch-unet-mnv2.json"
    path.write_text(json.dumps(card))
    (folder / "broken.json").write_text("{not json")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def any_seeded(request, tmp_path) -> dict:
    """A seeded store on SQLite and on PostGIS (fresh for each test)."""
    url = request.getfixturevalue("empty_postgis_url") if request.param == "postgis" else None
    return seed_store(tmp_path, url=url)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict:
    return seed_store(tmp_path_factory.mktemp("dash"))


@pytest.fixture
def app_env(monkeypatch, seeded):
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    return seeded


def signed_in_app(user: str | None = "olga", *, timeout: float = 90) -> AppTest:
    """An AppTest of the dashboard whose session is signed in as ``user`` (None: nobody),
    as streamlit-authenticator leaves it after a sign-in."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if user is not None:
        at.session_state["authentication_status"] = True
        at.session_state["username"] = user
    return at


def run_page(page: str | None = None, *, timeout: float = 90, user: str | None = "olga"
             ) -> AppTest:
    """Run the app signed in as ``user`` (and switch to ``page``, e.g.
    ``"pages/1_Site.py"``); no exception."""
    at = signed_in_app(user, timeout=timeout)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if page is not None:
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def unescape(markdown: str) -> str:
    """Markdown source with backslash escapes (and the invisible word joiners that stop
    autolinks, :func:`dashboard.text.md`) undone, as it reads once rendered."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Every text-like element of the page, joined (backslash escapes undone)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success",
                 "warning", "error"):
        parts += [unescape(str(e.value)) for e in getattr(at, kind)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(parts)


def iframes(at: AppTest) -> list[str]:
    """The HTML documents shown with st.iframe."""
    return [e.proto.srcdoc for e in at.get("iframe")]


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value.data if hasattr(d.value, "data") else d.value for d in at.dataframe]


# --------------------------------------------------------------------------- pages


def test_overview_page(app_env):
    at = run_page()
    body = texts(at)
    assert "Sites overview" in body
    assert "Sites=2" in body and "Open alerts=2" in body and "Sites at red=1" in body
    sites, alerts = frames(at)[:2]
    assert set(sites["site"]) == {SITE, EMPTY_SITE}
    # issue 28: the status list is worst first and links to each site's page
    assert list(sites["site"])[0] == SITE and list(sites["level"]) == ["red", "green"]
    assert sites["open"].iloc[0].startswith("Site?site=")
    assert "Sites at yellow=0" in body and "Sites on watch=0" in body
    assert sites.set_index("site").loc[SITE, "level"] == "red"
    assert sites.set_index("site").loc[EMPTY_SITE, "level"] == "green"
    assert int(sites.set_index("site").loc[SITE, "cracks in latest survey"]) == 3
    # issue 28, item 8: old data is flagged on a site without a survey interval
    assert sites.set_index("site").loc[SITE, "data age"].endswith(
        "days OLD (no survey interval set)")
    assert sites.set_index("site").loc[EMPTY_SITE, "data age"] == "no survey yet"
    from engine.profiles import read_profile_models

    assert sites.set_index("site").loc[SITE, "model"] == \
        f"profile default: {read_profile_models()['slope']}"
    assert sites.set_index("site").loc[EMPTY_SITE, "model"] == "crackwatch-unet-mnv2"
    assert set(alerts["level"]) == {"red", "orange"}
    by_rule = alerts.set_index("rule")
    assert by_rule.loc["slope.opening_rate", "measured"] == "0.067 mm/day"
    assert by_rule.loc["slope.opening_rate", "threshold"] == "0.05 mm/day"
    # issue 28: each alert links to its crack on the Site page; the forecast and message
    # follow the table in full
    link = by_rule.loc["slope.opening_rate", "crack"]
    assert link.startswith("Site?site=") and "&track=" in link and "&alert=" in link
    assert "forecast: failure forecast 2024-06-05 12:00 UTC, 5.2 days" in body
    (html,) = iframes(at)
    assert "L.markerClusterGroup" in html and SITE in html
    assert "#c62828" in html  # red marker
    # the worst site is drawn last and raised above its neighbours; nearby sites cluster
    # under the colour of the worst; the offline basemap (land, borders) is in the map
    assert html.index('"colour": "#c62828"') > html.index('"colour": "#2e7d32"')
    assert "zIndexOffset: 1000 * s.rank" in html and "window.CW_BASEMAP = " in html
    assert_offline(html)


def test_site_page_map_growth_and_chips(app_env):
    at = run_page("pages/1_Site.py")
    body = texts(at)
    assert "Cracks=3" in body and "New cracks=1" in body
    # the latest survey is chosen; the map draws its cracks over the imagery overlay
    (html,) = iframes(at)
    assert_offline(html)
    assert "L.imageOverlay" in html and "data:image/png;base64," in html
    assert html.count('"type": "Feature"') + html.count('"type":"Feature"') >= 3
    assert "growth since previous survey" in html and "+400 mm length" in html
    # growth charts of the chosen (widest) crack and site totals, the rate of the rule that
    # fired on it (its alerts are shown with it), before/after chips
    assert len(at.get("vega_lite_chart")) == 5 and "Alerts on this crack (2)" in body
    captions = [c for im in at.get("image") for c in im.captions]
    assert len(captions) == 2
    assert captions[0].startswith("before: survey of 2024-05-01 08:00")
    assert captions[1].startswith("after: survey of 2024-05-31 08:00")
    assert "Crack" in body and "+400 mm length, +2.0 mm max width in 30 d" in body
    # a new crack: the "before" chip shows the same ground in the previous survey
    eng = store.connect(app_env["url"])
    ev = queries.survey_track_events(eng, app_env["survey_ids"][1])
    eng.dispose()
    new_crack = int(ev.loc[ev["event"] == "new", "crack_id"].iloc[0])
    at.selectbox(key="site_crack").set_value(new_crack).run()
    assert not at.exception
    captions = [c for im in at.get("image") for c in im.captions]
    assert captions[0].endswith("(the crack was not seen yet)")
    assert "Growth since the previous survey:** new crack" in texts(at)
    # the date slider goes back to the first survey: two cracks, no chips before
    at.select_slider(key="site_survey").set_value(app_env["survey_ids"][0]).run()
    assert not at.exception
    assert "Cracks=2" in texts(at)
    assert "first survey" in texts(at)


def test_an_alert_opens_its_crack_on_the_site_page(app_env):
    """Issue 28, item 3: the alert's link opens the Site page on its survey and crack, with
    the alerts of that crack, the rule's threshold lines and the form to act right there."""
    orange, _red = app_env["alert_ids"]
    eng = store.connect(app_env["url"])
    alert = next(r for r in queries.all_alerts(eng).itertuples() if r.alert_id == orange)
    first_crack = queries.survey_track_events(eng, app_env["survey_ids"][0])
    eng.dispose()
    at = signed_in_app("olga", timeout=90)
    at.run()
    link = dict(p.split("=") for p in alert_link(alert).split("?")[1].split("&"))
    for k, v in link.items():
        at.query_params[k] = v
    at.switch_page("pages/1_Site.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    body = texts(at)
    track = int(alert.track_id)
    assert f"Opened from alert #{orange}: ORANGE slope.opening_rate on track {track}" in body
    assert at.select_slider(key="site_survey").value == app_env["survey_ids"][1]
    chosen = at.selectbox(key="site_crack")
    assert chosen.format_func(chosen.value).startswith(f"track {track} (crack #")
    assert f"Crack track {track} (crack #" in body and "Alerts on this crack (2)" in body
    # the rate chart of the rule that fired, with the site's three threshold lines
    specs = [json.loads(ch.proto.spec) for ch in at.get("vega_lite_chart")]
    lined = [sp for sp in specs if any(layer.get("mark", {}).get("type") == "rule"
                                       for layer in sp.get("layer", []))]
    assert len(lined) == 1
    labels = re.findall(r"(?:yellow|orange|red) [0-9.]+ mm/day", json.dumps(lined[0]) + "".join(
        str(ch.proto) for ch in at.get("vega_lite_chart")))
    assert {"yellow 0.05 mm/day", "orange 0.5 mm/day", "red 2 mm/day"} <= set(labels)
    # acknowledged right there, recorded as the signed-in user, and the form stays on it
    at.selectbox(key="site_alert_pick").set_value(orange)
    at.text_area(key="site_alert_note").input("seen from the site page")
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    assert f"Alert #{orange} acknowledged. Recorded as olga." in texts(at)
    assert at.selectbox(key="site_crack").value == chosen.value  # still on the crack
    assert len(first_crack)  # the store has a first survey to go back to


def test_site_page_without_imagery_and_without_surveys(app_env, tmp_path, monkeypatch):
    seeded = seed_store(tmp_path, with_imagery=False)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    at = run_page("pages/1_Site.py")
    body = texts(at)
    assert "Imagery not found on this machine" in body
    assert "imagery not found" in body  # chips
    (html,) = iframes(at)
    assert "L.imageOverlay" not in html and "L.geoJson" in html
    at.selectbox(key="site_select_Site").set_value(
        int(queries.sites_overview(store.connect(seeded["url"])).set_index("name")
            .loc[EMPTY_SITE, "site_id"])).run()
    assert not at.exception
    assert f"Site {EMPTY_SITE} has no surveys yet" in texts(at)


def test_defect_history_page(app_env):
    at = run_page("pages/2_Defect_history.py")
    assert not at.exception
    body = texts(at)
    assert "Crack tracks=3" in body and "Growing=1" in body and "New=1" in body
    (table,) = frames(at)
    assert len(table) == 3 and set(table["trend"]) == {"growing", "stable", "new"}
    # issue 28, item 6: the grown crack first, its alert level, units a person reads
    grown = table.iloc[0]
    assert grown["trend"] == "growing" and grown["alert"] == "red"
    assert grown["change_length"] == "+400 mm" and grown["change_width"] == "+2.0 mm"
    # orthomosaic cracks get charts, the grown crack's series and before/after crops
    assert "Map cracks over time" in body
    assert at.selectbox(key="dh_map_track").value == int(grown["track_id"])
    assert len(at.get("vega_lite_chart")) >= 4
    captions = [c for im in at.get("image") for c in im.captions]
    assert [x.split(":")[0] for x in captions] == ["before", "after"]
    assert "Alerts on this crack:" in body
    at.multiselect(key="dh_trend").set_value(["growing"]).run()
    (table,) = frames(at)
    assert list(table["trend"]) == ["growing"]
    assert "Shown=1" in texts(at)
    buttons = at.get("download_button")
    assert len(buttons) == 2


def test_alerts_page_acknowledge_and_resolve(app_env, tmp_path, monkeypatch):
    seeded = seed_store(tmp_path)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    at = run_page("pages/3_Alerts.py")
    assert "Open alerts (2)" in texts(at)
    orange, red = seeded["alert_ids"]
    at.selectbox(key="alert_pick").set_value(orange)
    at.radio(key="alert_action_kind").set_value("Acknowledge")
    assert not [t for t in at.text_input if t.label == "Your name"]  # the signed-in user
    assert "Recorded as olga." in texts(at)
    at.text_area(key="alert_note").input("checked on site, monitoring")
    submit = [b for b in at.button if b.label == "Save"]
    submit[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert f"Alert #{orange} acknowledged." in texts(at)
    eng = store.connect(seeded["url"])
    with Session(eng) as s:
        a = s.get(store.Alert, orange)
        assert a.acknowledged_by == "olga"
        assert a.acknowledge_note == "checked on site, monitoring"
        assert a.acknowledged_at is not None and a.resolved_at is None
    # resolving without a note is refused and changes nothing
    at.selectbox(key="alert_pick").set_value(red)
    at.radio(key="alert_action_kind").set_value("Resolve")
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert any("needs a note" in unescape(e.value) for e in at.error)
    with Session(eng) as s:
        assert s.get(store.Alert, red).resolved_at is None
    # with a note it closes; the history shows it
    at.selectbox(key="alert_pick").set_value(red)
    at.radio(key="alert_action_kind").set_value("Resolve")
    at.text_area(key="alert_note").input("false alarm: shadow")
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    assert "Open alerts (1)" in texts(at)
    with Session(eng) as s:
        assert s.get(store.Alert, red).resolve_note == "false alarm: shadow (olga)"
    history = next(f for f in frames(at) if "acknowledge note" in f.columns)
    assert set(history["state"]) == {"acknowledged", "resolved"}
    # the Audit view (last table) names who did what
    trail = frames(at)[-1]
    assert [(a, w) for a, w in zip(trail["action"], trail["actor"], strict=True)] == [
        ("alert.resolved", "olga"), ("alert.acknowledged", "olga")]
    eng.dispose()


def test_runs_page(app_env):
    at = run_page("pages/4_Runs.py")
    body = texts(at)
    assert "Job runs=2" in body and "Failed job runs=1" in body and "Inference runs=2" in body
    assert "Median megapixels/s=3.50" in body
    jobs, runs = frames(at)
    assert set(jobs["status"]) == {"succeeded", "failed"}
    assert "RasterReadError: inbox/broken.tif is truncated" in set(jobs["error"])
    assert list(jobs.sort_values("run")["duration"]) == ["42.0 s", "3.0 s"]
    assert set(runs["cracks"]) == {2, 3}


def test_models_page_reads_cards(app_env, tmp_path, monkeypatch):
    from dashboard import common

    path = write_card(tmp_path / "weights")
    card = json.loads(path.read_text())
    (path.parent / "slope-model.json").write_text(json.dumps(
        {**card, "name": "slope-model", "site_profile": "slope"}))
    table = tmp_path / "profile_models.json"
    table.write_text(json.dumps({"structure": "crackwatch-unet-mnv2", "slope": "slope-model"}))
    monkeypatch.setattr(common, "PROFILE_MODELS_FILE", table)
    monkeypatch.setenv("CRACKWATCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = run_page("pages/5_Models.py")
    body = texts(at)
    labels = [unescape(e.label) for e in at.expander]
    assert "crackwatch-unet-mnv2 (version 1), default for structure sites" in labels
    assert "slope-model (version 1), default for slope sites" in labels
    assert "**Serves:** slope sites" in body
    assert "**Serves:** - (the card names no site profile)" in body
    assert "slope sites: `slope-model`, structure sites: `crackwatch-unet-mnv2`" in body
    assert any("broken.json" in unescape(w.value) for w in at.warning)
    # issue 28, item 5: the test metrics are one small readable table, in %, no "None"
    metrics = frames(at)[0].set_index("dataset")
    assert list(metrics.index) == ["uav75-test"]  # validation is no test set
    assert metrics.loc["uav75-test", "F1 %"] == "74.0"
    assert metrics.loc["uav75-test", "IoU %"] == "-"
    assert len(metrics.columns) <= 9
    assert "CC BY-NC 4.0" in set(frames(at)[1]["license"])
    assert "crackwatch train --config unet.json" in [c.value for c in at.code]
    assert "Card file: crackwatch-unet-mnv2.json" in body
    # The shipped cards follow the user folder's, as in `crackwatch models list`.
    assert labels[:2] == ["crackwatch-unet-mnv2 (version 1), default for structure sites",
                          "slope-model (version 1), default for slope sites"]
    assert [label.split(" ")[0] for label in labels[2:]] == [
        card["name"] for card in list_cards() if card["name"] != "crackwatch-unet-mnv2"]


def test_models_page_empty_folder(app_env, tmp_path, monkeypatch):
    import engine.cards

    monkeypatch.setattr(engine.cards, "WEIGHTS_DIR", tmp_path / "no-shipped")
    monkeypatch.setenv("CRACKWATCH_WEIGHTS_DIR", str(tmp_path / "none"))
    at = run_page("pages/5_Models.py")
    assert f"No model cards in {tmp_path / 'none'}, {tmp_path / 'no-shipped'}." in texts(at)


@pytest.mark.parametrize("page", [None, "pages/1_Site.py", "pages/2_Defect_history.py",
                                  "pages/3_Alerts.py", "pages/4_Runs.py"])
def test_empty_store_explains_what_to_do(tmp_path, monkeypatch, page):
    url = store.sqlite_url(tmp_path / "empty.db")
    store.upgrade(url)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", url)
    body = texts(run_page(page))
    assert "crackwatch demo" in body
    assert "No sites in the store yet" in body or "No runs recorded yet" in body


def test_missing_store_and_missing_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", store.sqlite_url(tmp_path / "nope.db"))
    body = texts(run_page())
    assert "There is no CrackWatch store yet" in body and "crackwatch demo" in body
    assert not (tmp_path / "nope.db").exists()  # reading never creates a store
    bare = tmp_path / "bare.db"
    store.connect(store.sqlite_url(bare)).dispose()
    import sqlite3

    sqlite3.connect(bare).execute("CREATE TABLE t (x)").connection.close()
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", store.sqlite_url(bare))
    assert "crackwatch db upgrade" in texts(run_page("pages/1_Site.py"))


# --------------------------------------------------------------------------- offline maps


def assert_offline(html: str) -> None:
    """The map HTML loads nothing from outside this machine."""
    from dashboard.maps import external_resources, inline_leaflet

    assert external_resources(html) == []
    # any absolute URL in an attribute, outside Leaflet's own (inlined) source, is local
    rest = html.replace(inline_leaflet(), "")
    for url in re.findall(r"""(?:src|href)\s*=\s*["'](https?://[^"']+)""", rest):
        assert re.match(r"https?://(localhost|127\.0\.0\.1)", url), url
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html and "code.jquery" not in html
    # jQuery / Bootstrap are not shipped: nothing may use them
    assert "$(" not in rest and "jQuery" not in rest and "bootstrap" not in rest.lower()


def test_map_html_static_and_inline_reference_no_cdn(seeded):
    from dashboard.maps import MapAssets, render_html, survey_map
    from dashboard.sites_map import sites_map

    eng = store.connect(seeded["url"])
    fc = queries.survey_cracks_geojson(eng, seeded["survey_ids"][1])
    sites = queries.sites_overview(eng)
    eng.dispose()
    static = render_html(survey_map(fc, assets=MapAssets("static", "/app/static/")))
    assert_offline(static)
    assert '<script src="/app/static/vendor/leaflet/leaflet.js"></script>' in static
    assert 'href="/app/static/vendor/leaflet/leaflet.css"' in static
    assert re.findall(r"https?://", static) == []  # not even a link
    inline = render_html(sites_map(sites, assets=MapAssets("inline")))
    assert_offline(inline)
    assert "<script src=" not in inline and 't.version="1.9.4"' in inline
    assert "url(data:image/png;base64," in inline  # Leaflet's CSS images inlined
    # the online basemap is opt-in, and then it is the only external resource
    online = render_html(survey_map(fc, assets=MapAssets("static"), basemap=True))
    from dashboard.maps import external_resources

    assert external_resources(online) == ["https://tile.openstreetmap.org/{z}/{x}/{y}.png"]
    with pytest.raises(ValueError, match="static_prefix"):
        MapAssets("static", "https://cdn.example.com/")


def test_vendored_leaflet_has_license():
    from dashboard.maps import LEAFLET_VERSION, VENDOR_DIR

    folder = VENDOR_DIR / "leaflet"
    assert "BSD 2-Clause" in (folder / "LICENSE").read_text()
    assert f'version="{LEAFLET_VERSION}"' in (folder / "leaflet.js").read_text()
    assert (folder / "leaflet.css").is_file() and (folder / "images" / "layers.png").is_file()


def test_orthomosaic_overview_and_chip(seeded):
    from PIL import Image

    from dashboard.imagery import orthomosaic_chip, orthomosaic_overview

    ov = orthomosaic_overview(seeded["orthos"][1], max_size_px=200)
    s, w, n, e = ov.bounds
    assert w == pytest.approx(LON, abs=1e-6) and s == pytest.approx(LAT, abs=1e-6)
    assert n > s and e > w and n - s < 1e-4
    im = Image.open(__import__("io").BytesIO(ov.png))
    assert im.mode == "RGBA" and max(im.size) <= 201
    alpha = np.asarray(im)[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 255  # the nodata corner is transparent
    crack = SURVEY_CRACKS[1][0]
    chip = Image.open(__import__("io").BytesIO(orthomosaic_chip(
        seeded["orthos"][1], crack.bounds, crs_epsg=EPSG, outlines=[crack], size_px=128)))
    assert chip.size == (128, 128)
    px = np.asarray(chip)
    assert ((px[..., 0] > 200) & (px[..., 1] < 60)).any()  # the red outline
    with pytest.raises(FileNotFoundError):
        orthomosaic_overview(seeded["orthos"][1].with_name("missing.tif"))


# --------------------------------------------------------------------------- geodata additions


def test_alerts_store_acknowledge_and_resolve(any_seeded):
    seeded = any_seeded
    eng = store.connect(seeded["url"])
    orange, red = seeded["alert_ids"]
    with pytest.raises(ValueError, match="non-empty name"):
        alerts_store.acknowledge_alert(eng, orange, by="  ")
    a = alerts_store.acknowledge_alert(eng, orange, by="Bo", note="  seen ")
    assert a.acknowledged_by == "Bo" and a.acknowledge_note == "seen"
    with pytest.raises(StoreError, match="acknowledged already by Bo"):
        alerts_store.acknowledge_alert(eng, orange, by="Cy")
    with pytest.raises(ValueError, match="needs a note"):
        alerts_store.resolve_alert(eng, red, by="Cy", note="")
    r = alerts_store.resolve_alert(eng, red, by="Cy", note="repaired")
    assert r.resolved_at is not None and r.acknowledged_by == "Cy"
    with pytest.raises(StoreError, match="resolved already"):
        alerts_store.resolve_alert(eng, red, by="Cy", note="again")
    with pytest.raises(StoreError, match="cannot be acknowledged"):
        alerts_store.acknowledge_alert(eng, red, by="Cy")
    with pytest.raises(RecordNotFoundError, match="no alert with id 999"):
        alerts_store.resolve_alert(eng, 999, by="Cy", note="x")
    # a failure inside a caller's transaction rolls back only the savepoint
    with Session(eng) as s, s.begin():
        with pytest.raises(StoreError):
            alerts_store.resolve_alert(s, red, by="Cy", note="x")
        alerts_store.resolve_alert(s, orange, by="Cy", note="done")
    frame = queries.all_alerts(eng)
    assert set(frame["state"]) == {"resolved"}
    assert queries.all_alerts(eng, open_only=True).empty
    eng.dispose()


def test_new_queries(any_seeded):
    seeded = any_seeded
    eng = store.connect(seeded["url"])
    alerts = queries.all_alerts(eng, site=SITE)
    assert list(alerts["level"]) == ["red", "orange"]  # newest first
    assert alerts["forecast"].iloc[0] == ("failure forecast 2024-06-05 12:00 UTC, 5.2 days "
                                          "after the latest survey, R^2 0.93")
    assert list(alerts["unit"]) == ["days", "mm/day"]
    assert pd.isna(alerts["forecast"].iloc[1])
    assert queries.all_alerts(eng, site=EMPTY_SITE).empty
    assert len(queries.all_alerts(eng, limit=1)) == 1
    with pytest.raises(RecordNotFoundError):
        queries.all_alerts(eng, site="nowhere")
    ev = queries.survey_track_events(eng, seeded["survey_ids"][1])
    assert sorted(ev["event"]) == ["continued", "continued", "new"]
    grown = ev.dropna(subset=["delta_length_m"]).sort_values("delta_length_m")
    assert grown["delta_length_m"].iloc[-1] == pytest.approx(0.4)
    assert grown["delta_max_width_mm"].iloc[-1] == pytest.approx(2.0)
    assert grown["days_since_previous"].iloc[-1] == pytest.approx(30)
    assert list(queries.survey_track_events(eng, seeded["survey_ids"][0])["event"]) == \
        ["new", "new"]
    with pytest.raises(RecordNotFoundError):
        queries.survey_track_events(eng, 999)
    jobs = queries.job_runs(eng)
    assert list(jobs["status"]) == ["failed", "succeeded"]
    assert list(jobs["duration_s"]) == [3.0, 42.0] and jobs["site_name"].iloc[0] == SITE
    assert queries.job_runs(eng, site=EMPTY_SITE).empty
    runs = queries.inference_runs(eng)
    assert len(runs) == 2 and set(runs["megapixels_per_s"]) == {3.5}
    assert list(runs["crack_count"]) == [3, 2]
    assert queries.inference_runs(eng, site=EMPTY_SITE).empty
    eng.dispose()


# --------------------------------------------------------------------------- more states, CLI


def _facade_store(tmp_path, db: str, ortho: str, sha: str):
    """A new SQLite store with structure site ``facade`` and one orthomosaic survey (T0):
    ``(url, engine, site, survey)``."""
    url = store.sqlite_url(tmp_path / db)
    store.upgrade(url)
    eng = store.connect(url)
    site = store.add_site(eng, "facade", profile="structure", crs_epsg=EPSG, lon=LON, lat=LAT)
    sv = store.ingest_survey(eng, site.id, tmp_path / ortho, acquired_at=T0,
                             source_type="orthomosaic", sha256=sha * 64, pixel_size_m=PIXEL_M)
    return url, eng, site, sv


def test_single_survey_and_photo_survey(tmp_path, monkeypatch):
    from PIL import Image

    url, eng, site, sv = _facade_store(tmp_path, "one.db", "o.tif", "a")
    store.store_run(eng, sv.id, crack_frame(SURVEY_CRACKS[0]), None, RUN)
    photos = tmp_path / "photos"
    photos.mkdir()
    img = np.full((120, 160, 3), 170, np.uint8)
    img[60:62, 20:140] = 20
    Image.fromarray(img).save(photos / "IMG_0001.jpg")
    ph = store.ingest_survey(eng, site.id, photos, acquired_at=T0 + timedelta(days=1),
                             source_type="photos", sha256="b" * 64)
    pix = gpd.GeoDataFrame(
        {"length_m": [0.6], "mean_width_mm": [1.0], "max_width_mm": [1.5], "area_m2": [0.001],
         "photo": ["IMG_0001.jpg"]},
        geometry=[shapely.MultiPolygon([shapely.box(20, 60, 140, 62)])], crs=None)
    store.store_run(eng, ph.id, pix, None, RUN, coordinate_space="image")
    failed = store.ingest_survey(eng, site.id, tmp_path / "f.tif", source_type="orthomosaic",
                                 acquired_at=T0 + timedelta(days=2), sha256="c" * 64)
    store.record_failed_run(eng, failed.id, RUN, "RasterReadError: f.tif is truncated")
    eng.dispose()
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", url)
    at = run_page("pages/1_Site.py")
    # the latest survey's run failed: nothing to draw, and it says where to look
    assert "No successful inference run for this survey yet" in texts(at)
    assert not at.get("iframe")
    # the photo survey: its cracks are drawn on the photo, with a table
    at.select_slider(key="site_survey").set_value(ph.id).run()
    assert not at.exception
    assert "Cracks on the photos" in texts(at)
    assert "Total length=0.60 m" in texts(at) and "New cracks=-" in texts(at)
    (image,) = at.get("image")
    assert image.captions == ["IMG_0001.jpg: 1 cracks outlined in their severity colour, as on "
                              "the map"]
    assert frames(at)[0]["severity"].tolist() == ["slight"]
    at.select_slider(key="site_survey").set_value(sv.id).run()
    assert not at.exception
    body = texts(at)
    assert "Cracks=2" in body and "this is the site's first survey" in body
    assert "imagery not found on this machine" in body


def test_cli_dashboard_starts_streamlit(monkeypatch):
    from typer.testing import CliRunner

    from jobs.cli import app
    from jobs.cli import dashboard as cli_dashboard

    calls = []
    monkeypatch.setattr(cli_dashboard.subprocess, "call",
                        lambda cmd, env: calls.append((cmd, env)) or 0)
    r = CliRunner().invoke(app, ["dashboard", "--port", "8600", "--url", "sqlite:////x/y.db"])
    assert r.exit_code == 0, r.output
    (cmd, env), = calls
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP)
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.port"] == "8600" and opts["--server.headless"] == "true"
    assert opts["--server.enableStaticServing"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert env["CRACKWATCH_DATABASE_URL"] == "sqlite:////x/y.db"
    r = CliRunner().invoke(app, ["dashboard", "--url", "mysql://db/x"])
    assert r.exit_code == 2 and "supports sqlite and postgresql" in r.output
    assert len(calls) == 1


@pytest.mark.postgis
def test_pages_on_postgis(empty_postgis_url, tmp_path, monkeypatch):
    postgis_url = empty_postgis_url
    seeded = seed_store(tmp_path, url=postgis_url)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", postgis_url)
    assert "Sites at red=1" in texts(run_page())
    at = run_page("pages/1_Site.py")
    assert "Cracks=3" in texts(at) and "L.imageOverlay" in iframes(at)[0]
    assert "Crack tracks=3" in texts(run_page("pages/2_Defect_history.py"))
    assert "Job runs=2" in texts(run_page("pages/4_Runs.py"))
    at = run_page("pages/3_Alerts.py")
    at.selectbox(key="alert_pick").set_value(seeded["alert_ids"][1])
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    assert queries.all_alerts(store.connect(postgis_url))["state"].tolist() == \
        ["acknowledged", "open"]


def test_site_page_with_10k_cracks_is_quick(tmp_path, monkeypatch):
    """10 000 cracks: the page renders in seconds (simplified, canvas, cached)."""
    import time

    url = store.sqlite_url(tmp_path / "big.db")
    store.upgrade(url)
    eng = store.connect(url)
    site = store.add_site(eng, "big-slope", profile="slope", crs_epsg=EPSG, lon=LON, lat=LAT)
    ox, oy = site_origin()
    rng = np.random.default_rng(1)
    geoms = []
    for i in range(10_000):
        pts = np.c_[np.linspace(0, 1.2, 15), rng.normal(0, 0.02, 15)]
        pts += [ox + (i % 100) * 2.0, oy + (i // 100) * 2.0]
        geoms.append(shapely.MultiPolygon([shapely.LineString(pts).buffer(0.003,
                                                                           quad_segs=2)]))
    sv = store.ingest_survey(eng, site.id, tmp_path / "big.tif", acquired_at=T0,
                             source_type="orthomosaic", sha256="d" * 64, pixel_size_m=PIXEL_M)
    store.store_run(eng, sv.id, crack_frame(geoms), None, RUN)
    eng.dispose()
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", url)
    at = signed_in_app(timeout=120)
    at.run()
    t0 = time.perf_counter()
    at.switch_page("pages/1_Site.py").run()
    cold_s = time.perf_counter() - t0
    assert not at.exception
    assert "Cracks=10000" in texts(at)
    (html,) = iframes(at)
    assert '"preferCanvas": true' in html
    assert html.count('"type": "Feature"') + html.count('"type":"Feature"') >= 10_000
    assert cold_s < 30, f"site page took {cold_s:.1f} s cold"
    t0 = time.perf_counter()
    at.run()  # a rerun (any widget change) is served from the caches
    assert time.perf_counter() - t0 < 5


def _parked_store(tmp_path):
    """A site whose only survey failed three runs (parked), the last with a known error."""
    from geodata.store import models as m
    from geodata.store.engine import session_scope

    url, eng, site, sv = _facade_store(tmp_path, "parked.db", "bad.tif", "d")
    with session_scope(eng, write=True) as s:
        for k in range(3):
            s.add(m.JobRun(job="process_survey", site_id=site.id, survey_id=sv.id,
                           status="failed", started_at=T0 + timedelta(minutes=k),
                           finished_at=T0 + timedelta(minutes=k, seconds=5),
                           error="Traceback ...\nRasterReadError: bad.tif is truncated"))
    eng.dispose()
    return url, sv.id


def test_parked_survey_shows_its_state_reason_and_how_to_retry(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from jobs.cli import app

    url, survey_id = _parked_store(tmp_path)
    frame = queries.list_surveys(store.connect(url), "facade")
    assert frame[["state", "failures"]].values.tolist() == [["parked", 3]]
    assert frame["last_error"][0] == "RasterReadError: bad.tif is truncated"
    assert f"crackwatch survey retry {survey_id}" in frame["action"][0]

    r = CliRunner().invoke(app, ["survey", "list", "--site", "facade", "--url", url],
                           env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "parked" in r.output and f"crackwatch survey retry {survey_id}" in r.output

    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", url)
    at = run_page("pages/1_Site.py")
    body = texts(at)
    assert "is **parked** after 3 failed runs" in body
    assert "bad.tif is truncated" in body and f"crackwatch survey retry {survey_id}" in body
    [held] = frames(at)
    assert held["state"].tolist() == ["parked"]


# --------------------------------------------------------------------------- sign-in, roles


ALL_PAGES = [None, "pages/1_Site.py", "pages/2_Defect_history.py", "pages/3_Alerts.py",
             "pages/4_Runs.py", "pages/5_Models.py"]


def _only_the_sign_in_form(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert [s.value for s in at.subheader] == ["Sign in to CrackWatch"]
    assert not at.title and not at.dataframe and not at.metric and not at.get("iframe")
    assert not at.sidebar.children or not at.get("page_link")  # no navigation either


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_shows_only_the_sign_in_form_until_signed_in(app_env, page):
    at = signed_in_app(None)
    if page is not None:
        at.switch_page(page)
    at.run()
    _only_the_sign_in_form(at)


def test_sign_in_with_the_form_wrong_then_right_password(app_env):
    at = signed_in_app(None)
    at.run()
    at.text_input[0].input("Olga")  # usernames are not case-sensitive
    at.text_input[1].input("not-her-password")
    at.button[0].click().run()
    assert "Wrong username or password." in texts(at)
    _only_the_sign_in_form(at)
    at.text_input[0].input("olga")
    at.text_input[1].input(USERS["olga"][0])
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["authentication_status"] is True
    assert "Sites overview" in texts(at) and "Sites=2" in texts(at)
    assert "Signed in as **olga** (operator)" in [c.value for c in at.sidebar.caption]
    at.switch_page("pages/4_Runs.py").run()  # the session stays signed in across pages
    assert "Job runs=2" in texts(at)


def test_no_users_file_says_how_to_create_the_first_admin(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(tmp_path / "none.yaml"))
    for page in (None, "pages/3_Alerts.py"):
        at = signed_in_app(None)
        if page:
            at.switch_page(page)
        at.run()
        assert not at.exception
        body = texts(at)
        assert "No users yet." in body and "crackwatch user add NAME --role admin" in body
        assert str(tmp_path / "none.yaml") in body
        assert not at.text_input and not at.dataframe and not at.metric
    # a session that claims a user is not let in either
    at = run_page(user="olga")
    assert "No users yet." in texts(at) and not at.dataframe
    (tmp_path / "bad.yaml").write_text("cookie: {key: short}\n")
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(tmp_path / "bad.yaml"))
    at = run_page(user="olga")
    assert "The users file cannot be used" in texts(at) and not at.dataframe


def test_viewer_sees_alerts_but_cannot_acknowledge(app_env, tmp_path, monkeypatch):
    seeded = seed_store(tmp_path)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    at = run_page("pages/3_Alerts.py", user="vic")
    body = texts(at)
    assert "Open alerts (2)" in body and len(frames(at)) == 2  # open alerts and history
    assert "needs the operator or admin role" in body
    assert not [b for b in at.button if b.label == "Save"] and not at.text_area
    # the write helpers refuse a viewer too (no form is the first line, not the only one)
    from dashboard import auth, common

    monkeypatch.setattr(auth, "current_user", lambda: auth.SignedIn("vic", "viewer"))
    for write in (common.acknowledge, common.resolve):
        assert "operator or admin" in write(seeded["url"], seeded["alert_ids"][0], "vic", "x")
    eng = store.connect(seeded["url"])
    assert queries.all_alerts(eng, open_only=True)["acknowledged_by"].isna().all()
    eng.dispose()


def test_a_failed_save_keeps_its_alert_and_the_next_save_acts_on_it(app_env, tmp_path,
                                                                     monkeypatch):
    """Issue 28, item 2: Resolve on the second alert without a note fails with the error at
    the form; the form still names that alert and action (it reset to the first alert, and
    the next Save acted on that one); with a note the next Save resolves that alert."""
    seeded = seed_store(tmp_path)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    first, second = seeded["alert_ids"][:2]
    at = run_page("pages/3_Alerts.py", user="ada")
    at.selectbox(key="alert_pick").set_value(second)
    at.radio(key="alert_action_kind").set_value("Resolve")
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    assert any(f"Alert #{second} was not changed" in e.value for e in at.error)
    assert at.selectbox(key="alert_pick").value == second
    assert at.radio(key="alert_action_kind").value == "Resolve"
    at.text_area(key="alert_note").input("sealed and photographed")
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    eng = store.connect(seeded["url"])
    with Session(eng) as s:
        assert s.get(store.Alert, second).resolve_note == "sealed and photographed (ada)"
        assert s.get(store.Alert, first).resolved_at is None
    eng.dispose()
    assert f"Alert #{second} resolved." in texts(at)
    assert at.text_area(key="alert_note").value == ""  # a fresh note for the next alert


def test_admin_acknowledges_as_self(app_env, tmp_path, monkeypatch):
    seeded = seed_store(tmp_path)
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    at = run_page("pages/3_Alerts.py", user="ada")
    at.selectbox(key="alert_pick").set_value(seeded["alert_ids"][0])
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert not at.exception
    eng = store.connect(seeded["url"])
    with Session(eng) as s:
        assert s.get(store.Alert, seeded["alert_ids"][0]).acknowledged_by == "ada"
    eng.dispose()


def test_a_removed_user_is_signed_out_at_the_next_click(app_env, tmp_path, monkeypatch):
    from geodata.users import add_user, remove_user

    path = tmp_path / "users.yaml"
    add_user(path, "temp", "temp-password", "operator")
    add_user(path, "keep", "keep-password", "viewer")
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(path))
    at = run_page(user="temp")
    assert "Sites overview" in texts(at)
    remove_user(path, "temp")
    at.run()
    assert not at.exception
    assert "User temp no longer exists: sign in again." in texts(at)
    _only_the_sign_in_form(at)


def test_five_wrong_passwords_lock_the_username_not_the_others(app_env, monkeypatch):
    """Issue 30, item 6: 5 failed sign-ins lock that username for 15 minutes, during which
    even the right password is refused unchecked; another user still signs in."""
    from dashboard import signin_throttle

    monkeypatch.setattr(signin_throttle.THROTTLE, "_failures", {})
    at = signed_in_app(None)
    at.run()
    for i in range(5):
        at.text_input[0].input("olga")
        at.text_input[1].input(f"guess-{i}")
        at.button[0].click().run()
    assert "sign-in is locked for 15 minutes" in texts(at)
    at.text_input[0].input("olga")
    at.text_input[1].input(USERS["olga"][0])
    at.button[0].click().run()
    assert "Too many failed sign-ins for this username" in texts(at)
    assert not at.session_state["authentication_status"]
    _only_the_sign_in_form(at)
    at.text_input[0].input("ada")
    at.text_input[1].input(USERS["ada"][0])
    at.button[0].click().run()
    assert at.session_state["authentication_status"] is True


def test_a_changed_password_signs_the_open_session_out(app_env, tmp_path, monkeypatch):
    """`user passwd` (or remove + add with a new password) ends a session signed in with the
    old one at its next click, and draws a new cookie key (every old cookie is void)."""
    import yaml

    from geodata.users import add_user, remove_user, set_password

    path = tmp_path / "users.yaml"
    add_user(path, "temp", "temp-password", "operator")
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(path))
    key = yaml.safe_load(path.read_text())["cookie"]["key"]
    at = run_page(user="temp")
    assert "Sites overview" in texts(at)
    at.run()
    assert "Sites overview" in texts(at)  # nothing changed: still signed in
    set_password(path, "temp", "new-temp-password")
    assert yaml.safe_load(path.read_text())["cookie"]["key"] != key
    at.run()
    assert not at.exception
    assert "The password of temp was changed: sign in again." in texts(at)
    _only_the_sign_in_form(at)
    at = run_page(user="temp")
    remove_user(path, "temp")
    add_user(path, "temp", "third-temp-password", "operator")
    at.run()
    assert "The password of temp was changed" in texts(at)


def test_markdown_in_user_text_is_escaped(app_env, tmp_path, monkeypatch):
    """Site names (and other user text) go into Markdown escaped: the source shows every
    special character backslashed, so it renders as the text typed (the browser test looks
    at the rendered page)."""
    from dashboard.text import code, md

    seeded = seed_store(tmp_path)
    eng = store.connect(seeded["url"])
    evil = store.add_site(eng, EVIL_NAME, profile="slope", crs_epsg=EPSG)  # no location
    eng.dispose()
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", seeded["url"])
    at = run_page()
    [caption] = [c.value for c in at.caption if c.value.startswith("Not on the map")]
    assert md(EVIL_NAME) in caption and EVIL_NAME not in caption
    assert "![" not in caption.replace("\\!\\[", "") and "<b>" not in caption
    assert unescape(caption) == f"Not on the map (no location): {EVIL_NAME}"
    at = run_page("pages/1_Site.py")
    at.selectbox(key="site_select_Site").set_value(evil.id).run()
    [info] = [i.value for i in at.info if "has no surveys yet" in i.value]
    assert md(EVIL_NAME) in info and EVIL_NAME not in info
    assert md("a\nb") == "a b"  # a name cannot start a new Markdown block
    assert code("x ``y`` z") == "```x ``y`` z```" and code("`") == "`` ` ``"


def test_cli_dashboard_listens_on_localhost_and_masks_the_password(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app
    from jobs.cli import dashboard as cli_dashboard

    calls = []
    monkeypatch.setattr(cli_dashboard.subprocess, "call",
                        lambda cmd, env: calls.append((cmd, env)) or 0)
    monkeypatch.setenv("CRACKWATCH_USERS_FILE", str(tmp_path / "none.yaml"))
    url = "postgresql+psycopg://crackwatch:S3cret-pw@db.example:5432/cw"
    r = CliRunner().invoke(app, ["dashboard", "--url", url])
    assert r.exit_code == 0, r.output
    assert "S3cret-pw" not in r.output
    assert "postgresql+psycopg://crackwatch:***@db.example:5432/cw" in r.output
    assert "http://127.0.0.1:8501" in r.output
    assert "crackwatch user add NAME --role admin" in r.output  # no users yet
    r = CliRunner().invoke(app, ["dashboard", "--address", "0.0.0.0"])
    assert r.exit_code == 0, r.output
    (cmd, env), (cmd2, _) = calls
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert env["CRACKWATCH_DATABASE_URL"] == url  # the app gets the real URL
    assert dict(zip(cmd2[5::2], cmd2[6::2], strict=True))["--server.address"] == "0.0.0.0"


def test_with_an_identity_provider_pages_offer_its_sign_in_and_roles_come_by_email(app_env):
    """``[auth]`` in the secrets: Streamlit's OIDC sign-in (``st.login``) replaces the
    password form; the role is the users-file entry with the provider's e-mail."""
    from dashboard.auth import role_for_email

    at = signed_in_app(None)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x" * 32, "client_id": "cw", "client_secret": "s",
                          "server_metadata_url": "http://localhost:9/.well-known/x"}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [b.label for b in at.button] == ["Sign in with your organisation's account"]
    assert not at.text_input and not at.dataframe and not at.metric
    users = {"ana": {"roles": ["operator"], "email": "Ana@Example.org"},
             "bob": {"roles": ["viewer"]}}
    assert role_for_email(users, "ana@example.org ") == ("ana", "operator")
    assert role_for_email(users, "bob@example.org") is None
    assert role_for_email(users, None) is None


def test_the_dashboard_finds_the_store_where_the_jobs_put_it(tmp_path, monkeypatch):
    """One setting for both (geodata.settings): CRACKWATCH_DATA_DIR's SQLite file by default,
    CRACKWATCH_DATABASE_URL when set."""
    from dashboard import common
    from jobs.settings import Settings, get_settings

    monkeypatch.delenv("CRACKWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("CRACKWATCH_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert common.database_url() == Settings().resolved_database_url() == \
            get_settings().resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/crackwatch.db"
    finally:
        get_settings.cache_clear()
    monkeypatch.setenv("CRACKWATCH_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert common.database_url() == Settings().resolved_database_url() == \
        "postgresql+psycopg://u@h/db"
